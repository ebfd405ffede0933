"""Linux backend: its targets (systemd drop-in, env file, shell-profile block), systemd's
daemon-reload after a drop-in changed, and the exec of the server."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, List

from ..errors import FipsbootError, FollowUpError
from ..warmrun import exec_server
from .base import Backend, Change, EnvTarget
from .shelltargets import EnvFile, ProfileBlock, account, login_profile
from .systemd import DROPIN_NAME, SystemdDropIn

DAEMON_RELOAD_TIMEOUT = 300  # a busy systemd can take long; a hung one is a failed follow-up


class LinuxBackend(Backend):
    name = "linux"
    # sd_booted(3): systemd is the running init when this folder exists. A class attribute so
    # that tests can point it at a folder of their own (tests/systemdstandin.py).
    systemd_runtime = Path("/run/systemd/system")

    def targets(self, profile) -> List[EnvTarget]:
        out: List[EnvTarget] = []
        for t in profile.targets:
            if t.kind == "systemd":
                out.append(SystemdDropIn(t.arg, profile.systemd_dir))
            elif t.kind == "envfile":
                out.append(EnvFile(t.arg))
            elif t.kind == "profile":
                entry = account(t.arg)
                out.append(ProfileBlock(login_profile(t.arg), str(t),
                                        (entry.pw_uid, entry.pw_gid)))
            elif t.kind == "profile-file":
                out.append(ProfileBlock(Path(t.arg), str(t)))
            else:  # the profile parser only lets known kinds through
                raise FipsbootError(f"target {t} is not supported on Linux")
        return out

    def after_apply(self, changes: List[Change]) -> List[str]:
        """systemd re-reads unit files only when asked, and only a running systemd can be."""
        if not any(c.changed and c.kind == "file" and Path(c.key).name == DROPIN_NAME
                   for c in changes):
            return []
        import shutil

        from ..processes import run_together

        if not self.systemd_runtime.is_dir() or not shutil.which("systemctl"):
            return ["systemd is not the running init here: `systemctl daemon-reload` skipped"]
        r, = run_together([(["systemctl", "daemon-reload"], b"")], os.environ, DAEMON_RELOAD_TIMEOUT,
                          FollowUpError)
        if r.returncode:
            raise FollowUpError(f"the unit files are written, but `systemctl daemon-reload` failed "
                                f"(systemd has not loaded them yet): {r.stderr.strip()}",
                                "fix what stops the reload, then run any fipsboot install, "
                                "reset or rollback again: each retries it until it succeeds")
        return ["ran `systemctl daemon-reload`"]

    def launch(self, argv: List[str], env: Dict[str, str]) -> int:
        # exec: same PID, signals reach the server directly, its exit status is the caller's.
        try:
            exec_server(argv, env)  # the warm path's exec: one PATH search for both
        except OSError as e:
            raise FipsbootError(f"cannot start {argv[0]}: {e.strerror}",
                                "check the server's command after -- (its path, and that this "
                                "account may run it)") from None
        return 0  # not reached
