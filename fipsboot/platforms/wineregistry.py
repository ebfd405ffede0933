"""The registry of a Wine prefix, reached through Wine's own reg.exe.

On Linux, driving a Windows installation under Wine (`launcher = ["wine"]`), the service,
account and machine environment live in the prefix's registry, and Wine builds each new
process's environment from the machine's and the account's Environment keys as Windows does.
This gives the Windows backend's targets a real registry to work on here. It has the
interface of `regseam.Registry`; `platforms.backend_for` picks it for such profiles.

Values go through `reg export` and `reg import` files (UTF-16, every value as hex data), never
through `reg query`'s text or `reg add`'s command line: those read `\\0` inside an entry as
reg.exe's separator and pass non-ASCII through a code page, so `LOGDIR=C:\\logs\\0001` came
back as two entries and `José` as `Jos\ufffd`. A value is written, then read back: what
reg.exe does with it is no contract.
"""
from __future__ import annotations

import getpass
import os
import shutil
import tempfile
import time
from typing import Dict, Optional, Sequence, Tuple

from ..errors import FipsbootError
from ..processes import Result, run_together
from .regfile import TYPE_NAMES, RawValues, decode, delete_line, import_text, parse_export, set_line
from .regseam import (
    Data,
    Registry,
    RegValue,
    check_value,
    expand_environment_strings,
    not_a_string,
    where,
)
from .winkeys import MACHINE_ENVIRONMENT_KEY

TIMEOUT = 120
WINE_ACCOUNT = "wine-current-user"  # Wine has one account: the Unix user running it


def _not_found(r: Result) -> bool:
    return r.returncode == 1 and "unable to find" in r.output.lower()


class WineRegistry(Registry):
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

    def _scratch(self) -> Tuple[str, str]:
        """A private folder inside the prefix: (host path, the path reg.exe sees)."""
        from ..layout import wine_prefix

        temp = wine_prefix() / "drive_c" / "windows" / "temp"
        host = tempfile.mkdtemp(prefix="fipsboot-reg-", dir=temp)
        return host, "C:\\windows\\temp\\" + os.path.basename(host)

    def export(self, root: str, path: str) -> Optional[RawValues]:
        """Every value of the key, exactly; None when the key does not exist."""
        for attempt in range(4):
            host, native = self._scratch()
            try:
                r = self._reg("export", f"{root}\\{path}", native + "\\key.reg", "/y")
                if r.returncode:
                    return None
                try:
                    with open(os.path.join(host, "key.reg"), "rb") as f:
                        data = f.read()
                    break
                except FileNotFoundError:
                    # "done" without the file: a reg.exe cut short (a wineserver going away
                    # under it); like any failure, retried, never taken for "no values".
                    time.sleep(0.2 * (attempt + 1))
            finally:
                shutil.rmtree(host, ignore_errors=True)
        else:
            raise FipsbootError(f"{' '.join(self.launcher)} reg export {root}\\{path} said it "
                                f"succeeded but wrote nothing ({r.output or 'no output'})")
        text = data.decode("utf-16") if data[:2] in (b"\xff\xfe", b"\xfe\xff") else data.decode()
        return parse_export(text)

    def _import(self, root: str, path: str, line: str) -> None:
        host, native = self._scratch()
        try:
            with open(os.path.join(host, "value.reg"), "wb") as f:
                f.write(import_text(root, path, line))
            r = self._reg("import", native + "\\value.reg")
        finally:
            shutil.rmtree(host, ignore_errors=True)
        if r.returncode:
            raise FipsbootError(f"cannot write {where(root, path)}: {r.output}")

    def values(self, root: str, path: str) -> Dict[str, RegValue]:
        """Every value of the key by its name as stored (one `reg export`)."""
        return {name: (decode(kind, raw), TYPE_NAMES[kind]) if kind in TYPE_NAMES
                else (None, f"type {kind}")
                for name, (kind, raw) in (self.export(root, path) or {}).items()}

    def get_value(self, root: str, path: str, name: str) -> Optional[RegValue]:
        found = {n.casefold(): v for n, v in (self.export(root, path) or {}).items()}
        if name.casefold() not in found:
            return None  # the value or its key does not exist
        kind, raw = found[name.casefold()]
        if kind not in TYPE_NAMES:  # as every registry: strings only
            raise not_a_string(where(root, path, name), kind)
        return decode(kind, raw), TYPE_NAMES[kind]

    def set_value(self, root: str, path: str, name: str, data: Data, kind: str) -> None:
        check_value(data, kind)
        if not self.subkey_exists(root, path):  # an import would create it; fipsboot never does
            raise FipsbootError(f"cannot write {where(root, path, name)}: the key does not exist")
        self._import(root, path, set_line(name, data, kind))
        if self.get_value(root, path, name) != (data, kind):
            raise FipsbootError(f"{where(root, path, name)} does not read back as written")

    def delete_value(self, root: str, path: str, name: str) -> None:
        if self.get_value(root, path, name) is None:
            return  # gone already is fine
        self._import(root, path, delete_line(name))
        if self.get_value(root, path, name) is not None:
            raise FipsbootError(f"{where(root, path, name)} is still there after its deletion")

    def expand(self, text: str) -> str:
        """As Windows expands a REG_EXPAND_SZ for a process: with the machine environment."""
        machine = self.export("HKLM", MACHINE_ENVIRONMENT_KEY) or {}
        lookup = {n: decode(k, raw) for n, (k, raw) in machine.items() if k in (1, 2)}
        return expand_environment_strings(text, {n: v for n, v in lookup.items()
                                                 if isinstance(v, str)})

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
