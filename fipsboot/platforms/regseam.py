"""The registry seam: what every registry fipsboot works on offers, and the values it holds.

Three registries have this interface: the real one (`winregistry.WinRegistry`, winreg), a
Wine prefix's (`wineregistry.WineRegistry`, its reg.exe) and the tests' in-memory one
(tests/fakeregistry.py). `platforms.backend_for` picks one per profile and hands it to the
Windows backend, its targets and its journal store; nothing holds a registry in a global.

A value is `(data, type)`: data is a str for REG_SZ/REG_EXPAND_SZ and a list of str for
REG_MULTI_SZ; type is the type's name. Keys are never created: every key fipsboot writes to
(a service's key, an account's or the machine's Environment key) exists when Windows is set
up, and creating one by mistake would leave a stray service key behind.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ..errors import FipsbootError

HKLM, HKU, HKCU = "HKLM", "HKU", "HKCU"
ROOTS = (HKLM, HKU, HKCU)
REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ = "REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ"
VALUE_TYPES = (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ)

Data = Union[str, List[str]]
RegValue = Tuple[Data, str]  # (data, type name)


class Registry(ABC):
    """One registry, reached by (root, key path, value name); names ignore case."""

    @abstractmethod
    def values(self, root: str, path: str) -> Dict[str, RegValue]:
        """Every value of a key by its name as stored ({} when the key is gone); a value that
        is not a string comes as (None, "type N")."""

    @abstractmethod
    def get_value(self, root: str, path: str, name: str) -> Optional[RegValue]:
        """The value, or None when it (or its key) does not exist; a value that is not a
        string is refused (`not_a_string`)."""

    @abstractmethod
    def set_value(self, root: str, path: str, name: str, data: Data, kind: str) -> None:
        """Write the value (`check_value` first); the key must exist already."""

    @abstractmethod
    def delete_value(self, root: str, path: str, name: str) -> None:
        """Delete the value; one that is already gone is fine (restores are idempotent)."""

    @abstractmethod
    def subkey_exists(self, root: str, path: str) -> bool:
        """Whether the key is there."""

    @abstractmethod
    def expand(self, text: str) -> str:
        """`text` as Windows expands a REG_EXPAND_SZ value for a process."""

    @abstractmethod
    def account_sid(self, account: str) -> str:
        """The account's SID as a string (S-1-5-21-...)."""

    @abstractmethod
    def current_sid(self) -> str:
        """The SID of the account this process runs as (whose hive HKCU is)."""

    @abstractmethod
    def broadcast_setting_change(self) -> bool:
        """Tell running programs to re-read the environment. False: not sent, or not every
        window answered."""


def where(root: str, path: str, name: Optional[str] = None) -> str:
    """How a person writes the key (and value), for messages."""
    return f"{root}\\{path}" + (f" [{name}]" if name is not None else "")


def not_a_string(place: str, kind) -> FipsbootError:
    """Only string values can be snapshotted and given back exactly; one that is not is not
    fipsboot's doing, so a person has to decide what it should be."""
    return FipsbootError(f"{place} has registry type {kind}, not a string: fipsboot leaves it "
                         f"alone", fix="delete the value or make it a REG_SZ, then run again")


def check_value(data: Data, kind: str) -> None:
    """Refuse what the registry would store differently from what was asked (so a restore
    could not give it back): unknown types, wrong data shapes, NUL characters."""
    if kind not in VALUE_TYPES:
        raise ValueError(f"unsupported registry value type {kind!r}")
    strings = data if kind == REG_MULTI_SZ else [data]
    if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
        shape = "a list of str" if kind == REG_MULTI_SZ else "a str"
        raise TypeError(f"{kind} data must be {shape}")
    if any("\0" in s for s in strings):
        raise FipsbootError(f"{data!r} holds a NUL character: it can't go in the registry")
    if kind == REG_MULTI_SZ and "" in strings:  # an empty string ends a REG_MULTI_SZ
        raise FipsbootError(f"{data!r}: a REG_MULTI_SZ can't hold an empty string")


def expand_environment_strings(text: str, lookup: Mapping[str, str]) -> str:
    """What ExpandEnvironmentStrings makes of `text`: `%NAME%` replaced by the variable
    (names ignore case), an undefined one and a lone `%` left as they are."""
    folded = {k.casefold(): v for k, v in lookup.items()}
    out, rest = [], text
    while "%" in rest:
        before, _, after = rest.partition("%")
        name, found, tail = after.partition("%")
        out.append(before)
        if not found:  # a lone %: kept
            out.append("%" + after)
            rest = ""
            break
        if name and name.casefold() in folded:
            out.append(folded[name.casefold()])
            rest = tail
        else:  # not a defined variable: kept, and its closing % may open the next one
            out.append("%" + name)
            rest = "%" + tail
    return "".join(out) + rest
