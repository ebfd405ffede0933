"""Linux backend: systemd drop-in, env file, shell-profile block; exec of the server."""
from __future__ import annotations

import os
import pwd
import re
import stat
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from .. import fsutil
from ..environ import VARIABLES
from ..errors import FipsbootError, FollowUpError
from . import envsyntax
from .base import Backend, Change, EnvTarget, Values, file_change, values_digest
from .envsyntax import sh_unquote

DROPIN_NAME = "50-fipsboot.conf"
BLOCK_BEGIN = "# >>> fipsboot: managed block, `fipsboot reset`/`rollback` change it >>>"
BLOCK_END = "# <<< fipsboot <<<"


# --- quoting ----------------------------------------------------------------------------

def sh_double_quote(value: str) -> str:
    """Double quotes that sh and systemd's EnvironmentFile= both read back to `value`."""
    if "\n" in value or "\r" in value:
        raise FipsbootError(f"value {value!r} holds a line break: it can't go in an env file")
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'


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


# --- targets ----------------------------------------------------------------------------

class FileTarget(EnvTarget):
    """A target that is (part of) one file."""

    path: Path

    def current(self) -> Optional[bytes]:
        return fsutil.read(self.path)

    def read(self) -> Values:
        data = self.current()
        return self.parse(data.decode("utf-8", "surrogateescape")) if data is not None else {}

    def parse(self, text: str) -> Values:
        raise NotImplementedError

    def render(self, text: str, desired: Values) -> Optional[str]:
        raise NotImplementedError

    def managed_digest(self, data: Optional[bytes]) -> str:
        return values_digest(self.parse(data.decode("utf-8", "replace")) if data else {})

    owner: Optional[Tuple[int, int]] = None  # who a new file belongs to (a user's profile)

    def change(self, desired: Values) -> Change:
        old = self.current()
        # surrogateescape: bytes that are not UTF-8 come back exactly as they were.
        new_text = self.render(old.decode("utf-8", "surrogateescape") if old is not None
                               else "", desired)
        new = None if new_text is None else new_text.encode("utf-8", "surrogateescape")
        if old is None and new is not None and not new_text.strip():
            new = None  # nothing to say and nothing there: don't create an empty file
        before = self.read()
        variables = {k: [before.get(k), desired.get(k)] for k in desired}
        return file_change(self.path, self.spec, old, new, self.managed_digest(old),
                           self.managed_digest(new), variables, self.notes(), self.owner)


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


