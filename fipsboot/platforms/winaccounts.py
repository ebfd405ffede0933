"""The Windows account facts a user target's key depends on: an account's SID, and the SID of
the account this process runs as (whose hive HKCU is). advapi32 through ctypes: pywin32 is not
a dependency. Windows only; the caller checks that (`winregistry.WinRegistry`)."""
from __future__ import annotations

from ..errors import FipsbootError

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


def lookup_account_sid(account: str) -> str:
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


def process_user_sid() -> str:
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
