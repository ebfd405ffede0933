"""The `user:NAME` and `machine` targets: an environment key with one string value per
variable, and the type each value is written as (REG_SZ or REG_EXPAND_SZ)."""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from .base import Values
from .regseam import REG_EXPAND_SZ, REG_SZ, Registry
from .regtarget import RegistryTarget, Snapshot
from .winkeys import machine_key, user_key
from .winvariables import WINDOWS_VARIABLES, canonical_name


class VariableValues(RegistryTarget):
    """An environment key with one string value per variable (an account's, the machine's).

    A REG_EXPAND_SZ value is what Windows makes of it: `%VAR%` expanded, so verify compares
    the path a process really gets. fipsboot's own values are literal paths: REG_SZ whenever
    they hold a `%` (a folder named `CFG%OS%` must not become `CFGWindows_NT`); an existing
    value's type is kept only when fipsboot's value has no `%`, where both types read alike."""

    value_names = WINDOWS_VARIABLES

    def parse(self, snapshot: Snapshot) -> Values:
        out: Values = {}
        for name, value in (snapshot or {}).items():
            data = value["data"]
            if not isinstance(data, str) or canonical_name(name) is None:
                continue
            if value["type"] == REG_EXPAND_SZ and "%" in data:
                data = self.registry.expand(data)
            out[canonical_name(name)] = data
        return out

    def render(self, snapshot: Snapshot, desired: Values) -> Snapshot:
        new = {name: dict(value) for name, value in (snapshot or {}).items()}
        stored = {canonical_name(name): name for name in new}
        for key, wanted in desired.items():
            name = stored.get(key, key)  # a person's spelling of the name is kept
            current = new.get(name)
            if wanted is None:
                new.pop(name, None)
                continue
            kind = self._type_for(current, wanted)
            if current is None or current["data"] != wanted or current["type"] != kind:
                new[name] = {"type": kind, "data": wanted}
        return new or None

    @staticmethod
    def _type_for(current: Optional[Dict[str, Any]], value: str) -> str:
        if "%" in value:
            return REG_SZ  # a literal path: never expanded into another one
        if current is not None and current["type"] in (REG_SZ, REG_EXPAND_SZ):
            return current["type"]  # a person chose it, and without a % both read alike
        return REG_SZ


class UserEnvironment(VariableValues):
    """`HKU\\<SID>\\Environment` of one account; HKCU when that account is this process's."""

    def __init__(self, registry: Registry, account: str):
        super().__init__(registry)
        self.account = account
        self.spec = f"user:{account}"

    def locate(self) -> Tuple[str, str]:
        return user_key(self.registry, self.account)

    def notes(self) -> List[str]:
        return [f"{self.account} must log on again (or its service be restarted) "
                f"to get the new environment"]


class MachineEnvironment(VariableValues):
    """The system environment every account and service gets."""

    spec = "machine"

    def locate(self) -> Tuple[str, str]:
        return machine_key()

    def notes(self) -> List[str]:
        return ["restart the server's service (or log on again) to get the new environment; "
                "the Service Control Manager may keep the one it started with until Windows "
                "restarts"]
