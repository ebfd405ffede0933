"""The registry of a Wine prefix, reached through Wine's own reg.exe.

On Linux, driving a Windows installation under Wine (`launcher = ["wine"]`), the service,
account and machine environment live in the prefix's registry, and Wine builds each new
process's environment from the machine's and the account's Environment keys as Windows does.
This gives the Windows backend's targets a real registry to work on here. It has the
interface of `winregistry.Registry`; `platforms.backend_for` installs it for such profiles.
"""
from __future__ import annotations

import getpass
import os
import re
import time
from typing import List, Optional, Sequence

from ..errors import FipsbootError
from ..processes import Result, run_together
from .winregistry import REG_MULTI_SZ, VALUE_TYPES, Data, RegValue, check_value, where

VALUE_RE = re.compile(r"^    (.+?)    (REG_\w+)    ?(.*)$")
TIMEOUT = 120
WINE_ACCOUNT = "wine-current-user"  # Wine has one account: the Unix user running it


def _not_found(r: Result) -> bool:
    return r.returncode == 1 and "unable to find" in r.output.lower()


class WineRegistry:
    def __init__(self, launcher: Sequence[str]):
        self.launcher = list(launcher)

    def _reg(self, *args: str) -> Result:
        """Run reg.exe. Its answers are "done", "not found", or a failure, which is retried a
        few times (a Wine busy starting its services answers late) and then raised: a
        failure must never pass for "not found", or a value would be left in place."""
        env = dict(os.environ)
        env.setdefault("WINEDEBUG", "-all")
        for attempt in range(4):
            (r,) = run_together([([*self.launcher, "reg", *args], b"")], env, TIMEOUT)
            if r.returncode == 0 or _not_found(r):
                return r
            time.sleep(0.2 * (attempt + 1))
        raise FipsbootError(f"{' '.join(self.launcher)} reg {' '.join(args)} failed "
                            f"({r.returncode}): {r.output}")

    def get_value(self, root: str, path: str, name: str) -> Optional[RegValue]:
        r = self._reg("query", f"{root}\\{path}", "/v", name)
        if r.returncode:
            return None  # the value or its key does not exist
        for line in r.stdout.splitlines():
            m = VALUE_RE.match(line)
            if m and m.group(1).lower() == name.lower():
                data = m.group(3)
                if m.group(2) not in VALUE_TYPES:  # as winregistry.Registry: strings only
                    raise FipsbootError(f"{where(root, path, name)} has registry type "
                                        f"{m.group(2)}, not a string: fipsboot leaves it alone",
                                        "delete the value or make it a REG_SZ, then run again")
                if m.group(2) == REG_MULTI_SZ:
                    return [s for s in data.split("\\0") if s], REG_MULTI_SZ
                return data, m.group(2)
        return None

    def set_value(self, root: str, path: str, name: str, data: Data, kind: str) -> None:
        check_value(data, kind)
        strings: List[str] = data if isinstance(data, list) else [data]
        if any("\\0" in s for s in strings):
            raise FipsbootError(f"{data!r} holds '\\0', which Wine's reg.exe reads as a separator")
        if not self.subkey_exists(root, path):  # reg add would create it; fipsboot never does
            raise FipsbootError(f"cannot write {where(root, path, name)}: the key does not exist")
        text = "\\0".join(strings) if kind == REG_MULTI_SZ else data
        r = self._reg("add", f"{root}\\{path}", "/v", name, "/t", kind, "/d", text, "/f")
        if r.returncode:
            raise FipsbootError(f"cannot write {where(root, path, name)}: {r.output}")
        if self.get_value(root, path, name) != (data, kind):  # reg.exe's quoting is no contract
            raise FipsbootError(f"{where(root, path, name)} does not read back as written")

    def delete_value(self, root: str, path: str, name: str) -> None:
        self._reg("delete", f"{root}\\{path}", "/v", name, "/f")  # gone already is fine
        if self.get_value(root, path, name) is not None:
            raise FipsbootError(f"{where(root, path, name)} is still there after its deletion")

    def subkey_exists(self, root: str, path: str) -> bool:
        return self._reg("query", f"{root}\\{path}").returncode == 0

    def account_sid(self, account: str) -> str:
        if account.lower() != getpass.getuser().lower():
            raise FipsbootError(f"user:{account}: under Wine only the account running Wine "
                                f"({getpass.getuser()}) has an environment")
        return WINE_ACCOUNT

    def current_sid(self) -> str:
        return WINE_ACCOUNT

    def broadcast_setting_change(self) -> bool:
        return False  # Wine reads the Environment keys when each process starts
