"""The words every command that changes an installation shares: the two modes, the values a
target holds, one change, and a plan of changes.

The verdict's word, a check, lives apart in checks.py: the read-only commands (verify, status,
tls-check, report) judge with checks and never plan, so each of the two modules has one reason
to change (what a change is; what a verdict is).
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

FIPS = "fips"
NONFIPS = "non-fips"
MODES = (FIPS, NONFIPS)
VARIABLES = ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")

Values = Dict[str, Optional[str]]  # None: the variable must not be defined


def values_digest(values: Mapping[str, Optional[str]]) -> str:
    """Digest of the values fipsboot manages in a target (what a hand edit would change)."""
    return hashlib.sha256(json.dumps(dict(values), sort_keys=True).encode()).hexdigest()


@dataclass
class Change:
    """One file or value to change. `old`/`new` are bytes for files, JSON-able for stores."""

    kind: str  # "file" or a journal store name ("registry", "ini")
    key: str  # the host path, or the store's key
    label: str  # what a person calls it: "openssl.cnf", "envfile:/etc/default/gctilca"
    old: Any
    new: Any
    managed_now: Optional[str]  # digest of fipsboot's part as it is now
    managed_new: str  # digest of fipsboot's part after the change
    variables: Dict[str, List[Optional[str]]] = field(default_factory=dict)  # name: [old, new]
    notes: List[str] = field(default_factory=list)
    mode: Optional[int] = None  # None: keep the file's mode (0644 for a new file)
    owner: Optional[Tuple[int, int]] = None  # (uid, gid) for a new file; existing files keep theirs
    where: Optional[str] = None  # the file behind it, if any (two targets must not share one)

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def action(self) -> str:
        if not self.changed:
            return "unchanged"
        if self.new is None:
            return "remove"
        return "create" if self.old is None else "update"

    def edited_by_hand(self, managed: Mapping[str, str]) -> bool:
        """fipsboot's part differs from what fipsboot last wrote there (`managed`: the
        journal's digests). The one test of a hand edit, for install/reset (refuse) and
        verify (drift) alike; a part that is gone altogether is rewritten, not protected."""
        recorded = managed.get(self.key)
        return recorded is not None and self.managed_now not in (recorded, None)

    def diff(self) -> str:
        """The change as a unified diff (what `ansible-playbook --diff` shows); "" when
        unchanged. A diff, not both texts: a login profile or env file may hold lines that are
        not fipsboot's."""
        if not self.changed:
            return ""
        import difflib  # only for the JSON of a plan: not on `run`'s start-up

        if isinstance(self.old, bytes) or isinstance(self.new, bytes):  # a file's bytes
            old, new = (b.decode("utf-8", "replace") if b is not None else None
                        for b in (self.old, self.new))
        else:  # a stored value (the server's switch, a registry value): its JSON
            old, new = (json.dumps(v, indent=1, sort_keys=True) + "\n" if v is not None else None
                        for v in (self.old, self.new))
        lines = difflib.unified_diff((old or "").splitlines(True), (new or "").splitlines(True),
                                     "/dev/null" if old is None else self.key,
                                     "/dev/null" if new is None else self.key)
        return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                       for line in lines)


def file_change(path: Path, label: str, old: Optional[bytes], new: Optional[bytes],
                managed_now: Optional[str], managed_new: str, variables=None,
                notes=None, owner=None) -> Change:
    return Change("file", str(path), label, old, new, managed_now, managed_new,
                  dict(variables or {}), list(notes or []), owner=owner, where=str(path))


@dataclass
class Plan:
    changes: List[Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Two targets in one file would each be computed from the same old bytes, and the
        # second write would silently undo the first.
        from .errors import UsageError

        seen: Dict[str, str] = {}
        for c in self.changes:
            where = os.path.realpath(c.where) if c.where else c.key
            if where in seen:
                raise UsageError(f"{seen[where]} and {c.label} both name {where}; "
                                 "give each target its own file")
            seen[where] = c.label

    @property
    def pending(self) -> List[Change]:
        return [c for c in self.changes if c.changed]

    def edited_by_hand(self, managed: Mapping[str, str]) -> List[str]:
        """What the plan would overwrite although it was edited since fipsboot wrote it."""
        return [f"{c.label} ({c.key}) was edited since fipsboot wrote it"
                for c in self.changes if c.changed and c.edited_by_hand(managed)]

    def to_json(self) -> List[dict]:
        return [{"target": c.label, "path": c.key, "action": c.action,
                 "variables": {k: {"old": v[0], "new": v[1]} for k, v in c.variables.items()},
                 "notes": c.notes, "diff": c.diff()} for c in self.changes]
