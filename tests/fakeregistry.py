"""The test double for the Windows registry: an in-memory `Registry` with the real one's rules,
handed to the Windows backend and its targets as their registry (`WindowsBackend(fake)`)."""
from __future__ import annotations

from typing import Dict, Mapping, Optional, Tuple

from fipsboot.errors import FipsbootError
from fipsboot.platforms.regseam import (
    ROOTS,
    Data,
    Registry,
    RegValue,
    check_value,
    expand_environment_strings,
    where,
)


class FakeRegistry(Registry):
    """An in-memory registry with the real one's rules: key paths and value names are
    case-insensitive (the first spelling is kept), keys are never created by a write."""

    def __init__(self, accounts: Optional[Mapping[str, str]] = None,
                 current_user: Optional[str] = None,
                 environment: Optional[Mapping[str, str]] = None):
        self.environment = dict(environment or {"OS": "Windows_NT",
                                                "SystemRoot": "C:\\Windows"})
        self.keys: Dict[Tuple[str, str], Dict[str, Tuple[str, Data, str]]] = {}
        self.accounts = {name.casefold(): sid for name, sid in (accounts or {}).items()}
        self.current_user = current_user
        self.broadcasts = 0

    @staticmethod
    def _id(root: str, path: str) -> Tuple[str, str]:
        if root not in ROOTS:
            raise ValueError(f"unknown registry root {root!r} (known: {', '.join(ROOTS)})")
        return root, path.strip("\\").casefold()

    def create_key(self, root: str, path: str) -> None:
        """Set up a key (and its parents), as Windows or an installer would have."""
        parts = path.strip("\\").split("\\")
        for n in range(len(parts) + 1):
            self.keys.setdefault(self._id(root, "\\".join(parts[:n])), {})

    def values(self, root: str, path: str) -> Dict[str, RegValue]:
        """Every value of a key, by its stored name (for tests to look at)."""
        stored = self.keys.get(self._id(root, path), {})
        return {name: (_copy(data), kind) for name, data, kind in stored.values()}

    def dump(self) -> Dict[Tuple[str, str], Dict[str, RegValue]]:
        """A deep copy of everything, to compare a before with an after."""
        return {key: {n: (_copy(d), k) for n, d, k in vals.values()}
                for key, vals in self.keys.items()}

    def expand(self, text: str) -> str:
        return expand_environment_strings(text, self.environment)

    def get_value(self, root: str, path: str, name: str) -> Optional[RegValue]:
        stored = self.keys.get(self._id(root, path), {}).get(name.casefold())
        return None if stored is None else (_copy(stored[1]), stored[2])

    def set_value(self, root: str, path: str, name: str, data: Data, kind: str) -> None:
        check_value(data, kind)
        key = self.keys.get(self._id(root, path))
        if key is None:
            raise FipsbootError(f"cannot write {where(root, path, name)}: "
                                f"the key does not exist")
        spelling = key.get(name.casefold(), (name,))[0]
        key[name.casefold()] = (spelling, _copy(data), kind)

    def delete_value(self, root: str, path: str, name: str) -> None:
        self.keys.get(self._id(root, path), {}).pop(name.casefold(), None)

    def subkey_exists(self, root: str, path: str) -> bool:
        return self._id(root, path) in self.keys

    def account_sid(self, account: str) -> str:
        sid = self.accounts.get(account.casefold())
        if sid is None:
            raise FipsbootError(f"user:{account}: no such account")
        return sid

    def current_sid(self) -> str:
        if self.current_user is None:
            raise FipsbootError("the current account is unknown")
        return self.account_sid(self.current_user)

    def broadcast_setting_change(self) -> bool:
        self.broadcasts += 1
        return True


def _copy(data: Data) -> Data:
    return list(data) if isinstance(data, list) else data
