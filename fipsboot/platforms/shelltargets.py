"""The shell targets: an env file (`KEY="value"` lines that systemd's EnvironmentFile= and sh's
`. FILE` read alike) and a block in a login profile."""
from __future__ import annotations

import os
import pwd
import re
from pathlib import Path
from typing import List, Optional, Tuple

from .. import fsutil
from ..environ import VARIABLES
from ..errors import FipsbootError
from . import envsyntax
from .base import Values
from .envsyntax import sh_unquote
from .filetarget import FileTarget

BLOCK_BEGIN = "# >>> fipsboot: managed block, `fipsboot reset`/`rollback` change it >>>"
BLOCK_END = "# <<< fipsboot <<<"


def sh_double_quote(value: str) -> str:
    """Double quotes that sh and systemd's EnvironmentFile= both read back to `value`."""
    if "\n" in value or "\r" in value:
        raise FipsbootError(f"value {value!r} holds a line break: it can't go in an env file")
    return '"' + re.sub(r'([\\"$`])', r"\\\1", value) + '"'


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
