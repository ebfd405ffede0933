"""Fault injection for the crash tests: every journaled step calls `step()`.

With FIPSBOOT_TEST_KILL_AT=N the process SIGKILLs itself at the Nth step (a real kill -9 at a
chosen point); with FIPSBOOT_TEST_FAIL_AT=N it raises there instead (a failure part-way).
Unset, a step costs one dictionary look-up.
"""
from __future__ import annotations

import os
import signal

_count = 0


class InjectedFailure(OSError):
    pass


def step(name: str) -> None:
    global _count
    _count += 1
    if os.environ.get("FIPSBOOT_TEST_KILL_AT") == str(_count):
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get("FIPSBOOT_TEST_FAIL_AT") == str(_count):
        raise InjectedFailure(f"injected failure at step {_count} ({name})")


def kill_point(name: str) -> None:
    """A step where only a kill is meaningful (after the journal's last save: nothing is left
    to undo, so an injected failure there would test nothing)."""
    global _count
    _count += 1
    if os.environ.get("FIPSBOOT_TEST_KILL_AT") == str(_count):
        os.kill(os.getpid(), signal.SIGKILL)
