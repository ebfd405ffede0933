"""Resolved paths of one installation, as the server sees them and as this host opens them.

A Linux installation is opened where it is. A Windows installation driven from Linux through
Wine (`launcher = ["wine"]`) is opened through the Wine prefix's drive links, so fipsboot reads
and writes the very files openssl.exe sees.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Tuple

from .errors import ProfileError
from .profile import Profile


def wine_prefix() -> Path:
    return Path(os.environ.get("WINEPREFIX") or Path.home() / ".wine")


def host_path(profile: Profile, native: str) -> Path:
    """The path this process opens to reach `native` (a path as the server's process sees it)."""
    if profile.platform != "windows" or sys.platform == "win32":
        return Path(native)
    win = PureWindowsPath(native)
    drive = win.drive.lower()
    if len(drive) != 2 or drive[1] != ":":
        raise ProfileError(f"{profile.source}: {native!r} is not on a drive letter")
    # dosdevices/c: is a symlink to ../drive_c (or wherever the prefix maps that drive).
    return wine_prefix() / "dosdevices" / drive / Path(*win.parts[1:])


@dataclass(frozen=True)
class Layout:
    profile: Profile
    module: str
    module_dir: str
    openssl: str
    lib_dirs: Tuple[str, ...]
    config_dir: str
    openssl_cnf: str
    fipsmodule_cnf: str
    security_pack_dir: str | None

    def host(self, native: str) -> Path:
        return host_path(self.profile, native)

    def config_path(self, native: str) -> str:
        """A path as OpenSSL's config syntax wants it: forward slashes on Windows (where a
        backslash would be read as an escape). A backslash in a Linux file name is a
        character, left for the escaping to keep."""
        return native.replace("\\", "/") if self.windows else native

    @property
    def windows(self) -> bool:
        return self.profile.platform == "windows"


def resolve(profile: Profile) -> Layout:
    pure = profile.pure_path
    return Layout(
        profile=profile,
        module=profile.fips_module,
        module_dir=str(pure(profile.fips_module).parent),
        openssl=profile.openssl,
        lib_dirs=profile.lib_dirs,
        config_dir=profile.config_dir,
        openssl_cnf=str(pure(profile.config_dir) / "openssl.cnf"),
        fipsmodule_cnf=str(pure(profile.config_dir) / "fipsmodule.cnf"),
        security_pack_dir=profile.security_pack_dir,
    )
