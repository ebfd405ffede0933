"""Wine's registry environment, which wins over the environment fipsboot hands a process.

Wine builds the environment of every Windows process it starts from Linux out of the one it
is handed *and* the machine's and the account's registry `Environment` keys, the registry's
values winning. So under a Wine launcher a user `OPENSSL_CONF` (which the server's account
can write) or a machine one left from a by-hand setup reaches openssl.exe and the server
whatever fipsboot passes. Real Windows hands a child exactly the environment it is given:
none of this applies there.

fipsboot therefore (1) keys `run`'s verdict cache on these values, so a changed one is a miss
and the live probe (which gets them too) decides; (2) lets install prove its files only with
the registry state it is about to write: when these values would override the staged proof,
the proof waits until the targets are written, and a value no target replaces fails install
with its name and place.
"""
from __future__ import annotations

import getpass
import sys
from typing import Dict, Mapping, Optional

from .regseam import HKCU, HKLM, Registry, where
from .winkeys import MACHINE_ENVIRONMENT_KEY, USER_ENVIRONMENT_KEY
from .winvalues import MachineEnvironment, UserEnvironment

OVERRIDABLE = ("OPENSSL_CONF", "OPENSSL_MODULES")


def applies(layout) -> bool:
    return layout.windows and bool(layout.profile.launcher) and sys.platform != "win32"


def overrides(layout, registry: Optional[Registry] = None) -> Dict[str, Dict[str, str]]:
    """{variable: {"value", "where"}} that Wine gives every process it starts (the account's
    value over the machine's, as Windows merges them); {} off Wine. `registry`: the prefix's,
    when the caller holds the backend's already (else picked from the profile)."""
    if not applies(layout):
        return {}
    if registry is None:
        from . import registry_for

        registry = registry_for(layout.profile)
    found: Dict[str, Dict[str, str]] = {}
    places = [(MachineEnvironment(registry), where(HKLM, MACHINE_ENVIRONMENT_KEY)),
              (UserEnvironment(registry, getpass.getuser()), where(HKCU, USER_ENVIRONMENT_KEY))]
    for target, place in places:
        for name, value in target.read().items():
            if name in OVERRIDABLE and value is not None:
                found[name] = {"value": value, "where": f"{place} [{name}]"}
    return found


def conflict(layout, env: Mapping[str, str],
             found: Optional[Dict[str, Dict[str, str]]] = None,
             registry: Optional[Registry] = None) -> Optional[str]:
    """Why a process started with `env` would not get `env`'s OpenSSL variables; None: it
    would."""
    found = overrides(layout, registry) if found is None else found
    for name, o in sorted(found.items()):
        if env.get(name) != o["value"]:
            return (f"Wine's registry environment sets {name}={o['value']} ({o['where']}), "
                    f"which wins over the {name} fipsboot hands openssl.exe "
                    f"({env.get(name) or 'unset'})")
    return None
