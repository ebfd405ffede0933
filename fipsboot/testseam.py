"""Test seam, no behaviour in production: where the crash tests kill or fail fipsboot.

Why it is in the package: the crash tests (tests/test_install.py, test_reset.py,
test_hardening.py, test_robustness.py, scripts/kill_loop.py) SIGKILL the real fipsboot process
between two journaled steps, or make one step fail, then check that the next command recovers.
Only code inside that process knows where one step ends and the next begins; a test outside it
could only kill at a random moment. So every journaled step calls `step()`, and the point after
the journal's last save calls `kill_point()`.

Unless a FIPSBOOT_TEST_* variable below is set, both only count (one dictionary look-up each).
- FIPSBOOT_TEST_KILL_AT=N: the process SIGKILLs itself at the Nth step (a real kill -9).
- FIPSBOOT_TEST_FAIL_AT=N: `InjectedFailure` is raised there (a failure part-way).
- FIPSBOOT_TEST_KILL_IN_WRITE=1 (read by fsutil): one more step between a temp file and its
  rename, so kills land there too.
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
