"""Run programs and capture what they print, through files rather than pipes.

Under Wine, helper processes (wineserver, Wine's services) inherit the output handles and
outlive the program started, so a pipe would not see its end until they exit; a file is read
once the program itself has. Several programs can run at once (each openssl run loads and
self-checks the FIPS provider, which is most of its time).
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import List, Mapping, Sequence, Tuple, Type

from .errors import FipsbootError


@dataclass
class Result:
    args: List[str]
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return (self.stdout + self.stderr).strip()


def run_together(jobs: Sequence[Tuple[Sequence[str], bytes]], env: Mapping[str, str],
                 timeout: float, error: Type[FipsbootError] = FipsbootError) -> List[Result]:
    """Start every (argv, stdin) job, wait for all; `error` for what can't be run or hangs."""
    with contextlib.ExitStack() as stack:
        started = []
        for argv, stdin in jobs:
            inp, out, err = (stack.enter_context(_scratch_file()) for _ in range(3))
            inp.write(stdin)
            inp.seek(0)
            try:
                proc = subprocess.Popen(list(argv), env=dict(env), stdin=inp, stdout=out,
                                        stderr=err)
            except OSError as e:
                raise error(f"cannot run {argv[0]}: {e.strerror}") from None
            stack.callback(_reap, proc)
            started.append((argv, proc, out, err, stack.enter_context(_deadline(proc, timeout))))
        results = []
        for argv, proc, out, err, overdue in started:
            returncode = proc.wait()
            if overdue.is_set():
                raise error(f"{' '.join(argv)} did not finish in {timeout:g} s")
            out.seek(0)
            err.seek(0)
            results.append(Result(list(argv), returncode, _text(out.read()), _text(err.read())))
        return results


def _scratch_file():
    """An anonymous file: a memfd on Linux (no folder to write in, and `tempfile` with its
    imports stays off `run`'s start-up path), a temporary file elsewhere."""
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("fipsboot-output", os.MFD_CLOEXEC), "w+b")
    import tempfile

    return tempfile.TemporaryFile()


@contextlib.contextmanager
def _deadline(proc: subprocess.Popen, timeout: float):
    """Kill `proc` once `timeout` seconds have passed (the event says it was), so the caller can
    wait for it without a time limit: `Popen.wait(timeout)` polls with sleeps of up to 50 ms,
    and on `run`'s start-up path every one of them is time the server waits for nothing."""
    overdue = threading.Event()

    def expire() -> None:
        overdue.set()
        _reap(proc)

    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        yield overdue
    finally:
        timer.cancel()


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
