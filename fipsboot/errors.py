"""Errors the CLI turns into a message and an exit code (documented in the README)."""
from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1  # the step failed; nothing was changed (or everything was rolled back)
EXIT_USAGE = 2  # bad command line or profile; nothing was touched
EXIT_CONFLICT = 3  # a managed file was edited by hand; --force overwrites and keeps a copy
EXIT_BUSY = 4  # another fipsboot holds this installation's lock
EXIT_FOLLOW_UP = 5  # the change is made, but what must follow it failed (daemon-reload); rerun
EXIT_REFUSED = 78  # `run`: verification failed, the server was not started (EX_CONFIG)


class FipsbootError(Exception):
    exit_code = EXIT_FAILED

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message)
        self.fix = fix


PROFILE_FIX = ("correct the profile where the message says (README, \"The profile\", lists every "
               "table and key)")


class ProfileError(FipsbootError):
    """Every profile error carries a fix (JSON "fix" is never null): the specific one when
    given, otherwise where to look."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, fix: str | None = None):
        super().__init__(message, fix or PROFILE_FIX)


class UsageError(FipsbootError):
    exit_code = EXIT_USAGE


class HandEditError(FipsbootError):
    exit_code = EXIT_CONFLICT


class BusyError(FipsbootError):
    exit_code = EXIT_BUSY


class FollowUpError(FipsbootError):
    exit_code = EXIT_FOLLOW_UP


class OpenSSLError(FipsbootError):
    """openssl did not do what was asked; the message carries its raw output."""
