"""The Ansible collection, driven by real ansible-playbook runs against a fleet: hosts with
`ansible_connection=local`, each with its own server installation, fipsboot venv and state
folder (and, where tests/fleet.py is available, booted Debian hosts reached over SSH).

The collection is built with `ansible-galaxy collection build` and installed from the tarball,
as an operator would. fipsboot reaches each host as wheels and is installed there into a venv
by the role; the modules run that fipsboot. The steps depend on each other (one fleet, one
life cycle), in this order: setup, check mode, a canary that fails, the rollout, a rerun,
non-FIPS, rollback to the first checkpoint.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path, PurePosixPath
from types import SimpleNamespace
from typing import Dict, List

import pytest
from helpers import ROOT, build, lay_out

pytestmark = pytest.mark.testbed

COLLECTION = ROOT / "ansible" / "ansible_collections" / "fipsboot" / "fipsboot"
BIN = Path(sys.executable).parent
LOCAL_HOSTS = ["local1", "local2"]  # local1 is the canary: first in the group
SSH_HOSTS = 2  # of the test hosts (tests/fleet.py), after the local ones


def role_vars(host, wheels: List[str], targets: List[str]) -> dict:
    """The fips role's variables for a host (LocalHost or SshHost): fipsboot's venv and wheels,
    the profile, the state folder, the server's folders and the account's targets."""
    inst = host.inst
    return {
        "fipsboot_venv": str(host.venv),
        "fipsboot_wheels": wheels,
        "fipsboot_profile_path": str(host.profile),
        "fipsboot_environment": {"FIPSBOOT_STATE_DIR": str(host.state)},
        "fipsboot_server": {"install-dir": str(inst.install_dir),
                            "config-dir": str(inst.config_dir),
                            "security-pack-dir": str(inst.security_pack)},
        "fipsboot_account": {"targets": targets},
        "fipsboot_executable": str(host.venv / "bin" / "fipsboot"),
    }


class LocalHost:
    def __init__(self, name: str, root: Path, testbed):
        self.name = name
        self.root = root
        self.inst = lay_out(build(testbed, "linux-3.0"), root / "server root", "3.0")
        self.state = root / "state"
        self.venv = root / "venv"
        self.profile = root / "etc" / "fipsboot.toml"
        self.restarts = root / "restarts.log"
        self.inst.envfile.write_text("TZ=UTC\n")

    def vars(self, wheels: List[str]) -> dict:
        inst = self.inst
        # "The server": started with its env file (as systemd's EnvironmentFile= would), it
        # logs the OPENSSL_CONF it got.
        server = (f'set -a; . "{inst.envfile}"; '
                  f'echo "start OPENSSL_CONF=${{OPENSSL_CONF:-unset}}" >> "{self.restarts}"')
        return {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
            **role_vars(self, wheels, [f"envfile:{inst.envfile}"]),
            "fipsboot_restart_command": ["sh", "-c", server],
        }

    def snapshot(self, mtimes: bool = False) -> Dict[str, tuple]:
        """Every byte fipsboot could touch: the installation, its targets (and the journal)."""
        out = {}
        for top in (self.inst.root, self.state):
            for p in sorted(top.rglob("*")) if top.exists() else ():
                if p.is_file() and not p.is_symlink():
                    st = p.stat()
                    out[str(p)] = (p.read_bytes(), st.st_mode) + ((st.st_mtime_ns,) if mtimes else ())
        return out

    def starts(self) -> List[str]:
        return self.restarts.read_text().splitlines() if self.restarts.exists() else []

    def here(self, path) -> Path:
        """This machine's path of a path on the host."""
        return Path(path)

    def teardown(self) -> None:
        if not os.environ.get("KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)


class SshHost:
    """A booted Debian test host (tests/fleet.py) reached over SSH: fipsboot travels there as
    wheels, the role installs it into a venv, the modules run that fipsboot. The server is a
    systemd unit that logs the OPENSSL_CONF systemd gave it. Paths of its own, so the other
    host tests sharing these hosts are not disturbed."""

    BASE = "/srv/ors-ansible"
    UNIT = "ors-ansible.service"
    LOG = "/var/log/ors-ansible.log"
    SERVER = "/usr/local/sbin/ors-ansible-server"

    def __init__(self, host, testbed):
        self.host = host
        self.name = host.name
        b = PurePosixPath(self.BASE)
        self.inst = SimpleNamespace(install_dir=b / "GCTI" / "ORS 8.1.401.11",
                                    config_dir=b / "GCTI" / "ORS_FIPS_CFG",
                                    security_pack=b / "GCTI" / "security_pack",
                                    envfile=PurePosixPath("/etc/default/ors-ansible"))
        self.state = PurePosixPath("/var/lib/fipsboot-ansible")
        self.venv = PurePosixPath("/opt/fipsboot-ansible/venv")
        self.profile = PurePosixPath("/etc/fipsboot-ansible/profile.toml")
        self.dropin_dir = PurePosixPath(f"/etc/systemd/system/{self.UNIT}.d")
        linux30 = build(testbed, "linux-3.0")
        inst = self.inst
        host.copy_in(linux30 / "fips" / "fips.so", f"{inst.install_dir}/fips/fips.so")
        for lib in ("libcrypto.so.3", "libssl.so.3"):
            host.copy_in(linux30 / "lib64" / lib, f"{inst.install_dir}/lib64/{lib}")
            host.copy_in(linux30 / "lib64" / lib, f"{inst.security_pack}/{lib}")
        host.copy_in(linux30 / "bin" / "openssl", f"{inst.install_dir}/tools/openssl")
        host.path(str(inst.config_dir)).mkdir(parents=True, exist_ok=True)
        host.write(str(inst.envfile), "TZ=UTC\n")
        host.write(self.SERVER, '#!/bin/sh\n'
                   f'echo "start OPENSSL_CONF=${{OPENSSL_CONF:-unset}}" >> {self.LOG}\n'
                   'exec sleep infinity\n', mode=0o755)
        host.write(f"/etc/systemd/system/{self.UNIT}",
                   f"[Service]\nExecStart={self.SERVER}\n")
        host.run(f"systemctl daemon-reload && systemctl start {self.UNIT}")

    def vars(self, wheels: List[str]) -> dict:
        inst = self.inst
        return {
            "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            # the fleet's ssh_config: ProxyCommand into the host's namespace and its own
            # short-lived control masters (ssh_args without ControlPersist: Ansible adds none)
            "ansible_ssh_common_args": f"-F {self.host.fleet.ssh_config}",
            "ansible_ssh_args": "-o LogLevel=ERROR",
            **role_vars(self, wheels, [f"systemd:{self.UNIT}", f"envfile:{inst.envfile}"]),
            "fipsboot_service": self.UNIT,
        }

    def here(self, path) -> Path:
        return self.host.path(str(path))

    def snapshot(self, mtimes: bool = False) -> Dict[str, tuple]:
        out = {}
        for top in (self.BASE, self.dropin_dir, self.inst.envfile, self.state):
            local = self.here(top)
            paths = [local] if local.is_file() else sorted(local.rglob("*")) if local.exists() else []
            for p in paths:
                if p.is_file() and not p.is_symlink():
                    st = p.stat()
                    key = "/" + str(p.relative_to(self.here("/")))
                    out[key] = (p.read_bytes(), st.st_mode) + ((st.st_mtime_ns,) if mtimes else ())
        return out

    def starts(self) -> List[str]:
        log = self.here(self.LOG)
        return log.read_text().splitlines() if log.exists() else []

    def forget_starts(self) -> None:
        self.here(self.LOG).write_text("")

    def teardown(self) -> None:
        """Leave the shared host as it was: the unit stopped, this test's files gone."""
        self.host.run(f"systemctl stop {self.UNIT}; rm -rf {self.BASE} {self.dropin_dir} "
                      f"/etc/systemd/system/{self.UNIT} {self.SERVER} {self.LOG} "
                      f"{self.inst.envfile} {self.state} /opt/fipsboot-ansible /etc/fipsboot-ansible; "
                      "systemctl daemon-reload", check=False)


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> List[str]:
    """fipsboot's wheel and its dependencies' (the hosts install offline from these)."""
    out = tmp_path_factory.mktemp("wheels")
    subprocess.run([str(BIN / "pip"), "wheel", "-q", "--wheel-dir", str(out), str(ROOT)],
                   check=True, capture_output=True, timeout=600)
    return sorted(str(p) for p in out.glob("*.whl"))


@pytest.fixture(scope="module")
def collections(tmp_path_factory) -> Path:
    """The collection as operators get it: ansible-galaxy collection build, then install."""
    work = tmp_path_factory.mktemp("galaxy")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", str(COLLECTION),
                    "--output-path", str(work)], check=True, capture_output=True)
    tarball, = work.glob("fipsboot-fipsboot-*.tar.gz")
    subprocess.run([str(BIN / "ansible-galaxy"), "collection", "install", str(tarball),
                    "-p", str(work / "collections")], check=True, capture_output=True)
    return work / "collections"


