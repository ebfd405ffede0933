"""Read openssl.cnf as OpenSSL's own parser (crypto/conf/conf_def.c) reads it.

fipsboot's openssl.cnf may pull in exactly one other file: this installation's
fipsmodule.cnf. So this reader splits lines the way OpenSSL does (a trailing backslash joins
lines, `#` outside quotes starts a comment, a name is OpenSSL's run of letters, digits,
punctuation and escapes, `sect::name` writes into another section) and sorts each line into
a section header, a key, an include or a pragma. Any include or pragma in any spelling OpenSSL
accepts (`.includeX /p`, `.include=/p`, `sect::.include /p`, `.pragma=...`) other than the one
include of fipsmodule.cnf is a problem and is not followed: a folder include, a second file or
a pragma could hide configuration fipsboot never reads. fipsmodule.cnf itself may include
nothing. A line OpenSSL would refuse, a variable (`$x`) and a control character are problems
too: what can't be judged without guessing is a failure, never a pass.

A key defined again replaces the earlier one and moves to the end of its section (as
OpenSSL's section lists do); `files` lists every file read with its digest, for the verdict
cache's key.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import fsutil
from .opensslcnf import has_stray_backslash, unescape

# conf_def.h's default character table: what OpenSSL counts as part of a name.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                 "!%&*+,-./;?@^|~")
WS = " \t\r\n"
QUOTES = "\"'`"
BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")


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
    problems: List[str] = field(default_factory=list)  # what can't be judged or isn't allowed
    windows: bool = False

    def section(self, name: Optional[str]) -> Dict[str, Value]:
        return self.sections.get(name or "", {}) if name else {}

    def get(self, section: str, key: str) -> Optional[str]:
        v = self.sections.get(section, {}).get(key)
        return v.text if v is not None else None


def read(path: Path, to_host: Callable[[str], Path] = Path, windows: bool = False,
         allowed_include: Optional[str] = None) -> Config:
    """The config at `path` (a host path). `allowed_include`: the one include (as OpenSSL
    reads it, a native path) that is followed; `to_host` maps it to the path opened here."""
    cnf = Config()
    cnf.windows = windows

    def follow(include: str, section: str) -> str:
        if include != allowed_include:
            cnf.problems.append(f"openssl.cnf includes {include}: only fipsboot's own "
                                f"{allowed_include} may be included")
            return section
        return _read_file(cnf, to_host(include), section, None)

    _read_file(cnf, path, "default", follow)
    return cnf


def _logical_lines(text: str) -> List[str]:
    """Physical lines joined where a line ends in one backslash (not two), trailing CR/LF
    dropped, as def_load_bio does."""
    out, buf = [], ""
    for physical in text.split("\n"):
        buf += physical.rstrip("\r")
        if buf.endswith("\\") and not buf.endswith("\\\\"):
            buf = buf[:-1]
            continue
        out.append(buf)
        buf = ""
    if buf:
        out.append(buf)
    return out


def _clear_comment(line: str) -> str:
    """The line up to its first `#` outside quotes and escapes (clear_comments)."""
    i = 0
    while i < len(line):
        c = line[i]
        if c == "#":
            return line[:i]
        if c in QUOTES:
            j = i + 1
            while j < len(line) and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        i += 2 if c == "\\" else 1
    return line


def _eat_name(s: str, i: int) -> int:
    while i < len(s):
        if s[i] == "\\":
            i += 2 if i + 1 < len(s) else 1
        elif s[i] in NAME_CHARS:
            i += 1
        else:
            break
    return min(i, len(s))


def _eat_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in WS:
        i += 1
    return i


def _read_file(cnf: Config, path: Path, section: str, follow) -> str:
    """Read one file into `cnf`; `follow(include, section)` reads an include in place (the
    current section carries on into the included text and out of it), None: no include
    allowed here."""
    top = follow is not None
    data = fsutil.read(path)
    cnf.files.append((str(path), fsutil.digest(data)))
    if data is None:
        cnf.problems.append(f"{path} does not exist (OpenSSL skips a missing include silently)")
        return section
    text = data.decode("utf-8", errors="surrogateescape")
    if top and text.startswith("\ufeff"):
        text = text[1:]  # OpenSSL drops a UTF-8 BOM at the start of the first file only
    if BAD_CONTROL.search(text):
        cnf.problems.append(f"{path} holds a control character (a NUL, or a CR not ending a "
                            "line) that OpenSSL's line reader treats differently")
        return section
    for number, line in enumerate(_logical_lines(text), 1):
        where = f"{path}:{number}"
        s = _clear_comment(line)
        i = _eat_ws(s, 0)
        if i == len(s):
            continue
        if s[i] == "[":
            name = _section_name(s, i + 1)
            if name is None or set(name) & set("\\$" + QUOTES):
                cnf.problems.append(f"{where}: section header {line.strip()!r} is not one "
                                    "fipsboot can judge")
                continue
            section = name
            cnf.sections.setdefault(section, {})
            continue
        start = i
        end = _eat_name(s, start)
        target = section
        if s[end:end + 2] == "::":
            target = s[start:end]
            start = end + 2
            end = _eat_name(s, start)
        name = s[start:end]
        p = _eat_ws(s, end)
        at_p = s[p] if p < len(s) else ""
        for word in (".pragma", ".include"):
            if s[start:start + len(word)] == word and (p != start + len(word) or at_p == "="):
                rest = s[p + 1:] if at_p == "=" else s[p:]
                include = _directive(cnf, where, word, name, target != section,
                                     rest.strip(WS), top)
                if include is not None:
                    section = follow(include, section)
                break
        else:
            if at_p != "=":
                cnf.problems.append(f"{where}: OpenSSL refuses this line (no `=`): "
                                    f"{line.strip()!r}")
                continue
            raw = s[p + 1:].strip(WS)
            if _unescaped_dollar(raw):
                cnf.problems.append(f"{where}: `{name} = {raw}` expands a variable; fipsboot "
                                    "can't tell what OpenSSL reads")
            values = cnf.sections.setdefault(target, {})
            values.pop(name, None)  # a repeated key moves to the end of its section
            values[name] = Value(unescape(raw), raw, str(path))
    return section


def _section_name(s: str, i: int) -> Optional[str]:
    start = ss = _eat_ws(s, i)
    while True:
        end = _eat_name(s, ss)
        p = _eat_ws(s, end)
        if p < len(s) and s[p] == "]":
            return s[start:end] or None
        if p < len(s) and ss != p:
            ss = p
            continue
        return None


def _directive(cnf: Config, where: str, word: str, name: str, prefixed: bool, raw: str,
               top: bool) -> Optional[str]:
    """The file a plain `.include` in openssl.cnf names (as OpenSSL reads it), or None with
    the problem noted."""
    if word == ".pragma":
        cnf.problems.append(f"{where}: `{name} {raw}` is a pragma: it changes how OpenSSL reads "
                            "the rest of the configuration; fipsboot's files have none")
        return None
    plain = name == ".include" and not prefixed and top
    if not plain:
        cnf.problems.append(f"{where}: `{name} {raw}` is an include (OpenSSL reads any name "
                            "starting with .include as one); only fipsboot's own `.include` of "
                            "fipsmodule.cnf may be in openssl.cnf")
        return None
    if has_stray_backslash(raw):
        cnf.problems.append(f"{where}: the .include {raw} uses backslashes, which OpenSSL reads "
                            "as escapes: write the path with forward slashes")
    if _unescaped_dollar(raw):
        cnf.problems.append(f"{where}: the .include {raw} expands a variable; fipsboot can't "
                            "tell which file OpenSSL reads")
        return None
    cnf.includes.append(unescape(raw))
    return unescape(raw)


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


def skip_dot(name: str) -> str:
    """A provider section's key as OpenSSL's provider_conf.c reads it: everything up to the
    first `.` is dropped (`x.module` is `module`)."""
    return name.split(".", 1)[1] if "." in name else name
