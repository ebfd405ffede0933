"""Where each Windows target's environment lives: the key of a service, of an account, of the
machine, as (root, key path), checked to be there (a clear error now beats a half-made change;
keys are never created). The machine key is also where Wine looks, so the Wine registry and
wineenv use it too."""
from __future__ import annotations

from typing import Tuple

from ..errors import FipsbootError
from .regseam import HKCU, HKLM, HKU, Registry, where

SERVICES_KEY = r"SYSTEM\CurrentControlSet\Services"
MACHINE_ENVIRONMENT_KEY = r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment"
USER_ENVIRONMENT_KEY = "Environment"  # under the account's hive
SERVICE_ENVIRONMENT_VALUE = "Environment"  # under the service's key


def service_path(service: str) -> str:
    """The service's key path under HKLM; a name that could reach another key is refused."""
    if not service or "\\" in service or "/" in service:
        raise FipsbootError(f"service:{service}: not a service name")
    return f"{SERVICES_KEY}\\{service}"


def service_key(registry: Registry, service: str) -> Tuple[str, str]:
    path = service_path(service)
    if not registry.subkey_exists(HKLM, path):
        raise FipsbootError(
            f"service:{service}: no such service ({where(HKLM, path)} does not exist)",
            fix="use the service's key name (`sc query` SERVICE_NAME), "
                "not its display name")
    return HKLM, path


def user_key(registry: Registry, account: str) -> Tuple[str, str]:
    """`HKU\\<SID>\\Environment` of the account; HKCU when it is this process's account.
    Resolved on every access: a rollback may run as another account than the apply."""
    sid = registry.account_sid(account)
    if sid.upper() == registry.current_sid().upper():
        return HKCU, USER_ENVIRONMENT_KEY
    if not registry.subkey_exists(HKU, sid):
        raise FipsbootError(
            f"user:{account}: the account's registry hive is not loaded "
            f"({where(HKU, sid)} is missing)",
            fix=f"log on as {account} (or start a service that runs as it) and run "
                f"fipsboot again, or target the service or `machine` instead")
    return HKU, f"{sid}\\{USER_ENVIRONMENT_KEY}"


def machine_key() -> Tuple[str, str]:
    return HKLM, MACHINE_ENVIRONMENT_KEY
