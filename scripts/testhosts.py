#!/usr/bin/env python3
"""Build the Debian 12 root the test hosts boot from (debootstrap, once, then cached).

The root lands in `<test bed cache>/hosts-<key>/root`, where the key is a digest of what it is
built from (suite, mirror, packages, this recipe); `<cache>/hosts.json` names the current one,
which `tests/fleet.py` reads. Each test host boots a copy of it with systemd-nspawn.

The mirror is the machine's own (read from its apt configuration, never changed).
Standard library only; needs root and debootstrap (scripts/setup.sh installs it).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from testbed import cache_dir, locked, log, machine_mirrors, write_manifest  # noqa: E402

SUITE = "bookworm"
# What a host needs: a real systemd and dbus, sshd (how Ansible and the tests reach it),
# python3 with venv (fipsboot is installed as a wheel into a venv), iproute2 for checks.
PACKAGES = ["systemd", "systemd-sysv", "dbus", "openssh-server", "python3", "python3-venv",
            "iproute2", "procps"]
# Units a throw-away host doesn't need (timers that would start apt, consoles nobody reads).
MASKED = ["apt-daily.timer", "apt-daily-upgrade.timer", "getty@tty1.service",
          "console-getty.service", "e2scrub_all.timer", "e2scrub_reap.service", "fstrim.timer",
          "systemd-pstore.service", "systemd-timesyncd.service", "man-db.timer"]
# Bump when the steps below change: it is part of the cache key.
RECIPE = 1


def build_key(mirror: str) -> str:
    version = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "debootstrap"],
                             capture_output=True, text=True).stdout.strip()
    spec = {"suite": SUITE, "mirror": mirror, "packages": PACKAGES, "masked": MASKED,
            "recipe": RECIPE, "debootstrap": version, "variant": "minbase"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def customise(root: Path) -> None:
    """Make the root a template: no identity of its own, sshd on loopback for root by key."""
    for unit in MASKED:
        link = root / "etc/systemd/system" / unit
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.is_symlink():
            link.symlink_to("/dev/null")
    # Each host gets its own machine-id and SSH host keys when it is made (tests/fleet.py).
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.exists() or dbus_id.is_symlink():
        dbus_id.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    conf = root / "etc/ssh/sshd_config.d/fleet.conf"
    conf.write_text("ListenAddress 127.0.0.1\nPermitRootLogin prohibit-password\n"
                    "PasswordAuthentication no\nUseDNS no\n")
    (root / "root/.ssh").mkdir(mode=0o700, exist_ok=True)
    (root / "etc/hostname").write_text("template\n")
    # No package lists or downloaded .debs in a root that is copied for every host.
    shutil.rmtree(root / "var/cache/apt/archives", ignore_errors=True)
    (root / "var/cache/apt/archives/partial").mkdir(parents=True)
    for lists in (root / "var/lib/apt/lists").glob("*_*"):
        lists.unlink()


def ensure_root() -> dict:
    mirror, _security = machine_mirrors()
    if not mirror:
        raise SystemExit("testhosts: no Debian mirror in this machine's apt configuration")
    key = build_key(mirror)
    out = cache_dir() / f"hosts-{key}"
    if not (out / "host.json").exists():
        if not shutil.which("debootstrap"):
            raise SystemExit("testhosts: debootstrap is missing: run scripts/setup.sh")
        staging = out.with_name(out.name + ".partial")
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        logfile = cache_dir() / f"hosts-{key}.log"
        started = time.monotonic()
        log(f"debootstrap {SUITE} from {mirror} (log: {logfile})")
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}",
               SUITE, str(staging / "root"), mirror]
        with open(logfile, "wb") as f:
            rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT).returncode
        if rc:
            tail = logfile.read_text(errors="replace").splitlines()[-20:]
            raise SystemExit(f"testhosts: debootstrap failed ({rc}):\n" + "\n".join(tail))
        customise(staging / "root")
        info = {"suite": SUITE, "mirror": mirror, "packages": PACKAGES, "key": key,
                "build_seconds": round(time.monotonic() - started)}
        (staging / "host.json").write_text(json.dumps(info, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(staging, out)
        log(f"built the host root in {info['build_seconds']} s")
    info = json.loads((out / "host.json").read_text())
    info["root"] = str(out / "root")
    return info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    if os.geteuid() != 0:
        log("not root: the test hosts need root; skipping the host root")
        return 0
    started = time.monotonic()
    cache = cache_dir()
    with locked(cache / ".hosts.lock"):
        info = ensure_root()
        write_manifest(cache / "hosts.json", info)
    log(f"host root ready in {time.monotonic() - started:.1f} s: {info['root']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