class Fleet:
    def __init__(self, root: Path, hosts: list, collections: Path, wheels: List[str]):
        self.root = root
        self.hosts = hosts  # every host of the inventory, local ones first
        self.collections = collections
        inventory = {"all": {"children": {"fipsboot": {"hosts": {
            h.name: h.vars(wheels) for h in hosts}}}}}
        self.inventory = root / "inventory.json"
        self.inventory.write_text(json.dumps(inventory, indent=1))

    def env(self) -> Dict[str, str]:
        return {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}",
                "ANSIBLE_COLLECTIONS_PATH": str(self.collections),
                "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "ansible" / "callback_plugins"),
                "ANSIBLE_CALLBACKS_ENABLED": "record",
                "FIPSBOOT_TEST_RECORD": str(self.root / "record.json"),
                "ANSIBLE_LOCAL_TEMP": str(self.root / "ansible-tmp"),
                "ANSIBLE_HOST_KEY_CHECKING": "False", "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_PIPELINING": "True",  # one SSH round trip per module
                "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_DEPRECATION_WARNINGS": "False"}

    def playbook(self, playbook: str, *args: str, expect_rc=0) -> dict:
        (self.root / "record.json").unlink(missing_ok=True)
        t0 = time.monotonic()
        p = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(self.inventory), playbook, *args],
                           env=self.env(), capture_output=True, text=True, timeout=600,
                           cwd=self.root)
        ok = p.returncode != 0 if expect_rc == "nonzero" else p.returncode == expect_rc
        assert ok, f"exit {p.returncode}\n{p.stdout[-6000:]}\n{p.stderr[-3000:]}"
        self.last_output = p.stdout
        if os.environ.get("FIPSBOOT_TEST_TIMINGS"):
            print(f"ansible-playbook {playbook} {' '.join(args)}: {time.monotonic() - t0:.1f} s")
        return json.loads((self.root / "record.json").read_text())

    def rollout(self, *args: str, expect_rc=0) -> dict:
        return self.playbook("fipsboot.fipsboot.rollout", *args, expect_rc=expect_rc)

    def info(self) -> Dict[str, dict]:
        out = self.playbook(str(ROOT / "tests" / "ansible" / "info.yml"))
        return task_results(out, "Verify")


