"""The `service:NAME` target: a service's `Environment` value, a REG_MULTI_SZ of KEY=VALUE
lines that the Service Control Manager adds to the service's environment at each start.
fipsboot's lines are merged in; entries that are not ours stay, in order."""
from __future__ import annotations

from typing import Dict, List, Tuple

from ..errors import FipsbootError
from .base import Values
from .regseam import HKLM, REG_MULTI_SZ, Registry, where
from .regtarget import RegistryTarget, Snapshot
from .winkeys import SERVICE_ENVIRONMENT_VALUE, service_key, service_path
from .winvariables import WINDOWS_VARIABLES, ambiguous, canonical_name


class ServiceEnvironment(RegistryTarget):
    """A service's `Environment` (REG_MULTI_SZ of KEY=VALUE), which the Service Control
    Manager adds to the service's environment. Entries that are not ours stay, in order."""

    value_names = (SERVICE_ENVIRONMENT_VALUE,)

    def __init__(self, registry: Registry, service: str):
        super().__init__(registry)
        self.path = service_path(service)
        self.service = service
        self.spec = f"service:{service}"

    def locate(self) -> Tuple[str, str]:
        return service_key(self.registry, self.service)

    def stored_name(self, snapshot: Snapshot) -> str:
        return next(iter(snapshot or {}), SERVICE_ENVIRONMENT_VALUE)

    def entries(self, snapshot: Snapshot) -> List[str]:
        value = (snapshot or {}).get(self.stored_name(snapshot))
        if value is None:
            return []
        if value["type"] != REG_MULTI_SZ:
            # Not a form the SCM uses: someone else's mistake, and not ours to reshape.
            raise FipsbootError(f"{self.spec}: {where(HKLM, self.path, 'Environment')} is "
                                f"{value['type']}, not REG_MULTI_SZ",
                                fix="make it a REG_MULTI_SZ of KEY=VALUE lines")
        return list(value["data"])

    def parse(self, snapshot: Snapshot) -> Values:
        """Names ignore case, as the environment block the SCM builds does. Two entries for
        one variable with different values (`OPENSSL_CONF=...`, `openssl_conf=C:\\evil.cnf`)
        are ambiguous: which one a process sees is not fipsboot's to guess, so the variable
        reads as a value that matches nothing fipsboot would write (install rewrites it)."""
        found: Dict[str, List[str]] = {}
        for entry in self.entries(snapshot):
            name, _, value = entry.partition("=")
            key = canonical_name(name)
            if key is not None:
                found.setdefault(key, []).append(value)
        return {key: values[0] if len(set(values)) == 1 else ambiguous(values)
                for key, values in found.items()}

    def render(self, snapshot: Snapshot, desired: Values) -> Snapshot:
        out, written = [], set()
        for entry in self.entries(snapshot):
            name, _, value = entry.partition("=")
            key = canonical_name(name)
            if key not in desired:
                out.append(entry)
            elif desired[key] is not None and key not in written:
                out.append(entry if value == desired[key] else f"{key}={desired[key]}")
                written.add(key)
            # else: a None value removes the entry; a duplicate is dropped
        out.extend(f"{key}={desired[key]}" for key in WINDOWS_VARIABLES
                   if desired.get(key) is not None and key not in written)
        if snapshot is None and not out:
            return None  # nothing to say and nothing there: don't create an empty value
        return {self.stored_name(snapshot): {"type": REG_MULTI_SZ, "data": out}}

    def notes(self) -> List[str]:
        return [f"restart service {self.service} for the server to get the new environment"]
