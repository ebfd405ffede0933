"""The test hosts themselves (tests/fleet.py): real Debian 12 machines with systemd as PID 1,
reached over SSH through their own network namespaces, and torn down without a trace."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from fleet import Fleet, FleetLeak, host_root, sweep_stale


def test_hosts_boot_real_systemd_with_their_own_identity(fleet):
    ids, keys = set(), set()
    for host in fleet.hosts:
        r = host.run("systemctl is-system-running; cat /etc/machine-id; hostname; "
                     "cat /proc/1/comm; ip -o link | cut -d: -f2")
        state, machine_id, hostname, init, links = r.stdout.split("\n", 4)
        assert state in ("running", "degraded")
        assert init == "systemd" and hostname == host.name
        assert links.split() == ["lo"]  # a namespace of its own, loopback only
        ids.add(machine_id)
        keys.add(tuple(host.host_key))
        # The host's PID 1 is a systemd the machine sees under another PID.
        assert open(f"/proc/{host.leader}/comm").read().strip() == "systemd"
    assert len(ids) == len(keys) == len(fleet.hosts)


def test_sshd_listens_only_inside_each_host(fleet):
    machine_net = os.readlink("/proc/self/ns/net")
    for host in fleet.hosts:
        pid = host.unit_pid("ssh.service")
        assert open(f"/proc/{pid}/comm").read().strip() == "sshd"
        assert os.readlink(f"/proc/{pid}/ns/net") != machine_net
        assert os.readlink(f"/proc/{pid}/ns/net") == f"net:[{os.stat(host.netns).st_ino}]"


def _cmdline(pid: str) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:  # gone meanwhile
        return b""


def _nspid_of(pid: int) -> list:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("NSpid:"):
            return [int(x) for x in line.split()[1:]]
    return []


def test_machine_pid_maps_a_host_pid(fleet):
    host = fleet.hosts[0]
    host_pid = int(host.run("sleep 30 >/dev/null 2>&1 & echo $!").stdout)
    pid = host.machine_pid(host_pid)
    assert pid != host_pid
    deadline = time.monotonic() + 10  # the shell's child may not have exec'd sleep yet
    while open(f"/proc/{pid}/cmdline").read().split("\0")[:2] != ["sleep", "30"]:
        assert time.monotonic() < deadline, open(f"/proc/{pid}/cmdline").read()
        time.sleep(0.05)
    assert _nspid_of(pid) == [pid, host_pid]
    host.run(f"kill {host_pid}")


def test_copy_in_and_plain_ssh_with_the_fleets_config(fleet, tmp_path):
    src = tmp_path / "note with space.txt"
    src.write_text("hello $HOME 'quoted'\n")
    host = fleet.hosts[-1]
    host.copy_in(src, "/srv/in/note.txt", mode=0o600)
    r = subprocess.run(["ssh", "-F", str(fleet.ssh_config), host.name, "stat -c %a /srv/in/note.txt;"
                        " cat /srv/in/note.txt"], capture_output=True, text=True, timeout=60)
    assert r.stdout == "600\nhello $HOME 'quoted'\n"
    assert host.name in fleet.inventory.read_text()


def test_a_host_rebooted_from_inside_comes_back_with_its_files(fleet):
    host = fleet.hosts[-1]
    before = host.leader
    host.write("/root/kept", "still here\n")
    host.reboot()  # nspawn exits 133; the fleet boots the same host again, as nspawn@ would
    assert host.leader != before
    r = host.run("cat /root/kept; systemctl is-system-running; ip -o link | cut -d: -f2")
    kept, state, links = r.stdout.split("\n", 2)
    assert kept == "still here" and state in ("running", "degraded") and links.split() == ["lo"]


def test_teardown_leaves_nothing_and_says_so_when_it_cannot(tmp_path):
    if host_root() is None or os.geteuid() != 0:
        pytest.skip("needs the host root and root")
    fleet = Fleet(1, workdir=tmp_path / "fleet")
    with fleet:
        host = fleet.hosts[0]
        host.run("nohup sleep 300 >/dev/null 2>&1 &")  # a process that would outlive a test
        cgroups, netns = host.cgroups, host.netns
        assert fleet.control_path(host.name).exists()  # an SSH master is open
    assert not any(cg.exists() for cg in cgroups) and not netns.exists()
    assert not fleet.control_path(host.name).exists() and host.leftovers() == []

    # Something the teardown cannot remove (a mount under the host's folder) is reported.
    fleet = Fleet(1, workdir=tmp_path / "fleet2")
    with pytest.raises(FleetLeak, match="mount"):
        with fleet:
            held = fleet.hosts[0].dir / "held"
            held.mkdir()
            subprocess.run(["mount", "-t", "tmpfs", "held", str(held)], check=True)
    subprocess.run(["umount", str(held)], check=True)


def test_what_a_killed_session_left_is_swept(tmp_path):
    """kill -9 of the test process runs no teardown: the next fleet removes what it left."""
    if host_root() is None or os.geteuid() != 0:
        pytest.skip("needs the host root and root")
    script = ("import sys, time; sys.path.insert(0, sys.argv[1]); from fleet import Fleet\n"
              "f = Fleet(1); f.start(); print(f.workdir, f.hosts[0].cgroups[0], flush=True)\n"
              "time.sleep(600)\n")
    owner = subprocess.Popen([sys.executable, "-c", script, os.path.dirname(__file__)],
                             stdout=subprocess.PIPE, text=True)
    try:
        workdir, cgroup = owner.stdout.readline().split()
    finally:
        owner.kill()
        owner.wait()
    assert os.path.isdir(cgroup) and os.path.exists(f"{workdir}/h1/netns")
    removed = sweep_stale()
    assert cgroup in removed and f"{workdir}/h1/netns" in removed
    assert not os.path.exists(cgroup) and not os.path.exists(workdir)
    assert not any(workdir in line for line in open("/proc/self/mountinfo"))
    deadline = time.monotonic() + 10  # the dead session's SSH master goes with its proxy
    while any(workdir.encode() in _cmdline(p) for p in os.listdir("/proc") if p.isdigit()):
        assert time.monotonic() < deadline, "a process of the killed session is still there"
        time.sleep(0.1)
