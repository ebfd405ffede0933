"""A small fleet of real Debian 12 test hosts on this machine, each booting systemd as PID 1.

    from fleet import Fleet
    with Fleet(3) as fleet:                     # boots h1..h3, tears everything down on exit
        h1 = fleet.hosts[0]
        h1.run("systemctl is-system-running")   # as root over SSH; CompletedProcess (text)
        h1.copy_in("local/file", "/etc/x")      # a file or folder into the host
        h1.machine_pid(1234)                    # a PID inside the host -> this machine's PID
        h1.reboot()                             # systemctl reboot inside; back when running
        h1.install_fipsboot(build_wheelhouse(tmp))  # the checkout's wheel, a venv on h1
        fleet.ssh_config, fleet.inventory       # for ssh -F / ansible -i

Each host is an overlay of the root `scripts/testhosts.py` built (its own machine-id, SSH host
key and hostname), booted by `systemd-nspawn --boot` in a network namespace of its own that
holds only `lo` (sshd listens on 127.0.0.1:22 there; nothing listens in the machine's own
namespace). SSH goes through `nsenter --net=<namespace file> nc 127.0.0.1 22`.

Teardown is complete and checked by itself: no process, mount, network namespace, cgroup or
SSH control master is left behind, or it raises `FleetLeak` naming what is.

Needs root. Never boots systemd on the machine's own root: only in a host's copy.
"""
from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Set, Union

ROOT = Path(__file__).resolve().parent.parent
# nspawn puts its payload/ and supervisor/ cgroups inside the caller's: each host is started
# from a cgroup of its own in the two hierarchies nspawn uses on a hybrid machine.
CGROUP_HIERARCHIES = ("/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified")
BOOT_TIMEOUT = 60
SSH_PERSIST_SECONDS = 30


class FleetError(RuntimeError):
    pass


class FleetLeak(FleetError):
    """Teardown found something of the fleet still on the machine."""


