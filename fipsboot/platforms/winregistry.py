"""The one place fipsboot reaches the Windows registry, and the account facts its paths need.

Everything else goes through `get_registry()`, so tests swap in a stand-in (tests/fakeregistry.py)
with `set_registry()` (as platformdirs' tests replace winreg). `winreg` and the Windows DLLs are
imported inside the methods: this module must import on Linux, where fipsboot also drives a
Windows installation through Wine.

A value is `(data, type)`: data is a str for REG_SZ/REG_EXPAND_SZ and a list of str for
REG_MULTI_SZ; type is the type's name. Keys are never created: every key fipsboot writes to
(a service's key, an account's or the machine's Environment key) exists when Windows is set
up, and creating one by mistake would leave a stray service key behind.
"""
from __future__ import annotations

import sys
from typing import Dict, List, Mapping, Optional, Tuple, Union

from ..errors import FipsbootError

HKLM, HKU, HKCU = "HKLM", "HKU", "HKCU"
ROOTS = (HKLM, HKU, HKCU)
REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ = "REG_SZ", "REG_EXPAND_SZ", "REG_MULTI_SZ"
VALUE_TYPES = (REG_SZ, REG_EXPAND_SZ, REG_MULTI_SZ)

Data = Union[str, List[str]]
RegValue = Tuple[Data, str]  # (data, type name)

# SendMessageTimeoutW: HWND_BROADCAST, WM_SETTINGCHANGE, SMTO_ABORTIFHUNG (winuser.h).
HWND_BROADCAST = 0xFFFF
WM_SETTINGCHANGE = 0x001A
SMTO_ABORTIFHUNG = 0x0002
BROADCAST_TIMEOUT_MS = 5000  # what Windows' own environment editor waits per window


def where(root: str, path: str, name: Optional[str] = None) -> str:
    """How a person writes the key (and value), for messages."""
    return f"{root}\\{path}" + (f" [{name}]" if name is not None else "")


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


class Registry:
    """The real registry (Windows only) and the Windows calls its paths depend on."""

    def values(self, root: str, path: str) -> Dict[str, RegValue]:
        """Every value of a key by its name as stored ({} when the key is gone); a value that
        is not a string comes as (None, its type number as text)."""
        winreg = _winreg()
        names = {winreg.REG_SZ: REG_SZ, winreg.REG_EXPAND_SZ: REG_EXPAND_SZ,
                 winreg.REG_MULTI_SZ: REG_MULTI_SZ}
        found: Dict[str, RegValue] = {}
        try:
            with winreg.OpenKey(_hive(winreg, root), path) as key:
                for index in range(winreg.QueryInfoKey(key)[1]):
                    name, data, kind = winreg.EnumValue(key, index)
                    if kind not in names:
                        found[name] = (None, f"type {kind}")
                        continue
                    if data is None:  # winreg gives None for a zero-length value
                        data = [] if kind == winreg.REG_MULTI_SZ else ""
                    found[name] = (data, names[kind])
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
        names = {winreg.REG_SZ: REG_SZ, winreg.REG_EXPAND_SZ: REG_EXPAND_SZ,
                 winreg.REG_MULTI_SZ: REG_MULTI_SZ}
        if kind not in names:
            # Only string values can be snapshotted and given back exactly; this one is
            # not fipsboot's doing, so a person has to decide what it should be.
            raise FipsbootError(f"{where(root, path, name)} has registry type {kind}, "
                                f"not a string: fipsboot leaves it alone",
                                fix="delete the value or make it a REG_SZ, then run again")
        if data is None:  # winreg gives None for a zero-length value
            data = [] if kind == winreg.REG_MULTI_SZ else ""
        return data, names[kind]

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
        return _lookup_account_sid(account)

    def current_sid(self) -> str:
        """The SID of the account this process runs as (whose hive HKCU is)."""
        _windows_only("the current account")
        return _process_user_sid()

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


# --- account lookups (advapi32 through ctypes: pywin32 is not a dependency) ------------------

ERROR_INSUFFICIENT_BUFFER = 122
TOKEN_QUERY = 0x0008
TOKEN_USER_CLASS = 1  # TOKEN_INFORMATION_CLASS.TokenUser


