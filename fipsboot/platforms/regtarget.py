"""What every Windows environment target shares: a set of registry values under one key,
snapshotted and restored exactly through the registry it was given.

A target's snapshot is what fipsboot may touch in it, as JSON: `{value name: {"type":
"REG_...", "data": str | [str]}}` holding only the values that exist, or None when none does.
The journal's "registry" store gets and sets exactly these snapshots, so a rollback gives back
the names' spelling and the types too. How the values hold the variables (one multi-string, or
one value per variable) is the subclass's: `parse` and `render`.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from ..errors import FipsbootError
from .base import Change, EnvTarget, Values, values_digest
from .regseam import VALUE_TYPES, Registry, not_a_string, where
from .winvariables import managed_only

STORE = "registry"  # the journal store these targets' changes go to

Snapshot = Optional[Dict[str, Dict[str, Any]]]


class RegistryTarget(EnvTarget):
    """A set of registry values under one key; `value_names` are all fipsboot may touch."""

    value_names: Tuple[str, ...]

    def __init__(self, registry: Registry):
        self.registry = registry

    def locate(self) -> Tuple[str, str]:
        """(root, key path), checked to be there (winkeys)."""
        raise NotImplementedError

    def parse(self, snapshot: Snapshot) -> Values:
        raise NotImplementedError

    def render(self, snapshot: Snapshot, desired: Values) -> Snapshot:
        raise NotImplementedError

    def ours(self, name: str) -> Optional[str]:
        """Our spelling of a value name, or None: registry names ignore case."""
        folded = name.casefold()
        return next((v for v in self.value_names if v.casefold() == folded), None)

    def snapshot(self) -> Snapshot:
        """Keyed by the names as stored (`Openssl_Conf` stays `Openssl_Conf`), so a restore
        gives back the exact spelling as well as the data and the type. One read of the key."""
        root, path = self.locate()
        found = {}
        for stored, (data, kind) in self.registry.values(root, path).items():
            if self.ours(stored) is None:
                continue
            if kind not in VALUE_TYPES:
                raise not_a_string(where(root, path, stored), kind)
            found[stored] = {"type": kind, "data": data}
        return found or None

    def restore(self, snapshot: Snapshot) -> None:
        """Make the values exactly `snapshot` (names' spelling included); values it lacks
        are deleted."""
        wanted = snapshot or {}
        unknown = sorted(n for n in wanted if self.ours(n) is None)
        if unknown:  # a journal entry for some other target: never write it here
            raise FipsbootError(f"{self.spec}: snapshot names {unknown[0]!r}, "
                                f"which fipsboot does not manage here")
        wanted_by_ours = {self.ours(n): n for n in wanted}
        root, path = self.locate()
        registry = self.registry
        now = {self.ours(n): (n, v) for n, v in registry.values(root, path).items()
               if self.ours(n) is not None}
        for name in self.value_names:
            current_name, current = now.get(name, (None, None))
            wanted_name = wanted_by_ours.get(name)
            if wanted_name is None:
                if current is not None:
                    registry.delete_value(root, path, current_name)
                continue
            value = (wanted[wanted_name]["data"], wanted[wanted_name]["type"])
            if current is not None and current_name != wanted_name:
                # The registry keeps a value's first spelling on a write: to give back the
                # exact one, the other spelling goes first.
                registry.delete_value(root, path, current_name)
                current = None
            if current != value:
                registry.set_value(root, path, wanted_name, *value)

    def read(self) -> Values:
        return self.parse(self.snapshot())

    def change(self, desired: Values) -> Change:
        desired = managed_only(desired)
        old = self.snapshot()
        new = self.render(old, desired)
        before, after = self.parse(old), self.parse(new)
        variables = {k: [before.get(k), desired[k]] for k in desired}
        return Change(STORE, self.spec, self.spec, old, new, values_digest(before),
                      values_digest(after), variables, self.notes())
