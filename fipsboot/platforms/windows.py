"""Windows backend: a service's, an account's or the machine's registry environment, reached
through the registry it is given (the machine's own, a Wine prefix's, or a test's); the
server run as a child with the console's stop keys passed on (winlaunch).

The targets: winservice.py (service:NAME), winvalues.py (user:NAME, machine), on regtarget.py's
snapshots; the keys they live under: winkeys.py.
"""
from __future__ import annotations

from typing import Any, Dict, List

from ..errors import FipsbootError
from . import winlaunch
from .base import Backend, Change, EnvTarget
from .regseam import Registry
from .regtarget import STORE, RegistryTarget, Snapshot
from .winservice import ServiceEnvironment
from .winvalues import MachineEnvironment, UserEnvironment


def target_for(registry: Registry, kind: str, arg: str) -> RegistryTarget:
    """The target for a profile entry or a journal key (`service:NAME`, `user:NAME`, `machine`)."""
    if kind == "service":
        return ServiceEnvironment(registry, arg)
    if kind == "user":
        return UserEnvironment(registry, arg)
    if kind == "machine" and not arg:
        return MachineEnvironment(registry)
    raise FipsbootError(f"target {kind}{':' + arg if arg else ''} is not supported on Windows")


class RegistryStore:
    """The journal's "registry" store: a key is a target's spec, a value its snapshot."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def get(self, key: str) -> Snapshot:
        return self._target(key).snapshot()

    def set(self, key: str, value: Snapshot) -> None:
        self._target(key).restore(value)

    def _target(self, key: str) -> RegistryTarget:
        kind, _, arg = key.partition(":")
        return target_for(self.registry, kind, arg)


def _is_environment_key(key: str) -> bool:
    return key == "machine" or key.startswith("user:")


class WindowsBackend(Backend):
    name = "windows"

    def __init__(self, registry: Registry):
        self.registry = registry

    def targets(self, profile) -> List[EnvTarget]:
        return [target_for(self.registry, t.kind, t.arg) for t in profile.targets]

    def stores(self) -> Dict[str, Any]:
        return {STORE: RegistryStore(self.registry)}

    def after_apply(self, changes: List[Change]) -> List[str]:
        """Explorer re-reads the account and machine environment only when told; a service's
        Environment is read by the SCM at each start, so it needs no broadcast."""
        if not any(c.changed and c.kind == STORE and _is_environment_key(c.key) for c in changes):
            return []
        if self.registry.broadcast_setting_change():
            return ["sent WM_SETTINGCHANGE: programs started from now on see the new environment"]
        return ["WM_SETTINGCHANGE did not reach every window (or this is not Windows): "
                "programs started from Explorer may see the change only after a new logon"]

    def launch(self, argv: List[str], env: Dict[str, str]) -> int:
        """Run the server and return its exit code (Windows has no exec to hand over the
        process); a server killed by signal N gives 128+N, as a shell reports it."""
        return winlaunch.launch(argv, env)