def _advapi32():
    import ctypes
    from ctypes import wintypes

    dll = ctypes.WinDLL("advapi32", use_last_error=True)
    dll.LookupAccountNameW.argtypes = [
        wintypes.LPCWSTR, wintypes.LPCWSTR, ctypes.c_void_p, ctypes.POINTER(wintypes.DWORD),
        wintypes.LPWSTR, ctypes.POINTER(wintypes.DWORD), ctypes.POINTER(wintypes.DWORD)]
    dll.ConvertSidToStringSidW.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    dll.OpenProcessToken.argtypes = [wintypes.HANDLE, wintypes.DWORD,
                                     ctypes.POINTER(wintypes.HANDLE)]
    dll.GetTokenInformation.argtypes = [wintypes.HANDLE, ctypes.c_int, ctypes.c_void_p,
                                        wintypes.DWORD, ctypes.POINTER(wintypes.DWORD)]
    return dll


def _sid_string(psid) -> str:
    import ctypes

    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.LocalFree.argtypes = [ctypes.c_void_p]
    text = ctypes.c_void_p()
    if not _advapi32().ConvertSidToStringSidW(psid, ctypes.byref(text)):
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        return ctypes.wstring_at(text.value)
    finally:
        kernel32.LocalFree(text)


def _lookup_account_sid(account: str) -> str:
    import ctypes
    from ctypes import wintypes

    advapi32 = _advapi32()
    sid_size, domain_size, use = wintypes.DWORD(0), wintypes.DWORD(0), wintypes.DWORD(0)
    # The first call only asks how large the two buffers must be.
    advapi32.LookupAccountNameW(None, account, None, ctypes.byref(sid_size), None,
                                ctypes.byref(domain_size), ctypes.byref(use))
    if ctypes.get_last_error() != ERROR_INSUFFICIENT_BUFFER:
        raise FipsbootError(f"user:{account}: no such account "
                            f"({ctypes.FormatError(ctypes.get_last_error())})")
    sid = ctypes.create_string_buffer(sid_size.value)
    domain = ctypes.create_unicode_buffer(domain_size.value)
    if not advapi32.LookupAccountNameW(None, account, sid, ctypes.byref(sid_size), domain,
                                       ctypes.byref(domain_size), ctypes.byref(use)):
        raise FipsbootError(f"user:{account}: cannot look the account up "
                            f"({ctypes.FormatError(ctypes.get_last_error())})")
    return _sid_string(sid)


def _process_user_sid() -> str:
    """From the process token, not from USERNAME: a name can be spoofed or be ambiguous
    between a local and a domain account, the token's SID is the one HKCU belongs to."""
    import ctypes
    from ctypes import wintypes

    advapi32 = _advapi32()
    kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
    kernel32.GetCurrentProcess.restype = wintypes.HANDLE
    kernel32.CloseHandle.argtypes = [wintypes.HANDLE]
    token = wintypes.HANDLE()
    if not advapi32.OpenProcessToken(kernel32.GetCurrentProcess(), TOKEN_QUERY,
                                     ctypes.byref(token)):
        raise ctypes.WinError(ctypes.get_last_error())
    try:
        size = wintypes.DWORD(0)
        advapi32.GetTokenInformation(token, TOKEN_USER_CLASS, None, 0, ctypes.byref(size))
        buffer = ctypes.create_string_buffer(size.value)
        if not advapi32.GetTokenInformation(token, TOKEN_USER_CLASS, buffer, size,
                                            ctypes.byref(size)):
            raise ctypes.WinError(ctypes.get_last_error())
        # TOKEN_USER starts with SID_AND_ATTRIBUTES, whose first field is the PSID.
        return _sid_string(ctypes.cast(buffer, ctypes.POINTER(ctypes.c_void_p))[0])
    finally:
        kernel32.CloseHandle(token)


# --- the swap point ---------------------------------------------------------------------

_registry: Optional[Registry] = None


def get_registry() -> Registry:
    global _registry
    if _registry is None:
        _registry = Registry()
    return _registry


def set_registry(registry: Optional[Registry]) -> Optional[Registry]:
    """Use `registry` from now on (None: the real one again); returns the one replaced."""
    global _registry
    previous, _registry = _registry, registry
    return previous


def use_by_default(registry) -> None:
    """Make `registry` the default one (Wine's, for a Windows installation driven from Linux),
    unless a test has swapped in its own."""
    global _registry
    if _registry is None or type(_registry) is Registry or type(_registry) is type(registry):
        _registry = registry


def broadcast_setting_change() -> bool:
    return get_registry().broadcast_setting_change()