def task_results(out: dict, name: str) -> Dict[str, dict]:
    """host -> result of the task named `name` (the last such task when it ran more than once)."""
    found: Dict[str, dict] = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"].split(" : ")[-1] == name:
                found.update(task["hosts"])
    return found


def booted_hosts(request) -> list:
    """The booted test hosts of the session (conftest's `fleet`); none where they can't run
    (outside CI the test then covers the local hosts only, and says so)."""
    try:
        return list(request.getfixturevalue("fleet").hosts[:SSH_HOSTS])
    except pytest.skip.Exception as e:
        print(f"test_ansible: no SSH test hosts: {e}")
        return []


@pytest.fixture(scope="module")
def ansible_fleet(request, tmp_path_factory, testbed, wheels, collections):
    root = tmp_path_factory.mktemp("fleet")
    hosts = [LocalHost(name, root / name, testbed) for name in LOCAL_HOSTS]
    try:
        hosts += [SshHost(h, testbed) for h in booted_hosts(request)]
        yield Fleet(root, hosts, collections, wheels)
    finally:
        for h in hosts:
            h.teardown()


@pytest.fixture(scope="module")
def before(ansible_fleet) -> Dict[str, dict]:
    """Set up the tool and the profile everywhere (--tags fipsboot_setup), then remember every
    byte fipsboot could touch on each host."""
    out = ansible_fleet.rollout("--tags", "fipsboot_setup")
    assert all(s["failures"] == 0 for s in out["stats"].values())
    for h in ansible_fleet.hosts:
        assert h.here(h.venv / "bin" / "fipsboot").exists() and h.here(h.profile).exists()
        assert not h.here(h.state).exists()  # fipsboot itself has not run yet
        if isinstance(h, SshHost):
            assert h.starts() == ["start OPENSSL_CONF=unset"]  # the server ran before
            h.forget_starts()
    return {h.name: h.snapshot(mtimes=True) for h in ansible_fleet.hosts}


