"""Windows backend: a service's, an account's or the machine's registry environment; the
server run as a child (Windows has no exec) with the console's stop keys passed on.

Every registry access goes through `winregistry.get_registry()`. A target's snapshot is what
fipsboot may touch in it, as JSON: `{value name: {"type": "REG_...", "data": str | [str]}}`
holding only the values that exist, or None when none does. The journal's "registry" store
gets and sets exactly these snapshots, so a rollback gives back the types too.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from typing import Any, Dict, List, Optional, Tuple

from ..environ import VARIABLES
from ..errors import FipsbootError
from .base import Backend, Change, EnvTarget, Values, values_digest
from .winregistry import (
    HKCU,
    HKLM,
    HKU,
    REG_EXPAND_SZ,
    REG_MULTI_SZ,
    REG_SZ,
    VALUE_TYPES,
    broadcast_setting_change,
    get_registry,
    where,
)

STORE = "registry"
# Windows finds DLLs beside the program: LD_LIBRARY_PATH means nothing there.
WINDOWS_VARIABLES = tuple(v for v in VARIABLES if v != "LD_LIBRARY_PATH")
SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"
MACHINE_ENVIRONMENT_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
SERVICE_ENVIRONMENT_VALUE = "Environment"

Snapshot = Optional[Dict[str, Dict[str, Any]]]


def managed_only(desired: Values) -> Values:
    return {k: v for k, v in desired.items() if k in WINDOWS_VARIABLES}


def canonical_name(name: str) -> Optional[str]:
    """Our variable's spelling for `name`: Windows variable names ignore case."""
    folded = name.casefold()
    return next((v for v in WINDOWS_VARIABLES if v.casefold() == folded), None)


def ambiguous(values: List[str]) -> str:
    """What a variable defined more than once (differently) reads as: matches nothing."""
    return f"<ambiguous: defined {len(values)} times: " + ", ".join(map(repr, values)) + ">"


class RegistryTarget(EnvTarget):
    """A set of registry values under one key; `value_names` are all fipsboot may touch."""

    value_names: Tuple[str, ...]

    def locate(self) -> Tuple[str, str]:
        """(root, key path), checked to be there: a clear error now beats a half-made change."""
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
        for stored, (data, kind) in get_registry().values(root, path).items():
            if self.ours(stored) is None:
                continue
            if kind not in VALUE_TYPES:
                # Only string values can be snapshotted and given back exactly; this one is
                # not fipsboot's doing, so a person has to decide what it should be.
                raise FipsbootError(f"{where(root, path, stored)} has registry type {kind}, "
                                    f"not a string: fipsboot leaves it alone",
                                    fix="delete the value or make it a REG_SZ, then run again")
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
        registry = get_registry()
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


class ServiceEnvironment(RegistryTarget):
    """A service's `Environment` (REG_MULTI_SZ of KEY=VALUE), which the Service Control
    Manager adds to the service's environment. Entries that are not ours stay, in order."""

    value_names = (SERVICE_ENVIRONMENT_VALUE,)

    def __init__(self, service: str):
        if not service or "\\" in service or "/" in service:
            raise FipsbootError(f"service:{service}: not a service name")
        self.service = service
        self.spec = f"service:{service}"
        self.path = f"{SERVICES_KEY}\\{service}"

    def locate(self) -> Tuple[str, str]:
        if not get_registry().subkey_exists(HKLM, self.path):
            raise FipsbootError(
                f"{self.spec}: no such service ({where(HKLM, self.path)} does not exist)",
                fix="use the service's key name (`sc query` SERVICE_NAME), "
                    "not its display name")
        return HKLM, self.path

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
                data = get_registry().expand(data)
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

    def __init__(self, account: str):
        self.account = account
        self.spec = f"user:{account}"

    def locate(self) -> Tuple[str, str]:
        # Resolved on every access: a rollback may run as another account than the apply.
        registry = get_registry()
        sid = registry.account_sid(self.account)
        if sid.upper() == registry.current_sid().upper():
            return HKCU, "Environment"
        if not registry.subkey_exists(HKU, sid):
            raise FipsbootError(
                f"{self.spec}: the account's registry hive is not loaded "
                f"({where(HKU, sid)} is missing)",
                fix=f"log on as {self.account} (or start a service that runs as it) and run "
                    f"fipsboot again, or target the service or `machine` instead")
        return HKU, f"{sid}\\Environment"

    def notes(self) -> List[str]:
        return [f"{self.account} must log on again (or its service be restarted) "
                f"to get the new environment"]


class MachineEnvironment(VariableValues):
    """The system environment every account and service gets."""

    spec = "machine"

    def locate(self) -> Tuple[str, str]:
        return HKLM, MACHINE_ENVIRONMENT_KEY

    def notes(self) -> List[str]:
        return ["restart the server's service (or log on again) to get the new environment; "
                "the Service Control Manager may keep the one it started with until Windows "
                "restarts"]


