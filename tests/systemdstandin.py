"""A stand-in for a running systemd, for tests on a machine where systemd is not PID 1.

fipsboot runs `systemctl daemon-reload` only when systemd is the running init (sd_booted(3):
`LinuxBackend.systemd_runtime` is a folder). The tests put a stand-in `systemctl` on PATH and
point that attribute at a folder of their own. The attribute lives in the fipsboot process, so
the command line is started through this file (run as a script): it sets the attribute from
FIPSBOOT_TEST_SYSTEMD_RUNTIME, then runs fipsboot exactly as `python -m fipsboot` does.
`helpers.fipsboot()` does that whenever the variable is in the environment it passes; fipsboot
itself never reads the variable.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

RUNTIME_VAR = "FIPSBOOT_TEST_SYSTEMD_RUNTIME"
HERE = Path(__file__).resolve()


def command() -> list:
    """argv that runs fipsboot's command line with the stand-in systemd runtime folder."""
    return [sys.executable, str(HERE)]


def launcher(folder: Path) -> Path:
    """An executable `fipsboot` in `folder` that starts fipsboot through this file (for
    callers that take a program path, such as the Ansible module's `executable`)."""
    path = folder / "fipsboot"
    path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{HERE}" "$@"\n')
    path.chmod(0o755)
    return path


def stand_in_systemctl(tmp_path):
    """systemd "running": a runtime folder and a systemctl on PATH that logs its calls and
    fails while the file `fail` exists."""
    runtime, bin_dir = tmp_path / "run-systemd", tmp_path / "bin"
    runtime.mkdir()
    bin_dir.mkdir()
    calls, fail = tmp_path / "calls", tmp_path / "fail"
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\necho "$@" >> "{calls}"\n'
        f'if [ -e "{fail}" ]; then echo "bus error" >&2; exit 1; fi\n')
    (bin_dir / "systemctl").chmod(0o755)
    env = {RUNTIME_VAR: str(runtime),
           "PATH": f"{bin_dir}:{os.environ['PATH']}"}

    def count() -> int:
        return len(calls.read_text().splitlines()) if calls.exists() else 0
    return env, fail, count


if __name__ == "__main__":
    import runpy

    from fipsboot.platforms.linux import LinuxBackend

    if os.environ.get(RUNTIME_VAR):
        LinuxBackend.systemd_runtime = Path(os.environ[RUNTIME_VAR])
    sys.argv[0] = "fipsboot"
    runpy.run_module("fipsboot", run_name="__main__", alter_sys=True)