def test_check_diff_shows_each_hosts_plan_and_changes_no_byte(ansible_fleet, before):
    out = ansible_fleet.rollout("--check", "--diff")
    applied = task_results(out, "Apply the mode (fips)")
    assert sorted(applied) == sorted(h.name for h in ansible_fleet.hosts)
    for h in ansible_fleet.hosts:
        r = applied[h.name]
        assert r["changed"] is True and r["checkpoint"] is None and not r.get("failed")
        plan = {c["target"]: c for c in r["plan"]}
        assert plan["openssl.cnf"]["action"] == "create"
        env = plan[f"envfile:{h.inst.envfile}"]
        assert env["variables"]["OPENSSL_CONF"]["new"] == f"{h.inst.config_dir}/openssl.cnf"
        diffs = "".join(d.get("prepared", "") for d in r["diff"])
        assert f"+.include {h.inst.config_dir}/fipsmodule.cnf" in diffs
        assert f'+OPENSSL_CONF="{h.inst.config_dir}/openssl.cnf"' in diffs
        assert {"before": "mode: as before fipsboot\n", "after": "mode: fips\n"}.items() <= \
            [d for d in r["diff"] if "before" in d][0].items()
        assert h.snapshot(mtimes=True) == before[h.name]
        assert h.starts() == []  # no restart in check mode