def target_for(kind: str, arg: str) -> RegistryTarget:
    """The target for a profile entry or a journal key (`service:NAME`, `user:NAME`, `machine`)."""
    if kind == "service":
        return ServiceEnvironment(arg)
    if kind == "user":
        return UserEnvironment(arg)
    if kind == "machine" and not arg:
        return MachineEnvironment()
    raise FipsbootError(f"target {kind}{':' + arg if arg else ''} is not supported on Windows")


class RegistryStore:
    """The journal's "registry" store: a key is a target's spec, a value its snapshot."""

    def get(self, key: str) -> Snapshot:
        return self._target(key).snapshot()

    def set(self, key: str, value: Snapshot) -> None:
        self._target(key).restore(value)

    @staticmethod
    def _target(key: str) -> RegistryTarget:
        kind, _, arg = key.partition(":")
        return target_for(kind, arg)


# --- launching the server ---------------------------------------------------------------

def _forwarded_signals() -> List[int]:
    names = ["SIGINT", "SIGBREAK"]
    if sys.platform != "win32":
        names.append("SIGTERM")  # a supervisor stopping us must stop the server, not orphan it
    return [getattr(signal, n) for n in names if hasattr(signal, n)]


def _forward(child: subprocess.Popen, signum: int) -> None:
    if child.poll() is not None:
        return
    if sys.platform == "win32":
        # The child leads its own process group, and GenerateConsoleCtrlEvent does not deliver
        # CTRL_C_EVENT to a group (Microsoft's docs; the group also starts with Ctrl-C
        # disabled). CTRL_BREAK_EVENT does reach it, so both keys arrive as Ctrl-Break. A
        # Ctrl-Break typed at a shared console also reaches it directly: it may come twice.
        os.kill(child.pid, signal.CTRL_BREAK_EVENT)
    else:
        child.send_signal(signum)


class _SignalForwarder:
    """Passes the stop signals we get on to the server while it runs."""

    def __init__(self):
        self.child: Optional[subprocess.Popen] = None
        self.pending: List[int] = []
        self.previous: Dict[int, Any] = {}

    def __enter__(self) -> _SignalForwarder:
        if threading.current_thread() is threading.main_thread():  # Python's rule for handlers
            for signum in _forwarded_signals():
                self.previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)

    def attach(self, child: subprocess.Popen) -> None:
        self.child = child
        for signum in self.pending:  # pressed while the server was being started
            _forward(child, signum)
        self.pending.clear()

    def _handle(self, signum, frame) -> None:
        if self.child is None:
            self.pending.append(signum)
        else:
            _forward(self.child, signum)


def _start(argv: List[str], env: Dict[str, str]) -> subprocess.Popen:
    if sys.platform == "win32":
        options = {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    else:
        # Its own session, like the new process group on Windows: a terminal's Ctrl-C then
        # reaches the server once, through us, not twice.
        options = {"start_new_session": True}
    try:
        return subprocess.Popen(argv, env=env, **options)
    except OSError as e:
        raise FipsbootError(f"cannot start {argv[0]}: {e.strerror or e}") from None


def _wait(child: subprocess.Popen) -> int:
    while True:
        try:
            # A timeout, because a wait without one on Windows holds off Python's signal
            # handlers (the forwarding) until the child is gone.
            return child.wait(timeout=0.5)
        except subprocess.TimeoutExpired:
            continue


def _is_environment_key(key: str) -> bool:
    return key == "machine" or key.startswith("user:")


class WindowsBackend(Backend):
    name = "windows"

    def targets(self, profile) -> List[EnvTarget]:
        return [target_for(t.kind, t.arg) for t in profile.targets]

    def stores(self) -> Dict[str, Any]:
        return {STORE: RegistryStore()}

    def after_apply(self, changes: List[Change]) -> List[str]:
        """Explorer re-reads the account and machine environment only when told; a service's
        Environment is read by the SCM at each start, so it needs no broadcast."""
        if not any(c.changed and c.kind == STORE and _is_environment_key(c.key) for c in changes):
            return []
        if broadcast_setting_change():
            return ["sent WM_SETTINGCHANGE: programs started from now on see the new environment"]
        return ["WM_SETTINGCHANGE did not reach every window (or this is not Windows): "
                "programs started from Explorer may see the change only after a new logon"]

    def launch(self, argv: List[str], env: Dict[str, str]) -> int:
        """Run the server and return its exit code (Windows has no exec to hand over the
        process); a server killed by signal N gives 128+N, as a shell reports it."""
        with _SignalForwarder() as forwarder:
            child = _start(argv, env)
            forwarder.attach(child)
            code = _wait(child)
        return 128 - code if code < 0 else code
