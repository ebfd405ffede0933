"""What a platform backend provides: the environment targets of the account that starts the
server, and how the server is launched.

A target holds the three variables for that account (a systemd drop-in, an env file, a shell
profile block; a service's or account's registry environment on Windows). It knows how to
read them and how to express new values while keeping everything that is not fipsboot's.
Targets compute `Change`s; only the journal applies them.
"""
from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

Values = Dict[str, Optional[str]]  # None: the variable must not be defined


def values_digest(values: Mapping[str, Optional[str]]) -> str:
    """Digest of the values fipsboot manages in a target (what a hand edit would change)."""
    return hashlib.sha256(json.dumps(dict(values), sort_keys=True).encode()).hexdigest()


@dataclass
class Change:
    """One file or value to change. `old`/`new` are bytes for files, JSON-able for stores."""

    kind: str  # "file" or a journal store name ("registry")
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


class EnvTarget(ABC):
    spec: str  # as written in the profile, e.g. "envfile:/etc/default/gctilca"

    @abstractmethod
    def read(self) -> Values:
        """The managed variables this target defines now (absent ones are left out)."""

    @abstractmethod
    def change(self, desired: Values) -> Change:
        """The change that makes this target hold `desired` (None: remove the variable),
        keeping every byte that is not fipsboot's."""

    def notes(self) -> List[str]:
        return []

    def effective(self) -> Values:
        """What a process started from this target really ends up with, counting what is
        read after fipsboot's part (other drop-ins, later lines); by default fipsboot's part."""
        return self.read()

    def effective_problems(self) -> List[str]:
        """What in this target changes the variables in a way fipsboot can't judge."""
        return []


class Backend(ABC):
    name: str

    @abstractmethod
    def targets(self, profile) -> List[EnvTarget]:
        """The profile's [account] targets for this platform."""

    @abstractmethod
    def launch(self, argv: List[str], env: Dict[str, str]) -> int:
        """Start the server with `env`; on POSIX this does not return (exec)."""

    def after_apply(self, changes: List[Change]) -> List[str]:
        """Run what must follow a change (daemon-reload, WM_SETTINGCHANGE); return notes."""
        return []

    def stores(self) -> Dict[str, Any]:
        """Journal stores for values outside the file system (the Windows registry)."""
        return {}


def file_change(path: Path, label: str, old: Optional[bytes], new: Optional[bytes],
                managed_now: Optional[str], managed_new: str, variables=None,
                notes=None, owner=None) -> Change:
    return Change("file", str(path), label, old, new, managed_now, managed_new,
                  dict(variables or {}), list(notes or []), owner=owner)
