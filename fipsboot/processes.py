"""Run programs and capture what they print, through files rather than pipes.

Under Wine, helper processes (wineserver, Wine's services) inherit the output handles and
outlive the program started, so a pipe would not see its end until they exit; a file is read
once the program itself has. Several programs can run at once (each openssl run loads and
self-checks the FIPS provider, which is most of its time).
"""
from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
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
            started.append((argv, proc, out, err))
        results = []
        for argv, proc, out, err in started:
            try:
                returncode = _wait(proc, timeout)
            except subprocess.TimeoutExpired:
                raise error(f"{' '.join(argv)} did not finish in {timeout:g} s") from None
            except OSError as e:  # it overran and could not even be stopped
                raise error(f"{' '.join(argv)} did not finish in {timeout:g} s and could not "
                            f"be stopped: {e.strerror}") from None
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


def _wait(proc: subprocess.Popen, timeout: float) -> int:
    """The exit code, as soon as the process ends; TimeoutExpired once `timeout` passed (the
    process is then killed). On Linux through a pidfd: `Popen.wait(timeout)` polls with
    sleeps of up to 50 ms there (on `run`'s start-up path, time the server waits for nothing),
    and a kill through the pidfd can never reach another process that got a reused PID."""
    try:
        pidfd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # not Linux (Windows waits without polling), or too old
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _reap(proc)
            raise
    try:
        if not select.select([pidfd], [], [], timeout)[0]:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)  # raises when it can't: no hang
            proc.wait()
            raise subprocess.TimeoutExpired(proc.args, timeout)
        return proc.wait()
    finally:
        os.close(pidfd)


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _reap(proc: subprocess.Popen) -> None:
    """Stop a process fipsboot no longer waits for; one it may not signal is left alone
    (waiting for it could be for ever)."""
    if proc.poll() is None:
        try:
            proc.kill()
        except OSError:
            return
        proc.wait()
