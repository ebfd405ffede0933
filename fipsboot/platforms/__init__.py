"""Pick the backend once: the profile's platform (which follows the host by default)."""
from __future__ import annotations

from .base import Backend


def backend_for(profile) -> Backend:
    if profile.platform == "linux":
        from .linux import LinuxBackend

        return LinuxBackend()
    if profile.platform == "windows":
        from .windows import WindowsBackend

        return WindowsBackend()
    raise NotImplementedError(f"platform {profile.platform!r} is not supported")