def testbed_dir() -> Path:
    if os.environ.get("FIPSBOOT_TESTBED_DIR"):
        return Path(os.environ["FIPSBOOT_TESTBED_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("fipsboot")) / "testbed"


def host_root() -> Optional[Path]:
    """The cached Debian root (scripts/testhosts.py), or None when it is not built."""
    manifest = testbed_dir() / "hosts.json"
    if not manifest.exists():
        return None
    root = Path(json.loads(manifest.read_text())["root"])
    return root if (root / "usr/lib/systemd/systemd").exists() else None


def missing_requirements() -> List[str]:
    """What this machine lacks to run a fleet (empty when it can)."""
    missing = []
    if os.geteuid() != 0:
        missing.append("root")
    for exe in ("systemd-nspawn", "nsenter", "unshare", "nc", "ssh", "ssh-keygen", "ip"):
        if not shutil.which(exe):
            missing.append(exe)
    if host_root() is None:
        missing.append("the host root (scripts/testhosts.py)")
    if not all(os.path.isdir(h) for h in CGROUP_HIERARCHIES):
        missing.append("cgroup hierarchies " + ", ".join(CGROUP_HIERARCHIES))
    return missing


def _ns_inode(pid: Union[int, str], kind: str) -> Optional[str]:
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def _pids() -> List[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _nspid(pid: int) -> List[int]:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


class Host:
    """One booted host. `name` (h1, h2, ...) is its SSH alias in the fleet's ssh config."""

    def __init__(self, fleet: Fleet, index: int):
        self.fleet = fleet
        self.index = index
        self.name = f"h{index}"
        self.machine = f"{fleet.tag}-{self.name}"  # unique on the machine (cgroups, nspawn)
        self.dir = fleet.workdir / self.name
        self.upper = self.dir / "upper"
        self.overlay_work = self.dir / "work"
        self.root = self.dir / "root"  # the overlay's mount point (in nspawn's mount namespace)
        self.netns = self.dir / "netns"
        self.log = self.dir / "nspawn.log"
        self.cgroups = [Path(h) / self.machine for h in CGROUP_HIERARCHIES]
        self.process: Optional[subprocess.Popen] = None
        self._leader: Optional[int] = None
        self.boots = 0
        self.stopping = False
        self._lock = threading.Lock()

    @property
    def leader(self) -> int:
        """This machine's PID of the host's PID 1 (after a reboot: of the new one)."""
        if self._leader is not None and _nspid(self._leader)[-1:] != [1]:
            self._leader = None  # that PID 1 has gone (a reboot): find the new one
        deadline = time.monotonic() + BOOT_TIMEOUT
        while self._leader is None:
            self._leader = self._find_leader()
            if self._leader is None:
                if self.process is None or time.monotonic() > deadline:
                    raise FleetError(f"{self.name} is not running")
                time.sleep(0.05)
        return self._leader

    # -- making and booting -----------------------------------------------------------------
    def create(self, template: Path) -> None:
        """An overlay of the shared root: the host's own files go to its upper layer, the
        cached root is never written (and no 300 MB copy per host)."""
        for part in (self.upper, self.overlay_work, self.root):
            part.mkdir(parents=True)
        self.template = template
        self._upper_write("etc/machine-id", uuid.uuid4().hex + "\n", 0o444)
        self._upper_write("etc/hostname", self.name + "\n")
        self._upper_write("etc/hosts", f"127.0.0.1 localhost\n127.0.1.1 {self.name}\n")
        key = self._upper_dir("etc/ssh") / "ssh_host_ed25519_key"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", self.name,
                        "-f", str(key)], check=True)
        self.host_key = key.with_suffix(".pub").read_text().split()[:2]
        self._upper_write("etc/ssh/sshd_config.d/fleet-hostkey.conf",
                          "HostKey /etc/ssh/ssh_host_ed25519_key\n")
        self._upper_write("root/.ssh/authorized_keys",
                          self.fleet.client_key.with_suffix(".pub").read_text(), 0o600)
        # The namespace outlives each boot (a reboot keeps the SSH route), holds only lo, and
        # lo is brought up from here: nspawn drops CAP_NET_ADMIN with a namespace path.
        self.netns.touch()
        subprocess.run(["unshare", f"--net={self.netns}", "true"], check=True)
        subprocess.run(["nsenter", f"--net={self.netns}", "ip", "link", "set", "lo", "up"],
                       check=True)
        for cg in self.cgroups:
            cg.mkdir()

    def _upper_dir(self, rel: str) -> Path:
        """rel's folders in the upper layer, each with the template's mode and owner (an
        upper folder's attributes are what the host sees)."""
        path = self.upper
        for part in Path(rel).parts:
            path = path / part
            if not path.exists():
                lower = self.template / path.relative_to(self.upper)
                st = lower.stat() if lower.is_dir() else None
                path.mkdir(mode=0o755)
                if st is not None:
                    os.chown(path, st.st_uid, st.st_gid)
                    path.chmod(st.st_mode & 0o7777)
        return path

    def _upper_write(self, rel: str, text: str, mode: int = 0o644) -> None:
        target = self._upper_dir(str(Path(rel).parent)) / Path(rel).name
        target.write_text(text)
        target.chmod(mode)

    def _join_cgroups(self) -> None:  # runs in the child, before exec
        for cg in self.cgroups:
            with open(cg / "cgroup.procs", "w") as f:
                f.write(str(os.getpid()))

    def boot(self) -> None:
        """Start systemd-nspawn --boot; `wait_running` waits for it."""
        nspawn = ["systemd-nspawn", "--quiet", "--boot", f"--directory={self.root}",
                  f"--machine={self.machine}", f"--hostname={self.name}", "--register=no",
                  "--keep-unit", f"--network-namespace-path={self.netns}",
                  "--console=read-only", "--link-journal=no", "--resolv-conf=off",
                  "--timezone=off"]
        # nspawn's state under /run/systemd goes to a tmpfs of a private mount namespace, off
        # the machine (where /run is no tmpfs and nspawn would not clean it up).
        # The overlay lives in that namespace too: it goes when the host stops.
        layers = f"lowerdir={self.template},upperdir={self.upper},workdir={self.overlay_work}"
        for layer in (self.template, self.upper, self.overlay_work):
            if any(c in str(layer) for c in ",:\\ "):
                raise FleetError(f"overlay paths must not hold , : \\ or spaces: {layer}")
        inner = (f"mount -t overlay fleet -o {shlex.quote(layers)} {shlex.quote(str(self.root))}"
                 " && mount -t tmpfs -o size=8m,mode=0755 fleet /run/systemd && exec "
                 + shlex.join(nspawn))
        log = open(self.log, "ab")
        self.process = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", inner],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=self._join_cgroups)
        log.close()
        self._leader = None
        self.boots += 1
        threading.Thread(target=self._watch, args=(self.process,), daemon=True).start()

    def _watch(self, process: subprocess.Popen) -> None:
        """A reboot asked from inside makes nspawn exit with 133: boot the same host again, as
        systemd-nspawn@.service would (so Ansible's reboot module sees it come back)."""
        if process.wait() != 133:
            return
        with self._lock:
            if not self.stopping and process is self.process:
                self.close_ssh()
                self.boot()

    def _find_leader(self) -> Optional[int]:
        """The host's PID 1 as this machine sees it: in our cgroup, NSpid ending in 1."""
        for cg in self.cgroups[:1]:
            for procs in cg.rglob("cgroup.procs"):
                try:
                    pids = [int(p) for p in procs.read_text().split()]
                except OSError:
                    continue
                for pid in pids:
                    ns = _nspid(pid)
                    if len(ns) > 1 and ns[-1] == 1:
                        return pid
        return None

    def wait_running(self, timeout: float = BOOT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while self._leader is None:
            if self.process.poll() is not None:
                raise FleetError(f"{self.name}: systemd-nspawn exited {self.process.returncode}:\n"
                                 + self.log.read_text(errors="replace")[-3000:])
            if time.monotonic() > deadline:
                raise FleetError(f"{self.name}: no PID 1 after {timeout} s")
            self._leader = self._find_leader()
            time.sleep(0.05)
        # Until systemd has set itself up, systemctl says "offline" or finds no bus: ask again.
        while True:
            left = max(1.0, deadline - time.monotonic())
            r = self.enter(["systemctl", "is-system-running", "--wait"], timeout=left)
            state = r.stdout.strip()
            if state in ("running", "degraded"):
                break
            if state not in ("offline", "") or time.monotonic() > deadline:
                raise FleetError(f"{self.name}: system state {state!r}\n{r.stderr}")
            time.sleep(0.1)
        # sshd answers once multi-user is reached; connect once so the control master is up.
        while True:
            r = self.run("true", check=False, timeout=20)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise FleetError(f"{self.name}: no SSH: {r.stderr}")
            time.sleep(0.2)
        return state

    def reboot(self, timeout: float = BOOT_TIMEOUT) -> None:
        """`systemctl reboot` inside the host; return once it runs again (its files kept)."""
        boots = self.boots
        self.run("systemctl reboot", check=False, timeout=30)
        deadline = time.monotonic() + timeout
        while self.boots == boots:  # the watcher boots it again when nspawn exits 133
            if time.monotonic() > deadline:
                raise FleetError(f"{self.name} did not come back from its reboot")
            time.sleep(0.05)
        self.wait_running(max(1.0, deadline - time.monotonic()))

    # -- using a host -----------------------------------------------------------------------
    def ssh_argv(self) -> List[str]:
        return ["ssh", "-F", str(self.fleet.ssh_config), self.name]

    def run(self, command: Union[str, Sequence[str]], check: bool = True, timeout: float = 120,
            input: Optional[str] = None) -> subprocess.CompletedProcess:
        """Run a command as root on the host over SSH (a string goes to the remote shell; a
        list is quoted for it). Returns the CompletedProcess with text stdout/stderr."""
        if not isinstance(command, str):
            command = shlex.join(command)
        r = subprocess.run(self.ssh_argv() + ["--", command], capture_output=True, text=True,
                           timeout=timeout, input=input,
                           stdin=None if input is not None else subprocess.DEVNULL)
        if check and r.returncode != 0:
            raise FleetError(f"{self.name}: `{command}` exited {r.returncode}\n"
                             f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def enter(self, argv: Sequence[str], timeout: float = 60) -> subprocess.CompletedProcess:
        """Run argv inside the host's namespaces without SSH (for when sshd is not up)."""
        return subprocess.run(["nsenter", "-t", str(self.leader), "-m", "-u", "-i", "-n", "-p",
                               "-C", "-r", "-w", *argv], capture_output=True, text=True,
                              timeout=timeout, env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})

    def path(self, host_path: str) -> Path:
        """This machine's path of a path inside the running host (through its PID 1's root)."""
        return Path(f"/proc/{self.leader}/root") / str(host_path).lstrip("/")

    def copy_in(self, src: Union[str, Path], dest: str, mode: Optional[int] = None) -> Path:
        """Copy a file or a folder (with its modes) to `dest` inside the host, owned by root."""
        target = self.path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        if Path(src).is_dir():
            shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
        else:
            shutil.copy2(src, target)
        if mode is not None:
            target.chmod(mode)
        return target

    def write(self, dest: str, data: Union[str, bytes], mode: int = 0o644) -> Path:
        target = self.path(dest)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode() if isinstance(data, str) else data)
        target.chmod(mode)
        return target

    def machine_pid(self, host_pid: int) -> int:
        """This machine's PID of a process the host knows as host_pid (NSpid's last field)."""
        ns = _ns_inode(self.leader, "pid")
        for pid in _pids():
            nspid = _nspid(pid)
            if nspid and nspid[-1] == int(host_pid) and len(nspid) > 1 \
                    and _ns_inode(pid, "pid") == ns:
                return pid
        raise FleetError(f"{self.name}: no process {host_pid} in the host")

    def install_fipsboot(self, wheelhouse: Path, venv: str = "/opt/fipsboot") -> str:
        """fipsboot as an operator installs it: its wheel into a venv on the host (from a
        wheelhouse: the host has no network). Returns the venv's fipsboot."""
        self.copy_in(wheelhouse, "/root/wheels")
        self.run(f"python3 -m venv {shlex.quote(venv)} && {shlex.quote(venv)}/bin/pip install -q "
                 "--no-index --find-links /root/wheels fipsboot", timeout=600)
        return f"{venv}/bin/fipsboot"

    def unit_pid(self, unit: str) -> int:
        """This machine's PID of a unit's main process (0 when it has none)."""
        out = self.run(["systemctl", "show", "-P", "MainPID", unit]).stdout.strip()
        return self.machine_pid(int(out)) if out and out != "0" else 0

    # -- tearing down -----------------------------------------------------------------------
    def close_ssh(self) -> None:
        sock = self.fleet.control_path(self.name)
        if sock.exists():
            subprocess.run(self.ssh_argv()[:3] + ["-O", "exit", self.name],
                           capture_output=True, timeout=10)
            deadline = time.monotonic() + 5
            while sock.exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def _cgroup_pids(self) -> List[int]:
        return sorted(_cgroup_pids(*(cg for cg in self.cgroups if cg.exists())))

    def _netns_pids(self) -> List[int]:
        try:
            inode = f"net:[{os.stat(self.netns).st_ino}]"
        except OSError:
            return []
        return [p for p in _pids() if _ns_inode(p, "net") == inode]

    def destroy(self) -> List[str]:
        """Stop the host and remove every trace; return what could not be removed."""
        with self._lock:  # a reboot under way finishes first; none starts after this
            self.stopping = True
        self.close_ssh()
        if self.process is not None and self.process.poll() is None:
            # nspawn turns SIGTERM into systemd's halt signal: a clean shutdown first.
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        def stragglers() -> set:
            pids = set(self._cgroup_pids()) | set(self._netns_pids())
            if self.process is not None and self.process.poll() is None:
                pids.add(self.process.pid)
            return pids

        _kill_until_gone(stragglers)
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for cg in self.cgroups:
            if cg.exists():
                _remove_cgroup(cg)
        if self.netns.exists():
            subprocess.run(["umount", str(self.netns)], capture_output=True)
        if not _mounts_under(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
        return self.leftovers()

    def leftovers(self) -> List[str]:
        left = []
        if self.process is not None and self.process.poll() is None:
            left.append(f"{self.name}: systemd-nspawn {self.process.pid} still runs")
        pids = self._cgroup_pids() + self._netns_pids()
        if pids:
            left.append(f"{self.name}: processes {sorted(set(pids))}")
        left += [f"{self.name}: cgroup {cg}" for cg in self.cgroups if cg.exists()]
        left += [f"{self.name}: mount {m}" for m in _mounts_under(self.dir)]
        if self.dir.exists():
            left.append(f"{self.name}: folder {self.dir}")
        if self.fleet.control_path(self.name).exists():
            left.append(f"{self.name}: SSH control socket")
        return left


def _mounts_under(folder: Path) -> List[str]:
    prefix = str(folder) + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = line.split()[4].replace("\\040", " ")
            if target.startswith(prefix) or target == str(folder):
                found.append(target)
    return found


class Fleet:
    """N booted hosts; use as a context manager (or call start() and teardown())."""

    def __init__(self, count: int = 3, workdir: Optional[Path] = None,
                 template: Optional[Path] = None):
        self.count = count
        self.template = template or host_root()
        if self.template is None:
            raise FleetError("the host root is not built: run scripts/testhosts.py "
                             "(scripts/setup.sh does)")
        self._own_workdir = workdir is None
        # The tag names the owning process: sweep_stale() finds what a killed session left.
        self.tag = f"fleet{os.getpid()}x{uuid.uuid4().hex[:6]}"
        self.workdir = Path(workdir or tempfile.mkdtemp(prefix=f"fipsboot-{self.tag}-"))
        self.hosts: List[Host] = []
        self.client_key = self.workdir / "id_ed25519"
        self.ssh_config = self.workdir / "ssh_config"
        self.known_hosts = self.workdir / "known_hosts"
        self.inventory = self.workdir / "inventory.ini"

    def control_path(self, name: str) -> Path:
        return self.workdir / f"cm-{name}"

    def __enter__(self) -> Fleet:
        try:
            self.start()
        except BaseException:
            self.teardown()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.teardown()

    def start(self) -> None:
        sweep_stale()
        self.workdir.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "fleet",
                        "-f", str(self.client_key)], check=True)
        self.hosts = [Host(self, i) for i in range(1, self.count + 1)]
        for host in self.hosts:
            host.create(self.template)
        self._write_ssh_files()
        for host in self.hosts:  # boot all, then wait: they come up side by side
            host.boot()
        for host in self.hosts:
            host.wait_running()

    def _write_ssh_files(self) -> None:
        blocks, known = [], []
        for h in self.hosts:
            known.append(f"{h.name} {' '.join(h.host_key)}\n")
            blocks.append(
                f"Host {h.name}\n"
                f"  HostName {h.name}\n"
                "  User root\n"
                f"  IdentityFile {self.client_key}\n"
                "  IdentitiesOnly yes\n"
                "  BatchMode yes\n"
                "  StrictHostKeyChecking yes\n"
                f"  UserKnownHostsFile {self.known_hosts}\n"
                f"  ProxyCommand nsenter --net={h.netns} nc 127.0.0.1 22\n"
                "  ControlMaster auto\n"
                f"  ControlPath {self.control_path(h.name)}\n"
                f"  ControlPersist {SSH_PERSIST_SECONDS}\n"
                "  LogLevel ERROR\n")
        self.known_hosts.write_text("".join(known))
        self.ssh_config.write_text("\n".join(blocks))
        args = f"-F {self.ssh_config}"
        self.inventory.write_text(
            "[fleet]\n" + "".join(f"{h.name}\n" for h in self.hosts)
            + "\n[fleet:vars]\nansible_user=root\nansible_python_interpreter=/usr/bin/python3\n"
            f"ansible_ssh_common_args='{args}'\n")

    def teardown(self) -> None:
        """Destroy every host; raise FleetLeak if anything of the fleet is still there."""
        left = []
        for host in self.hosts:  # ask every host to shut down first: they halt side by side
            with host._lock:
                host.stopping = True
            host.close_ssh()
            if host.process is not None and host.process.poll() is None:
                host.process.terminate()
        for host in self.hosts:
            try:
                left += host.destroy()
            except Exception as e:  # keep tearing the others down
                left.append(f"{host.name}: teardown failed: {e!r}")
        # An SSH master of someone else's (Ansible's) goes once its ProxyCommand has: wait.
        deadline = time.monotonic() + 5
        while self._pids_using_workdir() and time.monotonic() < deadline:
            time.sleep(0.1)
        left += [f"process {p} uses the fleet's folder" for p in self._pids_using_workdir()]
        if self._own_workdir and not left:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if left:
            raise FleetLeak("the fleet left things behind:\n  " + "\n  ".join(left))

    def _pids_using_workdir(self) -> List[int]:
        """ssh masters, ProxyCommands or anything else still naming the fleet's folder."""
        me = os.getpid()
        found = []
        needle = str(self.workdir).encode()
        for pid in _pids():
            if pid == me:
                continue
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if needle in f.read():
                        found.append(pid)
            except OSError:
                pass
        return found


