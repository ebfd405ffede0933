"""Pick the backend once: the profile's platform (which follows the host by default)."""
from __future__ import annotations

import sys

from .base import Backend


def backend_for(profile) -> Backend:
    if profile.platform == "linux":
        from .linux import LinuxBackend

        return LinuxBackend()
    if profile.platform == "windows":
        from .windows import WindowsBackend

        if sys.platform != "win32" and profile.launcher:
            # A Windows installation driven through Wine: its registry is the prefix's.
            from .wineregistry import WineRegistry
            from .winregistry import use_by_default

            use_by_default(WineRegistry(profile.launcher))
        return WindowsBackend()
    raise NotImplementedError(f"platform {profile.platform!r} is not supported")
