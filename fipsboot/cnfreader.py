"""Read an OpenSSL config as OpenSSL reads it, with every file it pulls in.

verify and `run` judge the configuration OpenSSL really applies, not only fipsboot's lines:
`.include` is followed like OpenSSL does (a file, or every `*.cnf`/`*.conf` in a folder; the
current section carries on into the included text; a later key replaces an earlier one, and a
repeated `[section]` adds to it), the section `openssl_conf` actually names is the one judged,
and every file read (or looked for and missing) is listed, so the verdict cache's key covers
everything that decides the configuration.

What can't be judged without guessing is a failure, never a pass: a relative or
`$`-expanding include, includes nested too deep.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import fsutil
from .opensslcnf import has_stray_backslash, unescape

MAX_DEPTH = 8
INCLUDE_RE = re.compile(r"^\s*\.include(?:\s*=\s*|\s+)(.*?)\s*$")
PRAGMA_RE = re.compile(r"^\s*\.pragma\b")
SECTION_RE = re.compile(r"^\s*\[\s*([^\]]*?)\s*\]")
KEY_RE = re.compile(r"^\s*([\w.:\-]+)\s*=\s*(.*)$")


@dataclass
class Value:
    text: str  # as OpenSSL reads it (escapes and quotes resolved)
    raw: str  # as written
    source: str  # the file it came from


@dataclass
class Config:
    sections: Dict[str, Dict[str, Value]] = field(default_factory=lambda: {"default": {}})
    files: List[Tuple[str, Optional[str]]] = field(default_factory=list)  # (path, digest|None)
    includes: List[str] = field(default_factory=list)  # as OpenSSL reads them
    problems: List[str] = field(default_factory=list)  # what can't be judged
    windows: bool = False

    def section(self, name: Optional[str]) -> Dict[str, Value]:
        return self.sections.get(name or "", {}) if name else {}

    def get(self, section: str, key: str) -> Optional[str]:
        v = self.sections.get(section, {}).get(key)
        return v.text if v is not None else None


def read(path: Path, to_host: Callable[[str], Path] = Path, windows: bool = False) -> Config:
    """The config at `path` (a host path) with its includes; `to_host` maps an include as
    OpenSSL reads it (a native path) to the host path (Wine's drive links); `windows`: an
    absolute include has a drive letter."""
    cnf = Config()
    cnf.windows = windows
    _read_file(cnf, path, "default", to_host, 0)
    return cnf


def _read_file(cnf: Config, path: Path, section: str, to_host, depth: int) -> str:
    data = fsutil.read(path)
    cnf.files.append((str(path), fsutil.digest(data)))
    if data is None:
        return section  # OpenSSL skips a missing include (config_diagnostics or not)
    text = data.decode("utf-8", errors="replace")
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        while line.endswith("\\") and not line.endswith("\\\\") and i + 1 < len(lines):
            i += 1
            line = line[:-1] + lines[i]  # a trailing backslash continues the line
        i += 1
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        m = INCLUDE_RE.match(line)
        if m:
            section = _include(cnf, m.group(1), path, section, to_host, depth)
            continue
        if PRAGMA_RE.match(line):
            if "includedir" in line:
                cnf.problems.append(f"{path}: `.pragma includedir` makes includes relative; "
                                    "fipsboot can't tell which files OpenSSL reads")
            continue
        m = SECTION_RE.match(line)
        if m:
            section = unescape(m.group(1)) or "default"
            cnf.sections.setdefault(section, {})
            continue
        m = KEY_RE.match(line)
        if m:
            key, raw = m.group(1), m.group(2)
            if "::" in key:  # `section::name = value` writes into another section
                other, key = key.split("::", 1)
                target = other or section
            else:
                target = section
            cnf.sections.setdefault(target, {})[key] = Value(unescape(raw), raw, str(path))
    return section


def _include(cnf: Config, raw: str, where: Path, section: str, to_host, depth: int) -> str:
    if depth >= MAX_DEPTH:
        cnf.problems.append(f"{where}: includes nested deeper than {MAX_DEPTH}")
        return section
    if has_stray_backslash(raw):
        cnf.problems.append(f"{where}: the .include {raw} uses backslashes, which OpenSSL reads "
                            "as escapes: write the path with forward slashes")
    if _unescaped_dollar(raw):
        cnf.problems.append(f"{where}: the .include {raw} expands a variable; fipsboot can't "
                            "tell which file OpenSSL reads")
        return section
    target = unescape(raw)
    cnf.includes.append(target)
    if not (re.match(r"^[A-Za-z]:/", target) if cnf.windows else target.startswith("/")):
        cnf.problems.append(f"{where}: the .include {target} is relative: OpenSSL resolves it "
                            "against the current folder or OPENSSL_CONF_INCLUDE")
        return section
    host = to_host(target)
    if os.path.isdir(host):
        names = sorted(n for n in os.listdir(host) if n.endswith((".cnf", ".conf")))
        cnf.files.append((str(host) + "/", fsutil.digest("\0".join(names).encode())))
        for name in names:
            section = _read_file(cnf, Path(host) / name, section, to_host, depth + 1)
        return section
    return _read_file(cnf, Path(host), section, to_host, depth + 1)


def _unescaped_dollar(raw: str) -> bool:
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "$":
            return True
        i += 1
    return False


def module_name(key: str) -> str:
    """OpenSSL's module for a key of the `openssl_conf` section: the name before a last '.'
    (`providers.2 = other_sect` loads providers too)."""
    return key.rsplit(".", 1)[0] if "." in key else key