def build_wheelhouse(dest: Path) -> Path:
    """fipsboot's wheel built from this checkout, beside the wheels of what it depends on."""
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--wheel-dir", str(dest),
                    str(ROOT)], check=True, capture_output=True, timeout=900)
    if not list(dest.glob("fipsboot-*.whl")):
        raise FleetError(f"no fipsboot wheel in {dest}")
    return dest


STALE_TAG = re.compile(r"fleet(\d+)x[0-9a-f]{6}")


def _stale(name: str) -> bool:
    """Whether a name carries the tag of a fleet whose owning process is gone."""
    m = STALE_TAG.search(name)
    return bool(m) and not os.path.exists(f"/proc/{m.group(1)}")


def _cgroup_pids(*cgroups: Path) -> Set[int]:
    """The processes in these cgroups and the cgroups below them."""
    pids: Set[int] = set()
    for cg in cgroups:
        for procs in cg.rglob("cgroup.procs"):
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except OSError:
                pass
    return pids


def _kill_until_gone(find: Callable[[], Set[int]]) -> None:
    """SIGKILL what `find` returns until it returns nothing (5 s at the most)."""
    for _ in range(50):
        pids = find()
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def _remove_cgroup(cg: Path) -> None:
    """rmdir a cgroup and those below it, deepest first (what still holds a process stays)."""
    for sub in sorted((p for p in cg.rglob("*") if p.is_dir()),
                      key=lambda p: len(p.parts), reverse=True) + [cg]:
        try:
            sub.rmdir()
        except OSError:
            pass


def sweep_stale() -> List[str]:
    """Remove what fleets of killed sessions (kill -9: no teardown ran) left: their hosts'
    processes, cgroups and namespaces. Returns what was removed."""
    removed = []
    for hierarchy in CGROUP_HIERARCHIES:
        root = Path(hierarchy)
        for cg in sorted(root.glob("fleet*-h*")) if root.is_dir() else []:
            if not _stale(cg.name):
                continue
            _kill_until_gone(functools.partial(_cgroup_pids, cg))
            _remove_cgroup(cg)
            removed.append(str(cg))
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4].replace("\\040", " ") for line in f]
    for target in targets:
        if target.endswith("/netns") and "/fipsboot-fleet" in target and _stale(target):
            inode = f"net:[{os.stat(target).st_ino}]"
            for pid in _pids():
                if _ns_inode(pid, "net") == inode:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
            subprocess.run(["umount", target], capture_output=True)
            removed.append(target)
            workdir = Path(target).parent.parent
            if not _mounts_under(workdir):
                shutil.rmtree(workdir, ignore_errors=True)
    return removed
