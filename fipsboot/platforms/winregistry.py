"""The real Windows registry, through winreg, and the broadcast that tells programs the
environment changed (user32). One of the registries behind the seam (`regseam.Registry`).

`winreg` and the Windows DLLs are imported inside the methods: this module must import on
Linux, where fipsboot also drives a Windows installation through Wine (and there every call
says it needs Windows).
"""
from __future__ import annotations

import sys
from typing import Dict, Optional

from ..errors import FipsbootError
from .regseam import (
    HKCU,
    HKLM,
    HKU,
    REG_EXPAND_SZ,
    REG_MULTI_SZ,
    REG_SZ,
    ROOTS,
    Data,
    Registry,
    RegValue,
    check_value,
    not_a_string,
    where,
)
from .winaccounts import lookup_account_sid, process_user_sid

# SendMessageTimeoutW: HWND_BROADCAST, WM_SETTINGCHANGE, SMTO_ABORTIFHUNG (winuser.h).
HWND_BROADCAST = 0xFFFF
WM_SETTINGCHANGE = 0x001A
SMTO_ABORTIFHUNG = 0x0002
BROADCAST_TIMEOUT_MS = 5000  # what Windows' own environment editor waits per window


class WinRegistry(Registry):
    """The real registry (Windows only) and the Windows calls its paths depend on."""

    def values(self, root: str, path: str) -> Dict[str, RegValue]:
        """Every value of a key by its name as stored ({} when the key is gone); a value that
        is not a string comes as (None, its type number as text)."""
        winreg = _winreg()
        found: Dict[str, RegValue] = {}
        try:
            with winreg.OpenKey(_hive(winreg, root), path) as key:
                for index in range(winreg.QueryInfoKey(key)[1]):
                    name, data, kind = winreg.EnumValue(key, index)
                    found[name] = _string_value(winreg, data, kind) or (None, f"type {kind}")
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise _failed("read", where(root, path), e) from None
        return found

    def expand(self, text: str) -> str:
        """`text` as Windows expands a REG_EXPAND_SZ value for a process."""
        _windows_only("expanding environment strings")
        import ctypes

        size = ctypes.windll.kernel32.ExpandEnvironmentStringsW(text, None, 0)
        buffer = ctypes.create_unicode_buffer(size)
        ctypes.windll.kernel32.ExpandEnvironmentStringsW(text, buffer, size)
        return buffer.value

    def get_value(self, root: str, path: str, name: str) -> Optional[RegValue]:
        """The value, or None when it (or its key) does not exist."""
        winreg = _winreg()
        try:
            with winreg.OpenKey(_hive(winreg, root), path) as key:
                data, kind = winreg.QueryValueEx(key, name)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise _failed("read", where(root, path, name), e) from None
        value = _string_value(winreg, data, kind)
        if value is None:
            raise not_a_string(where(root, path, name), kind)
        return value

    def set_value(self, root: str, path: str, name: str, data: Data, kind: str) -> None:
        check_value(data, kind)
        winreg = _winreg()
        try:
            with winreg.OpenKey(_hive(winreg, root), path, 0, winreg.KEY_SET_VALUE) as key:
                winreg.SetValueEx(key, name, 0, getattr(winreg, kind), data)
        except OSError as e:
            raise _failed("write", where(root, path, name), e) from None

    def delete_value(self, root: str, path: str, name: str) -> None:
        """Delete the value; one that is already gone is fine (restores are idempotent)."""
        winreg = _winreg()
        try:
            with winreg.OpenKey(_hive(winreg, root), path, 0, winreg.KEY_SET_VALUE) as key:
                winreg.DeleteValue(key, name)
        except FileNotFoundError:
            return
        except OSError as e:
            raise _failed("delete", where(root, path, name), e) from None

    def subkey_exists(self, root: str, path: str) -> bool:
        winreg = _winreg()
        try:
            with winreg.OpenKey(_hive(winreg, root), path):
                return True
        except FileNotFoundError:
            return False
        except PermissionError:  # it is there, we just may not read it
            return True

    def account_sid(self, account: str) -> str:
        """The account's SID as a string (S-1-5-21-...)."""
        _windows_only(f"user:{account}")
        return lookup_account_sid(account)

    def current_sid(self) -> str:
        """The SID of the account this process runs as (whose hive HKCU is)."""
        _windows_only("the current account")
        return process_user_sid()

    def broadcast_setting_change(self) -> bool:
        """Tell running programs (Explorer above all) to re-read the environment, so that
        what they start next sees the change. False: not sent, or not every window answered."""
        if sys.platform != "win32":
            return False
        import ctypes
        from ctypes import wintypes

        send = ctypes.WinDLL("user32", use_last_error=True).SendMessageTimeoutW
        send.argtypes = [wintypes.HWND, wintypes.UINT, wintypes.WPARAM, wintypes.LPCWSTR,
                         wintypes.UINT, wintypes.UINT, ctypes.POINTER(ctypes.c_size_t)]
        send.restype = ctypes.c_ssize_t  # LRESULT
        result = ctypes.c_size_t()
        sent = send(HWND_BROADCAST, WM_SETTINGCHANGE, 0, "Environment", SMTO_ABORTIFHUNG,
                    BROADCAST_TIMEOUT_MS, ctypes.byref(result))
        return bool(sent)


def _windows_only(what: str) -> None:
    if sys.platform != "win32":
        raise FipsbootError(f"{what}: the Windows registry and accounts can only be reached "
                            f"on Windows (this is {sys.platform})",
                            fix="run fipsboot with a Windows Python on the server's host")


def _winreg():
    _windows_only("registry access")
    import winreg

    return winreg


def _string_value(winreg, data, kind: int) -> Optional[RegValue]:
    """(data, type name) of a string value as winreg gives it; None for any other type."""
    names = {winreg.REG_SZ: REG_SZ, winreg.REG_EXPAND_SZ: REG_EXPAND_SZ,
             winreg.REG_MULTI_SZ: REG_MULTI_SZ}
    if kind not in names:
        return None
    if data is None:  # winreg gives None for a zero-length value
        data = [] if kind == winreg.REG_MULTI_SZ else ""
    return data, names[kind]


def _hive(winreg, root: str):
    hives = {HKLM: winreg.HKEY_LOCAL_MACHINE, HKU: winreg.HKEY_USERS,
             HKCU: winreg.HKEY_CURRENT_USER}
    if root not in hives:
        raise ValueError(f"unknown registry root {root!r} (known: {', '.join(ROOTS)})")
    return hives[root]


def _failed(verb: str, place: str, error: OSError) -> FipsbootError:
    if isinstance(error, PermissionError):
        return FipsbootError(f"cannot {verb} {place}: access denied",
                             fix="run fipsboot as an Administrator")
    if isinstance(error, FileNotFoundError):
        return FipsbootError(f"cannot {verb} {place}: the key does not exist")
    return FipsbootError(f"cannot {verb} {place}: {error.strerror or error}")