def test_canary_failing_verification_is_rolled_back_and_stops_the_rollout(ansible_fleet, before):
    """The canary's server restart brings a corrupted module (as a bad package update would):
    verification fails there, this run's checkpoint is rolled back, the server restarted in
    its earlier mode, and no other host is touched."""
    canary, others = ansible_fleet.hosts[0], ansible_fleet.hosts[1:]
    good = canary.inst.module.read_bytes()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF
    bad = canary.root / "fips.so.update"
    bad.write_bytes(bytes(corrupted))
    # the canary's restart: its "update" lands, then the server starts
    inventory = json.loads(ansible_fleet.inventory.read_text())
    canary_vars = inventory["all"]["children"]["fipsboot"]["hosts"][canary.name]
    normal_restart = list(canary_vars["fipsboot_restart_command"])
    canary_vars["fipsboot_restart_command"] = [
        "sh", "-c", 'if [ -e "$1" ]; then cp "$1" "$2" && rm "$1"; fi; shift 2; exec "$@"', "sh",
        str(bad), str(canary.inst.module), *normal_restart]
    ansible_fleet.inventory.write_text(json.dumps(inventory))
    try:
        out = ansible_fleet.rollout(expect_rc="nonzero")
        results = task_results(out, "Roll back to the checkpoint this run created")
        assert list(results) == [canary.name] and results[canary.name]["changed"] is True
        assert [u["id"] for u in results[canary.name]["undone"]] == [1]
        failed = task_results(out, "Verify the server's installation after the restart")
        assert failed[canary.name]["ok"] is False
        assert any(c.startswith("module-mac") for c in failed[canary.name]["failed_checks"])
        stopped = task_results(out, "Stop the rollout at this host")[canary.name]
        assert stopped["failed"] and "checkpoint 1 of this run was rolled back" in stopped["msg"]
        assert set(out["stats"]) == {canary.name}  # the play never reached another host
    finally:
        canary_vars["fipsboot_restart_command"] = normal_restart
        ansible_fleet.inventory.write_text(json.dumps(inventory))
    # exact prior bytes (the module aside: the bad update is not fipsboot's file)
    snap = canary.snapshot()
    module = str(canary.inst.module)
    assert snap.pop(module)[0] == bytes(corrupted)
    assert {k: v for k, v in snap.items() if not k.startswith(str(canary.state))} == \
        {k: v[:2] for k, v in before[canary.name].items() if k != module}
    assert not json.loads((next(canary.state.rglob("journal.json"))).read_text())["checkpoints"]
    # restarted twice: in FIPS mode (then verified), and again in its earlier mode
    assert canary.starts() == [f"start OPENSSL_CONF={canary.inst.config_dir}/openssl.cnf",
                               "start OPENSSL_CONF=unset"]
    for h in others:
        assert h.snapshot(mtimes=True) == before[h.name] and h.starts() == []
    canary.inst.module.write_bytes(good)  # the operator puts the good module back
    canary.restarts.unlink()


def test_rollout_installs_everywhere_restarts_and_verifies(ansible_fleet, before):
    out = ansible_fleet.rollout()
    applied = task_results(out, "Apply the mode (fips)")
    for h in ansible_fleet.hosts:
        assert out["stats"][h.name]["failures"] == 0
        assert applied[h.name]["changed"] is True and applied[h.name]["checkpoint"] == 1
        assert applied[h.name]["restart_required"] is True
        assert h.starts() == [f"start OPENSSL_CONF={h.inst.config_dir}/openssl.cnf"]
    info = ansible_fleet.info()
    for h in ansible_fleet.hosts:
        assert info[h.name]["ok"] is True and info[h.name]["mode"] == "fips"
        assert info[h.name]["changed"] is False
        assert {c["name"] for c in info[h.name]["checks"]} >= {"module-mac", "providers"}


def test_rerun_reports_nothing_changed(ansible_fleet):
    out = ansible_fleet.rollout()
    for h in ansible_fleet.hosts:
        assert out["stats"][h.name]["changed"] == 0 and out["stats"][h.name]["failures"] == 0
        assert len(h.starts()) == 1  # no restart either
    info = ansible_fleet.playbook(str(ROOT / "tests" / "ansible" / "info.yml"), "--check")
    assert all(s["changed"] == 0 for s in info["stats"].values())


def test_non_fips_then_rollback_to_the_first_checkpoint_restore_every_byte(ansible_fleet, before):
    out = ansible_fleet.rollout("-e", "fipsboot_state=non_fips")
    applied = task_results(out, "Apply the mode (non_fips)")
    info = ansible_fleet.info()
    for h in ansible_fleet.hosts:
        assert applied[h.name]["changed"] is True and applied[h.name]["checkpoint"] == 2
        assert info[h.name]["ok"] is True and info[h.name]["mode"] == "non-fips"
        assert h.starts()[-1] == "start OPENSSL_CONF=unset"
    out = ansible_fleet.rollout("-e", "fipsboot_state=rolled_back", "-e", "fipsboot_checkpoint=1")
    undone = task_results(out, "Apply the mode (rolled_back)")
    for h in ansible_fleet.hosts:
        assert [u["id"] for u in undone[h.name]["undone"]] == [2, 1]
        snap = {k: v for k, v in h.snapshot().items() if not k.startswith(str(h.state))}
        assert snap == {k: v[:2] for k, v in before[h.name].items()}
