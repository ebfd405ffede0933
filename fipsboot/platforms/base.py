"""What a platform backend provides: the environment targets of the account that starts the
server, and how the server is launched.

A target holds the three variables for that account (a systemd drop-in, an env file, a shell
profile block; a service's or account's registry environment on Windows). It knows how to
read them and how to express new values while keeping everything that is not fipsboot's.
Targets compute `Change`s; only the journal applies them.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Dict, List

# The vocabulary of a change, imported from here by the platform modules.
from ..vocabulary import Change, Values, file_change, values_digest  # noqa: F401


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

