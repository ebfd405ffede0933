"""Pick the backend once: the profile's platform (which follows the host by default), and for
Windows the registry it works on, handed to it (no registry is kept in a global)."""
from __future__ import annotations

import sys

from .base import Backend


def backend_for(profile) -> Backend:
    if profile.platform == "linux":
        from .linux import LinuxBackend

        return LinuxBackend()
    if profile.platform == "windows":
        from .windows import WindowsBackend

        return WindowsBackend(registry_for(profile))
    raise NotImplementedError(f"platform {profile.platform!r} is not supported")


def registry_for(profile):
    """The registry a Windows profile's installation lives in: a Wine prefix's when it is
    driven through Wine (a launcher, off Windows), else this machine's own."""
    if sys.platform != "win32" and profile.launcher:
        from .wineregistry import WineRegistry

        return WineRegistry(profile.launcher)
    from .winregistry import WinRegistry

    return WinRegistry()
