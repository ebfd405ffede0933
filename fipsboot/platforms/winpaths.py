"""Windows path rules: which paths a Windows profile may name, and one spelling per folder.

Pure string work (no registry, no Wine), so the profile can refuse a path before anything is
touched, and the journal can key an installation on the path Windows means rather than on
the way it was typed.

Refused, with the rule named (each one is a way the server would load something other than
what fipsboot wrote and proved):
- anything whose drive part is not a drive letter: UNC in every spelling of its slashes
  (`\\\\server\\share`, `//server/share`, `\\/server/share`, `/\\server\\share`), device
  paths (`\\\\?\\C:\\...`, `\\\\.\\C:\\...`) and drive-relative ones (`C:folder`, `\\folder`);
- a component ending in `.` or space (Windows drops them: `C:\\GCTI.\\x` opens `C:\\GCTI\\x`),
  and the characters Windows forbids in names (`"<>|?*`, `:` outside the drive, controls);
- characters outside ASCII: openssl.exe takes its arguments and OPENSSL_CONF through the ANSI
  code page (and under Wine with fipsboot's `LANG=C`), where they arrive as `?`;
- paths longer than MAX_PATH (259 characters plus the final NUL): openssl.exe opens files
  with the classic API, and a longer path fails as "section=fips_sect not found".
"""
from __future__ import annotations

import re
import sys
from pathlib import PureWindowsPath
from typing import Optional

MAX_PATH = 260  # characters, the terminating NUL included (Windows' classic file API)
LONGEST = MAX_PATH - 1
FORBIDDEN = set('"<>|?*') | {chr(c) for c in range(32)}
DRIVE_RE = re.compile(r"^[A-Za-z]:$")
# The longest names fipsboot puts under the config folder: the staged fipsmodule.cnf that
# openssl.exe opens, and an atomic write's temp file (".<name>.<8 random>.fipsboot-tmp").
LONGEST_CONFIG_TAIL = max(len("\\.fipsboot-staging\\fipsmodule.cnf"),
                          len("\\.fipsmodule.cnf.12345678.fipsboot-tmp"))


def path_problem(path: str, ascii_only: bool = True) -> Optional[str]:
    """Why Windows (or openssl.exe on it) would not open `path` as written; None: fine.
    `ascii_only=False` for a path only fipsboot opens (the server's own options file)."""
    win = PureWindowsPath(path)
    if not DRIVE_RE.match(win.drive) or not win.root:
        if win.drive.startswith("\\\\"):
            return (f"it is a UNC or device path (drive part {win.drive!r}): fipsboot only "
                    f"accepts a local drive path such as C:\\GCTI\\ORS, whatever the slashes")
        return "it is not an absolute path on a drive letter (such as C:\\GCTI\\ORS)"
    bad = sorted({c for c in path[2:] if c in FORBIDDEN or c == ":"})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        return f"it holds {shown}, which Windows does not allow in a file name"
    for part in win.parts[1:]:
        if part.endswith((".", " ")) and part not in (".", ".."):
            return (f"its component {part!r} ends in {part[-1]!r}, which Windows drops "
                    f"(the path would open another file than the one named)")
    outside = sorted({c for c in path if ord(c) > 127})
    if outside and ascii_only:
        return (f"it holds non-ASCII characters ({''.join(outside)}): openssl.exe receives "
                f"paths through the ANSI code page (and under Wine through LANG=C), where "
                f"they become '?'; use an ASCII-only path")
    if len(path) > LONGEST:
        return f"it is {len(path)} characters long, over Windows' limit of {LONGEST}"
    return None


def config_dir_problem(config_dir: str) -> Optional[str]:
    """The longest path fipsboot makes under the config folder must stay within MAX_PATH."""
    longest = len(config_dir.rstrip("\\/")) + LONGEST_CONFIG_TAIL
    if longest > LONGEST:
        return (f"fipsboot's staging files under it would be {longest} characters long, over "
                f"Windows' limit of {LONGEST} (openssl.exe would not find them): use a config "
                f"folder of at most {LONGEST - LONGEST_CONFIG_TAIL} characters")
    return None


def normalised(path: str) -> str:
    """One spelling for every way of writing the same Windows folder: short (8.3) names
    resolved where Windows can say, backslashes, no trailing separator, case folded (NTFS
    names are case-insensitive)."""
    text = str(PureWindowsPath(path))
    if sys.platform == "win32":
        text = _long_path_name(text)
    return text.rstrip("\\").casefold() if len(text) > 3 else text.casefold()


def _long_path_name(path: str) -> str:
    """GetLongPathNameW: `C:\\GCTI\\ORS8~1.401` -> `C:\\GCTI\\ORS 8.1.401.11` (as it is now
    on disk; a path that does not exist is left as written)."""
    import ctypes

    size = ctypes.windll.kernel32.GetLongPathNameW(path, None, 0)
    if not size:
        return path
    buffer = ctypes.create_unicode_buffer(size)
    if not ctypes.windll.kernel32.GetLongPathNameW(path, buffer, size):
        return path
    return buffer.value
