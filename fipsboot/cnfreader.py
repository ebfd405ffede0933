"""Read openssl.cnf as OpenSSL's own parser (crypto/conf/conf_def.c) reads it.

fipsboot's openssl.cnf may pull in exactly one other file: this installation's
fipsmodule.cnf. The lines are split and sorted (section header, key, include or pragma) by
cnfsyntax, the one parser of OpenSSL-style INI; this module builds the sections from them and
judges what it may not follow. Any include or pragma in any spelling OpenSSL
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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from . import cnfsyntax, fsutil
from .cnfsyntax import BAD_CONTROL, BLANK, DIRECTIVE, OTHER, SECTION, expands_variable
from .opensslcnf import has_stray_backslash


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


def _read_file(cnf: Config, path: Path, section: str, follow) -> str:
    """Read one file into `cnf`; `follow(include, section)` reads an include in place (the
    current section carries on into the included text and out of it), None: no include
    allowed here."""
    data = fsutil.read(path)
    cnf.files.append((str(path), fsutil.digest(data)))
    if data is None:
        cnf.problems.append(f"{path} does not exist (OpenSSL skips a missing include silently)")
        return section
    return read_text(cnf, data.decode("utf-8", errors="surrogateescape"), str(path), section,
                     follow)


def read_text(cnf: Config, text: str, source: str, section: str = "default",
              follow=None) -> str:
    """Read the text of one file (named `source`) into `cnf`, starting in `section`; returns
    the section current at its end. `follow`: as for _read_file; with one, this is the first
    file OpenSSL reads."""
    top = follow is not None
    if top and text.startswith("\ufeff"):
        text = text[1:]  # OpenSSL drops a UTF-8 BOM at the start of the first file only
    if BAD_CONTROL.search(text):
        cnf.problems.append(f"{source} holds a control character (a NUL, or a CR not ending a "
                            "line) that OpenSSL's line reader treats differently")
        return section
    for line in cnfsyntax.lines(text):
        where = f"{source}:{line.number}"
        if line.kind == BLANK:
            continue
        if line.kind == OTHER:
            cnf.problems.append(f"{where}: {line.why}")
            continue
        if line.kind == SECTION:
            section = line.name
            cnf.sections.setdefault(section, {})
            continue
        if line.kind == DIRECTIVE:
            include = _directive(cnf, where, line, section, top)
            if include is not None:
                section = follow(include, section)
            continue
        if expands_variable(line.raw):
            cnf.problems.append(f"{where}: `{line.name} = {line.raw}` expands a variable; "
                                "fipsboot can't tell what OpenSSL reads")
        values = cnf.sections.setdefault(line.prefix if line.prefix is not None else section, {})
        values.pop(line.name, None)  # a repeated key moves to the end of its section
        values[line.name] = Value(cnfsyntax.value(line.raw), line.raw, source)
    return section


def _directive(cnf: Config, where: str, line: cnfsyntax.Line, section: str,
               top: bool) -> Optional[str]:
    """The file a plain `.include` in openssl.cnf names (as OpenSSL reads it), or None with
    the problem noted."""
    name, raw = line.name, line.raw
    if line.directive == ".pragma":
        cnf.problems.append(f"{where}: `{name} {raw}` is a pragma: it changes how OpenSSL reads "
                            "the rest of the configuration; fipsboot's files have none")
        return None
    # OpenSSL ignores a `sect::` before an include; as before, only a prefix naming another
    # section than the current one makes it a spelling fipsboot refuses.
    prefixed = line.prefix is not None and line.prefix != section
    plain = name == ".include" and not prefixed and top
    if not plain:
        cnf.problems.append(f"{where}: `{name} {raw}` is an include (OpenSSL reads any name "
                            "starting with .include as one); only fipsboot's own `.include` of "
                            "fipsmodule.cnf may be in openssl.cnf")
        return None
    if has_stray_backslash(raw):
        cnf.problems.append(f"{where}: the .include {raw} uses backslashes, which OpenSSL reads "
                            "as escapes: write the path with forward slashes")
    if expands_variable(raw):
        cnf.problems.append(f"{where}: the .include {raw} expands a variable; fipsboot can't "
                            "tell which file OpenSSL reads")
        return None
    include = cnfsyntax.value(raw)
    cnf.includes.append(include)
    return include


def skip_dot(name: str) -> str:
    """A provider section's key as OpenSSL's provider_conf.c reads it: everything up to the
    first `.` is dropped (`x.module` is `module`)."""
    return name.split(".", 1)[1] if "." in name else name
