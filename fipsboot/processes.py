"""Run programs and capture what they print, through files rather than pipes.

Under Wine, helper processes (wineserver, Wine's services) inherit the output handles and
outlive the program started, so a pipe would not see its end until they exit; a file is read
once the program itself has. Several programs can run at once (each openssl run loads and
self-checks the FIPS provider, which is most of its time).
"""
from __future__ import annotations

import contextlib
import subprocess
import tempfile
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
            inp, out, err = (stack.enter_context(tempfile.TemporaryFile()) for _ in range(3))
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
                returncode = proc.wait(timeout)
            except subprocess.TimeoutExpired:
                raise error(f"{' '.join(argv)} did not finish in {timeout:g} s") from None
            out.seek(0)
            err.seek(0)
            results.append(Result(list(argv), returncode, _text(out.read()), _text(err.read())))
        return results


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace").replace("\r\n", "\n")


def _reap(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
