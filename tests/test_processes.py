"""processes.py, the one place fipsboot starts a program: output captured, the exit code as
soon as the program ends, and a program that overruns its time killed (never waited on for
ever, never another process that got its PID)."""
from __future__ import annotations

import os
import time

import pytest

from fipsboot import processes
from fipsboot.errors import FipsbootError

ENV = {"PATH": "/usr/bin:/bin"}


def test_output_stdin_and_exit_codes_of_programs_run_together():
    first, second = processes.run_together(
        [(["sh", "-c", "cat; echo err >&2; exit 3"], b"in\n"), (["echo", "two"], b"")], ENV, 10)
    assert (first.returncode, first.stdout, first.stderr) == (3, "in\n", "err\n")
    assert (second.returncode, second.stdout) == (0, "two\n")


def test_a_program_that_overruns_is_killed_and_named(tmp_path):
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    with pytest.raises(FipsbootError, match="did not finish in 0.5 s"):
        processes.run_together([(["sh", "-c", f'echo $$ > "{pid_file}"; exec sleep 30'], b"")],
                               ENV, 0.5)
    assert time.monotonic() - started < 10
    pid = int(pid_file.read_text())
    assert not os.path.exists(f"/proc/{pid}")  # killed and reaped: no zombie either