class EnvFile(FileTarget):
    """`KEY="value"` lines, read the same by systemd's EnvironmentFile= and by `. FILE` in sh.
    Lines that are not fipsboot's variables stay byte for byte; a line written as
    `export KEY=...` keeps its `export` (a start script that sources the file passes the
    variables on only then). An `unset` of a variable fipsboot sets is taken out of its line
    (sh would apply it, systemd ignores it: the two would disagree)."""

    LINE = re.compile(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$")
    UNSET = re.compile(r"^\s*unset\s+([A-Za-z_][A-Za-z0-9_\s]*?)\s*(?:#.*)?$")

    def __init__(self, path: str):
        self.path = Path(path)
        self.spec = f"envfile:{path}"

    def parse(self, text: str) -> Values:
        found: Values = {}
        for line in text.splitlines():
            m = self.LINE.match(line)
            if m and m.group(2) in VARIABLES:
                found[m.group(2)] = sh_unquote(m.group(3))
        return found

    def text(self) -> str:
        data = self.current()
        return data.decode("utf-8", "surrogateescape") if data is not None else ""

    def effective(self) -> Values:
        """What `. FILE` in sh ends up with (assignments and `unset` in order)."""
        return envsyntax.sh_values(envsyntax.sh_lines(self.text(), VARIABLES), VARIABLES)

    def effective_problems(self) -> List[str]:
        """Every line that is not plain (sh would run it: fipsboot can't know what it does),
        and every variable systemd's EnvironmentFile= reads otherwise than sh (an `unset`,
        which systemd ignores). An `export` line is read by sh only; that is judged where a
        unit names the file (EnvironmentFile=)."""
        text = self.text()
        lines = envsyntax.sh_lines(text, VARIABLES)
        out = [f"{self.spec}: line {line.number} ({line.text.strip()[:60]!r}) is not a plain "
               "`NAME=value` assignment or comment: fipsboot can't judge what sh makes of it "
               f"(it may change {', '.join(VARIABLES)}); keep only comments and plain "
               "assignments in this file" for line in lines if line.kind == "odd"]
        if out:
            return out
        sh = envsyntax.sh_values(lines, VARIABLES)
        for continues in (True, False):  # systemd before v254, and since
            systemd = {k: v for _, k, v in envsyntax.systemd_env_file(text, True, continues)}
            out += [f"{self.spec}: sh and systemd read {key} differently (an `unset` line, or "
                    "a comment line ending in `\\`)"
                    for key in VARIABLES if sh.get(key) != systemd.get(key) and key not in
                    " ".join(out)]
        return out

    def render(self, text: str, desired: Values) -> Optional[str]:
        out, written = [], set()
        for line in text.splitlines(keepends=True):
            m = self.LINE.match(line)
            key = m.group(2) if m else None
            if key in desired:
                if desired[key] is not None and key not in written:
                    out.append(f"{m.group(1) and 'export ' or ''}{key}="
                               f"{sh_double_quote(desired[key])}\n")
                    written.add(key)
                continue  # a None value: the line goes; a duplicate line: dropped
            u = self.UNSET.match(line)
            if u and any(desired.get(k) is not None for k in u.group(1).split()):
                rest = [k for k in u.group(1).split() if desired.get(k) is None]
                if rest:
                    out.append("unset " + " ".join(rest) + "\n")
                continue  # an unset of a variable fipsboot sets would undo it in sh
            out.append(line)
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
        for key in VARIABLES:
            if desired.get(key) is not None and key not in written:
                out.append(f"{key}={sh_double_quote(desired[key])}\n")
        return "".join(out)


class ProfileBlock(FileTarget):
    """A block between marker lines in a login profile; the rest of the file is untouched."""

    def __init__(self, path: Path, spec: str, owner: Optional[Tuple[int, int]] = None):
        self.path = path
        self.spec = spec
        self.owner = owner

    def _split(self, text: str) -> Tuple[str, Optional[str], str]:
        start = text.find(BLOCK_BEGIN)
        if start < 0:
            return text, None, ""
        end = text.find(BLOCK_END, start)
        if end < 0:
            raise FipsbootError(f"{self.path}: fipsboot's block has no end marker; "
                                f"restore the line {BLOCK_END!r} or remove the block")
        end = text.find("\n", end)
        end = len(text) if end < 0 else end + 1
        return text[:start], text[start:end], text[end:]

    def parse(self, text: str) -> Values:
        _, block, _ = self._split(text)
        found: Values = {}
        for line in (block or "").splitlines():
            m = re.match(r"\s*export\s+([A-Za-z_]\w*)=(.*)$", line)
            if m and m.group(1) in VARIABLES:
                found[m.group(1)] = sh_unquote(m.group(2))
        return found

    def render(self, text: str, desired: Values) -> Optional[str]:
        head, _, tail = self._split(text)
        lines = [BLOCK_BEGIN]
        for key in VARIABLES:
            if desired.get(key) is not None:
                lines.append(f"export {key}={sh_double_quote(desired[key])}")
        unset = [k for k in VARIABLES if k in desired and desired[k] is None]
        if unset:
            lines.append("unset " + " ".join(unset))
        lines.append(BLOCK_END)
        if head and not head.endswith("\n"):
            head += "\n"
        return head + "\n".join(lines) + "\n" + tail

    def managed_digest(self, data: Optional[bytes]) -> str:
        _, block, _ = self._split(data.decode("utf-8", "replace")) if data else ("", None, "")
        return fsutil.digest((block or "").encode())

    def effective(self) -> Values:
        """What the login shell ends up with: the whole file as sh reads it, so a line after
        fipsboot's block (an `unset`, another value) counts."""
        data = self.current()
        text = data.decode("utf-8", "surrogateescape") if data is not None else ""
        return envsyntax.sh_values(envsyntax.sh_lines(text, VARIABLES), VARIABLES)

    def effective_problems(self) -> List[str]:
        """Lines whose effect on the variables fipsboot can't judge. After fipsboot's block
        every line must be plain (it runs last: an `unset`, an `eval`, a `. file` there decides
        what the shell ends up with). Before the block, the block's own assignments win, so
        only what could stop them counts: a line naming one of the variables, or making a
        name read-only (`readonly`, `declare`/`typeset`); a login profile's usual `if` blocks
        and `. ~/.bashrc` stay allowed (the account that owns the file owns its shell anyway)."""
        data = self.current()
        text = data.decode("utf-8", "surrogateescape") if data is not None else ""
        head, block, _ = self._split(text)
        block_line = head.count("\n") + 1 if block else None
        blocking = re.compile(r"\b(readonly|declare|typeset|" + "|".join(VARIABLES) + r")\b")
        return [f"{self.spec}: line {line.number} ({line.text.strip()[:60]!r}) is not a plain "
                "`NAME=value` assignment, comment or fipsboot's block: fipsboot can't judge "
                f"what the shell makes of it (it may change {', '.join(VARIABLES)}); keep only "
                "those after fipsboot's block (or name a profile file that holds only those)"
                for line in envsyntax.sh_lines(text, VARIABLES) if line.kind == "odd"
                and (block_line is None or line.number > block_line
                     or blocking.search(line.text))]


def login_profile(user: str) -> Path:
    """The login profile the user's shell reads (bash: the first of its three that exists)."""
    entry = account(user)
    home = Path(entry.pw_dir)
    if os.path.basename(entry.pw_shell) == "bash":
        for name in (".bash_profile", ".bash_login", ".profile"):
            if (home / name).exists():
                return home / name
    return home / ".profile"


def account(user: str):
    try:
        return pwd.getpwnam(user)
    except KeyError:
        raise FipsbootError(f"profile:{user}: no such account") from None


DAEMON_RELOAD_TIMEOUT = 300  # a busy systemd can take long; a hung one is a failed follow-up


class LinuxBackend(Backend):
    name = "linux"
    # sd_booted(3): systemd is the running init when this folder exists. A class attribute so
    # that tests can point it at a folder of their own (tests/systemdstandin.py).
    systemd_runtime = Path("/run/systemd/system")

    def targets(self, profile) -> List[EnvTarget]:
        out: List[EnvTarget] = []
        for t in profile.targets:
            if t.kind == "systemd":
                out.append(SystemdDropIn(t.arg, profile.systemd_dir))
            elif t.kind == "envfile":
                out.append(EnvFile(t.arg))
            elif t.kind == "profile":
                entry = account(t.arg)
                out.append(ProfileBlock(login_profile(t.arg), str(t),
                                        (entry.pw_uid, entry.pw_gid)))
            elif t.kind == "profile-file":
                out.append(ProfileBlock(Path(t.arg), str(t)))
            else:  # the profile parser only lets known kinds through
                raise FipsbootError(f"target {t} is not supported on Linux")
        return out

    def after_apply(self, changes: List[Change]) -> List[str]:
        """systemd re-reads unit files only when asked, and only a running systemd can be."""
        if not any(c.changed and c.kind == "file" and Path(c.key).name == DROPIN_NAME
                   for c in changes):
            return []
        import shutil

        from ..processes import run_together

        if not self.systemd_runtime.is_dir() or not shutil.which("systemctl"):
            return ["systemd is not the running init here: `systemctl daemon-reload` skipped"]
        r, = run_together([(["systemctl", "daemon-reload"], b"")], os.environ, DAEMON_RELOAD_TIMEOUT,
                          FollowUpError)
        if r.returncode:
            raise FollowUpError(f"the unit files are written, but `systemctl daemon-reload` failed "
                                f"(systemd has not loaded them yet): {r.stderr.strip()}",
                                "fix what stops the reload, then run any fipsboot install, "
                                "reset or rollback again: each retries it until it succeeds")
        return ["ran `systemctl daemon-reload`"]

    def launch(self, argv: List[str], env: Dict[str, str]) -> int:
        # exec: same PID, signals reach the server directly, its exit status is the caller's.
        try:
            os.execvpe(argv[0], argv, env)
        except OSError as e:
            raise FipsbootError(f"cannot start {argv[0]}: {e.strerror}") from None
        return 0  # not reached
