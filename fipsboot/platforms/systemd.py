"""The systemd target: a unit's drop-in `<systemd-dir>/UNIT.d/50-fipsboot.conf` (the whole file is
fipsboot's), and what the unit really gets, read as systemd reads every unit file and drop-in."""
from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import fsutil
from ..environ import VARIABLES
from ..errors import FipsbootError
from . import envsyntax
from .base import Values
from .filetarget import FileTarget

DROPIN_NAME = "50-fipsboot.conf"


def systemd_quote(assignment: str) -> str:
    """One Environment= word: quoted, C-style escapes, `%` doubled (systemd specifiers)."""
    if "\n" in assignment:
        raise FipsbootError(f"{assignment!r} holds a line break: it can't go in a unit file")
    return '"' + assignment.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%") + '"'


def systemd_unquote(word: str) -> str:
    word = word.strip()
    if len(word) >= 2 and word[0] == word[-1] == '"':
        word = re.sub(r"\\(.)", r"\1", word[1:-1])
    return word.replace("%%", "%")


class SystemdDropIn(FileTarget):
    """`<systemd-dir>/UNIT.d/50-fipsboot.conf`: the whole file is fipsboot's."""

    def __init__(self, unit: str, systemd_dir: str):
        if "/" in unit or not unit:
            raise FipsbootError(f"systemd:{unit}: not a unit name")
        self.unit = unit if "." in unit else unit + ".service"
        self.spec = f"systemd:{unit}"
        self.path = Path(systemd_dir) / f"{self.unit}.d" / DROPIN_NAME

    def parse(self, text: str) -> Values:
        found: Values = {}
        for line in text.splitlines():
            m = re.match(r"\s*Environment=(.*)$", line)
            if not m:
                continue
            for word in re.findall(r'"(?:\\.|[^"\\])*"|\S+', m.group(1)):
                key, _, value = systemd_unquote(word).partition("=")
                if key in VARIABLES:
                    found[key] = value
        for line in text.splitlines():
            m = re.match(r"\s*UnsetEnvironment=(.*)$", line)
            if m:
                for key in m.group(1).split():
                    found.pop(key, None)
        return found

    def managed_digest(self, data: Optional[bytes]) -> str:
        return fsutil.digest(data or b"")

    def render(self, text: str, desired: Values) -> Optional[str]:
        lines = ["# Written by fipsboot; `fipsboot reset` and `fipsboot rollback` change it.",
                 "[Service]"]
        for key in VARIABLES:
            if desired.get(key) is not None:
                lines.append("Environment=" + systemd_quote(f"{key}={desired[key]}"))
        unset = [k for k in VARIABLES if k in desired and desired[k] is None]
        if unset:  # undefined for the service even if the unit or a manager default sets them
            lines.append("UnsetEnvironment=" + " ".join(unset))
        return "\n".join(lines) + "\n"

    def notes(self) -> List[str]:
        return [f"restart {self.unit} for the server to get the new environment"]

    # --- what the service really gets: the unit and all its drop-ins, in systemd's order --

    def unit_dirs(self) -> List[Path]:
        """Where systemd looks for the unit and its drop-ins, highest priority first
        (systemd.unit(5), system manager): the profile's systemd-dir alone, or, when that is
        `<root>/etc/systemd/system`, every folder of that root's unit search path."""
        first = self.path.parent.parent
        if first.parts[-3:] != ("etc", "systemd", "system"):
            return [first]
        root = first.parents[2]
        return [root / d for d in (
            "etc/systemd/system.control", "run/systemd/system.control", "run/systemd/transient",
            "run/systemd/generator.early", "etc/systemd/system", "etc/systemd/system.attached",
            "run/systemd/system", "run/systemd/system.attached", "run/systemd/generator",
            "usr/local/lib/systemd/system", "usr/lib/systemd/system", "lib/systemd/system",
            "run/systemd/generator.late")]

    def unit_names(self) -> List[str]:
        """The unit, then its template (`ors@.service` for `ors@1.service`)."""
        stem, _, suffix = self.unit.rpartition(".")
        if "@" in stem and not stem.endswith("@"):
            return [self.unit, stem.partition("@")[0] + "@." + suffix]
        return [self.unit]

    def dropin_dirs(self, names: Optional[List[str]] = None) -> List[str]:
        """For each name of the unit (itself, its template, what its file links to):
        `NAME.d` and the prefix folders of a dashed name (`a-.service.d` for `a-b.service`);
        then the unit type's (`service.d`), as systemd.unit(5) lists them."""
        out: List[str] = []
        suffix = self.unit.rpartition(".")[2]
        for name in names or self.unit_names():
            stem = name.rpartition(".")[0]
            parts = stem.split("-")
            prefixes = ["-".join(parts[:i]) + "-." + suffix + ".d" for i in range(1, len(parts))]
            out += [d for d in [f"{name}.d", *prefixes] if d not in out]
        return out + [f"{suffix}.d"]

    def _sources(self) -> Tuple[List[Tuple[Path, bytes]], List[str]]:
        sources: List[Tuple[Path, bytes]] = []
        problems: List[str] = []
        names = self.unit_names()
        found = next(((d / n) for n in names for d in self.unit_dirs()
                      if os.path.lexists(d / n)), None)
        if found is not None:
            data, problem = read_for_judging(found)
            if problem:
                problems.append(f"{self.spec}: {problem}")
            elif data is not None:
                sources.append((found, data))
            if found.is_symlink():  # an alias or a linked unit: its own name's drop-ins count
                real = Path(os.path.realpath(found)).name
                if real not in names and real.endswith("." + self.unit.rpartition(".")[2]):
                    names.append(real)
        chosen: Dict[str, Path] = {}
        for d in self.unit_dirs():  # a name in a higher-priority folder masks the same name
            for sub in self.dropin_dirs(names):
                folder = d / sub
                if folder.is_dir():
                    for f in folder.iterdir():
                        if f.name.endswith(".conf") and f.name not in chosen:
                            chosen[f.name] = f
        for name in sorted(chosen):
            data, problem = read_for_judging(chosen[name])
            if problem:
                problems.append(f"{self.spec}: {problem}")
            elif data is not None:
                sources.append((chosen[name], data))
        return sources, problems

    def _assemble(self) -> Tuple[Values, List[str]]:
        env: Dict[str, str] = {}
        unset: List[str] = []
        env_files: List[str] = []
        sources, odd = self._sources()
        for path, data in sources:
            section = ""
            for line in envsyntax.unit_lines(data.decode("utf-8", "replace")):
                s = line.strip()
                if s.startswith("[") and s.endswith("]"):
                    section = s[1:-1]
                    continue
                if section != "Service" or "=" not in s:
                    continue
                key, _, value = s.partition("=")
                key = key.strip()
                if key == "Environment":
                    if not value.strip():
                        env.clear()  # an empty assignment resets the list
                    words = envsyntax.environment_words(value)
                    if words is None:
                        if any(k in value for k in VARIABLES):
                            odd.append(f"{self.spec}: {path}: {s[:80]!r} can't be judged")
                        continue
                    for word in words:
                        name, eq, v = word.partition("=")
                        if not eq or not re.fullmatch(envsyntax.NAME, name):
                            continue  # systemd ignores an invalid assignment
                        if "%" in v.replace("%%", "") and name in VARIABLES:
                            odd.append(f"{self.spec}: {path}: {name}= holds a systemd "
                                       "specifier; can't be judged")
                        env[name] = v.replace("%%", "%")
                elif key == "UnsetEnvironment":
                    if not value.strip():
                        unset.clear()
                    unset += value.split()
                elif key == "EnvironmentFile":
                    if not value.strip():
                        env_files.clear()
                    env_files.append(value.strip())
        for spec in env_files:  # read after Environment=, so they override it
            name = spec[1:] if spec.startswith("-") else spec
            if not name.startswith("/") or any(c in name for c in "%*?["):
                odd.append(f"{self.spec}: EnvironmentFile={spec} can't be judged")
                continue
            data, problem = read_for_judging(Path(name))
            if problem:
                odd.append(f"{self.spec}: EnvironmentFile={spec}: {problem}")
                continue
            if data is None:
                if not spec.startswith("-"):
                    odd.append(f"{self.spec}: EnvironmentFile={spec} does not exist (the "
                               "service won't start)")
                continue
            text = data.decode("utf-8", "surrogateescape")
            read = {k: v for _, k, v in envsyntax.systemd_env_file(text)}
            with_export = {k: v for _, k, v in envsyntax.systemd_env_file(text, True)}
            newer = {k: v for _, k, v in envsyntax.systemd_env_file(text, False, False)}
            for key in VARIABLES:
                if read.get(key) != newer.get(key):
                    odd.append(f"{self.spec}: EnvironmentFile={name}: systemd before and after "
                               f"v254 read {key} differently (a comment line ending in `\\`)")
                if read.get(key) != with_export.get(key):
                    odd.append(f"{self.spec}: EnvironmentFile={name}: systemd ignores `export "
                               f"{key}=...` (EnvironmentFile= reads only NAME=value lines; "
                               f"`export NAME` is not a valid name): drop `export` there")
            env.update(read)
        for item in unset:  # applied last
            name, eq, v = item.partition("=")
            if not eq or env.get(name) == v:
                env.pop(name, None)
        return {k: env[k] for k in VARIABLES if k in env}, odd

    def effective(self) -> Values:
        return self._assemble()[0]

    def effective_problems(self) -> List[str]:
        return self._assemble()[1]


def read_for_judging(path: Path) -> Tuple[Optional[bytes], Optional[str]]:
    """A unit file or drop-in read as systemd reads it, for judging only (never written
    through): a link is followed when root (or this account) owns it; a link to /dev/null
    masks the name (empty). (bytes or None when missing, a problem or None)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None, None
    try:
        if stat.S_ISLNK(st.st_mode):
            if st.st_uid not in fsutil.trusted_owners():
                return None, (f"{path} is a symbolic link owned by uid {st.st_uid}: fipsboot "
                              "reads through links only when root owns them; can't be judged")
            real = os.path.realpath(path)
            if real == os.devnull:
                return b"", None
            return fsutil.read(Path(real)), None
        return fsutil.read(path), None
    except (FipsbootError, OSError) as e:
        return None, f"{path}: {e}; can't be judged"
