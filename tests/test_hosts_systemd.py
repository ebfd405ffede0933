"""fipsboot under a real systemd, on the test hosts (tests/fleet.py).

Each host gets fipsboot the way an operator installs it (a wheel built from this checkout,
into a venv on the host), an ORS-like installation of the test bed's OpenSSL 3.0 whose paths
hold spaces, quotes, `$` and `%`, and a unit `gctilca.service` whose ExecStart is
`fipsboot run --profile ... -- <openssl s_server>`. What the tests read comes from outside the
server: /proc/<pid>/environ and /proc/<pid>/maps of its process on this machine, systemd's own
view (`systemctl show`, `journalctl`), and a TLS handshake.
h1 walks install -> reset -> rollback, h2 fails closed, h3 has its daemon-reload fail once.
"""
from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict

import pytest
from helpers import build, mapped_files

VENV = "/opt/fipsboot"
FIPSBOOT = f"{VENV}/bin/fipsboot"
PROFILE = "/etc/fipsboot/ors.toml"
# Paths a careless quoting would break, in systemd's unit syntax (specifiers, `$`), its
# EnvironmentFile= syntax (`$`, quotes) and OpenSSL's config syntax.
INSTALL_DIR = """/opt/GCTI/ORS 8.1 "lca" $HOME 100%n"""
CONFIG_DIR = """/opt/GCTI/ORS cfg 'q' ${X} %h"""
SECURITY_PACK = "/opt/GCTI/security pack $1 %%"
ENVFILE = "/etc/default/gctilca"
ENVFILE_BEFORE = "# LCA settings\nGCTI_HOME=/opt/genesys\n"
DROPIN = "/etc/systemd/system/gctilca.service.d/50-fipsboot.conf"
PORT = 4433
FIPS_ENV = {
    "OPENSSL_CONF": f"{CONFIG_DIR}/openssl.cnf",
    "OPENSSL_MODULES": f"{INSTALL_DIR}/fips",
    "LD_LIBRARY_PATH": f"{INSTALL_DIR}/fips:{INSTALL_DIR}/lib64",
}
VARIABLES = tuple(FIPS_ENV)
# The service manager's own environment, set in reset's test: UnsetEnvironment= must win.
MANAGER_ENV = {"OPENSSL_CONF": "/manager/openssl.cnf", "OPENSSL_MODULES": "/manager/modules"}


def unit_quote(word: str) -> str:
    """One ExecStart= word as systemd reads it: quoted, `%` and `$` doubled."""
    escaped = word.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%").replace("$", "$$")
    return f'"{escaped}"'


SERVER = [f"{INSTALL_DIR}/tools/openssl", "s_server", "-accept", f"127.0.0.1:{PORT}",
          "-cert", "/etc/gctilca/cert.pem", "-key", "/etc/gctilca/key.pem", "-www"]
# Readiness: the start job waits until the server accepts, so `systemctl restart` fails when
# the server never comes up (as a refused launch doesn't).
READY = ("/bin/bash -c 'for i in $$(seq 300); do kill -0 $$MAINPID || exit 1; "
         "(exec 3<>/dev/tcp/127.0.0.1/" + str(PORT) + ") 2>/dev/null && exit 0; sleep 0.1; done; "
         "exit 1'")
UNIT = f"""[Unit]
Description=Genesys Local Control Agent (test: starts the server through fipsboot run)

[Service]
EnvironmentFile={ENVFILE}
# What systemd itself hands the service's processes, before fipsboot sees it.
ExecStartPre=/bin/cp /proc/self/environ /run/gctilca.systemd-env
ExecStart={unit_quote(FIPSBOOT)} run --profile {PROFILE} -- {' '.join(unit_quote(w) for w in SERVER)}
ExecStartPost={READY}
"""
# Two witnesses that start no fipsboot: `probe` reads only fipsboot's drop-in (a link to it),
# `control` reads nothing of fipsboot's (it shows what the manager's environment alone gives).
PROBE_UNIT = """[Service]
Type=oneshot
ExecStart=/bin/cp /proc/self/environ /run/gctilca-{name}.env
"""


def profile_text() -> str:
    return (
        "[server]\n"
        f"install-dir = {json.dumps(INSTALL_DIR)}\n"
        f"config-dir = {json.dumps(CONFIG_DIR)}\n"
        f"security-pack-dir = {json.dumps(SECURITY_PACK)}\n"
        "\n[account]\n"
        f'targets = ["systemd:gctilca.service", "envfile:{ENVFILE}"]\n'
    )


# --- setting a host up as an operator would -----------------------------------------------

@pytest.fixture(scope="session")
def hosts(fleet, testbed, wheelhouse):
    """Every host with fipsboot in a venv, the installation, the unit and its witnesses."""
    linux30 = build(testbed, "linux-3.0")

    def set_up(host) -> None:
        assert host.install_fipsboot(wheelhouse, VENV) == FIPSBOOT
        host.copy_in(linux30 / "fips" / "fips.so", f"{INSTALL_DIR}/fips/fips.so")
        for lib in ("libcrypto.so.3", "libssl.so.3"):
            host.copy_in(linux30 / "lib64" / lib, f"{INSTALL_DIR}/lib64/{lib}")
            host.copy_in(linux30 / "lib64" / lib, f"{SECURITY_PACK}/{lib}")
        host.copy_in(linux30 / "bin" / "openssl", f"{INSTALL_DIR}/tools/openssl")
        host.path(CONFIG_DIR).mkdir(parents=True)
        host.write(PROFILE, profile_text())
        host.write(ENVFILE, ENVFILE_BEFORE)
        host.write("/etc/systemd/system/gctilca.service", UNIT)
        for name in ("probe", "control"):
            host.write(f"/etc/systemd/system/gctilca-{name}.service", PROBE_UNIT.format(name=name))
        host.run("mkdir -p /etc/systemd/system/gctilca-probe.service.d && "
                 f"ln -s {DROPIN} /etc/systemd/system/gctilca-probe.service.d/50-fipsboot.conf && "
                 "mkdir -p /etc/gctilca && openssl req -x509 -newkey ec -pkeyopt "
                 "ec_paramgen_curve:P-256 -nodes -subj /CN=gctilca -days 2 "
                 "-keyout /etc/gctilca/key.pem -out /etc/gctilca/cert.pem 2>/dev/null && "
                 "systemctl daemon-reload")

    with ThreadPoolExecutor(len(fleet.hosts)) as pool:  # pip on each host, side by side
        list(pool.map(set_up, fleet.hosts))
    return fleet.hosts


def fipsboot(host, *args: str, code: int = 0) -> dict:
    r = host.run([FIPSBOOT, *args, "--profile", PROFILE, "--json"], check=False)
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


# --- reading a service from outside ------------------------------------------------------

def show(host, unit: str, *props: str) -> Dict[str, str]:
    """`systemctl show` of some properties, by name (systemd prints them in its own order)."""
    out = host.run(["systemctl", "show", unit, "-p", ",".join(props)]).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def environ_of(pid: int) -> Dict[str, str]:
    data = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(e.split("=", 1) for e in data.decode().split("\0") if "=" in e)


def env_file(host, path: str) -> Dict[str, str]:
    data = host.path(path).read_bytes()
    return dict(e.split("=", 1) for e in data.decode().split("\0") if "=" in e)


def listening_ports(table: str) -> set:
    """TCP ports in LISTEN state (0A) in a /proc/.../net/tcp table (its network namespace)."""
    rows = [line.split() for line in Path(table).read_text().splitlines()[1:]]
    return {int(r[1].rsplit(":", 1)[1], 16) for r in rows if r[3] == "0A"}


def server_pid(host) -> int:
    """The server's PID on this machine; it is the unit's main process (fipsboot exec'd)."""
    pid = host.unit_pid("gctilca.service")
    assert pid, host.run("systemctl status gctilca --no-pager", check=False).stdout
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    assert cmdline == SERVER
    return pid


def handshake(host) -> str:
    r = host.run(f"openssl s_client -connect 127.0.0.1:{PORT} -CAfile /etc/gctilca/cert.pem "
                 "-verify_return_error -brief </dev/null 2>&1", check=False)
    assert r.returncode == 0 and "Verification: OK" in r.stdout, r.stdout
    return r.stdout


def restart(host) -> None:
    r = host.run("systemctl restart gctilca", check=False, timeout=60)
    assert r.returncode == 0, host.run("journalctl -u gctilca -n 30 --no-pager", check=False).stdout


def fips_state(host) -> dict:
    """What can be seen of a running FIPS server from outside."""
    pid = server_pid(host)
    return {"environ": {k: environ_of(pid).get(k) for k in VARIABLES},
            "fips_mapped": f"{INSTALL_DIR}/fips/fips.so" in mapped_files(pid)}


# --- the life cycle on h1 ----------------------------------------------------------------

@pytest.fixture(scope="module")
def installed(hosts):
    """h1 after `fipsboot install` (nothing else reloads systemd) and a restart."""
    host = hosts[0]
    assert show(host, "gctilca", "DropInPaths") == {"DropInPaths": ""}
    result = fipsboot(host, "install")
    assert "ran `systemctl daemon-reload`" in result["notes"]
    restart(host)
    return host


def test_install_under_real_systemd_gives_the_server_its_fips_environment(installed):
    host = installed
    # fipsboot's own daemon-reload ran for real: systemd has loaded the drop-in it wrote.
    assert show(host, "gctilca", "DropInPaths", "NeedDaemonReload") == {
        "DropInPaths": DROPIN, "NeedDaemonReload": "no"}
    pid = server_pid(host)
    env = environ_of(pid)
    assert {k: env.get(k) for k in VARIABLES} == FIPS_ENV
    assert env["GCTI_HOME"] == "/opt/genesys"  # the env file's other lines reach it too
    assert f"{INSTALL_DIR}/fips/fips.so" in mapped_files(pid)
    assert f"{INSTALL_DIR}/lib64/libcrypto.so.3" in mapped_files(pid)
    assert "TLSv1.3" in handshake(host)
    # It listens inside the host's namespace only: nothing on this machine's own loopback.
    assert PORT not in listening_ports("/proc/self/net/tcp")
    assert PORT in listening_ports(f"/proc/{pid}/net/tcp")


def test_systemd_reads_the_files_fipsboot_wrote_exactly(installed):
    """systemd's own parsing of the drop-in (Environment=: quotes, specifiers) and of the env
    file (EnvironmentFile=: quotes, `$`), seen in processes that start no fipsboot."""
    host = installed
    seen = env_file(host, "/run/gctilca.systemd-env")  # the unit's ExecStartPre: both files
    assert {k: seen.get(k) for k in VARIABLES} == FIPS_ENV
    host.run("systemctl start gctilca-probe gctilca-control")
    probe = env_file(host, "/run/gctilca-probe.env")  # the drop-in alone
    assert {k: probe.get(k) for k in VARIABLES} == FIPS_ENV
    control = env_file(host, "/run/gctilca-control.env")
    assert not set(VARIABLES) & set(control)
    assert host.path(ENVFILE).read_text().startswith(ENVFILE_BEFORE)


def test_status_on_the_host_agrees_with_what_is_seen_from_outside(installed):
    host = installed
    if host.run([FIPSBOOT, "status", "--help"], check=False).returncode != 0:
        pytest.skip("`fipsboot status` (issue 12) is not on this branch yet")
    host_pid = int(show(host, "gctilca", "MainPID")["MainPID"])
    assert f"{INSTALL_DIR}/fips/fips.so" in mapped_files(server_pid(host))  # seen from outside
    r = host.run([FIPSBOOT, "status", "--profile", PROFILE, "--json"], check=False)
    report = json.loads(r.stdout)
    assert report["mode"] == "fips" and r.returncode == report["exit_code"] == 0, r.stdout
    found = {p["pid"]: p for p in report["processes"]}
    assert found[host_pid]["fips_module"]["state"] == "installation"


def test_reset_for_real_then_rollback_byte_for_byte(installed):
    host = installed
    first = fips_state(host)
    files = {p: host.path(p).read_bytes() for p in (ENVFILE, DROPIN)}
    # The service manager's own environment now holds the variables: every unit inherits them
    # unless its drop-in's UnsetEnvironment= takes them out.
    host.run("systemctl set-environment " + " ".join(f"{k}={v}" for k, v in MANAGER_ENV.items()))
    try:
        fipsboot(host, "reset")
        assert show(host, "gctilca", "NeedDaemonReload") == {"NeedDaemonReload": "no"}
        restart(host)
        pid = server_pid(host)
        env = environ_of(pid)
        assert "OPENSSL_CONF" not in env and "OPENSSL_MODULES" not in env
        assert env["LD_LIBRARY_PATH"].split(":")[0] == SECURITY_PACK
        assert not any(Path(p).name == "fips.so" for p in mapped_files(pid))
        handshake(host)
        host.run("systemctl start gctilca-probe gctilca-control")
        probe = env_file(host, "/run/gctilca-probe.env")
        assert "OPENSSL_CONF" not in probe and "OPENSSL_MODULES" not in probe
        # Without the drop-in the manager's values do arrive: the check above could fail.
        control = env_file(host, "/run/gctilca-control.env")
        assert {k: control.get(k) for k in MANAGER_ENV} == MANAGER_ENV
        seen = env_file(host, "/run/gctilca.systemd-env")
        assert "OPENSSL_CONF" not in seen and "OPENSSL_MODULES" not in seen
    finally:
        host.run("systemctl unset-environment " + " ".join(MANAGER_ENV))

    fipsboot(host, "rollback")
    assert {p: host.path(p).read_bytes() for p in files} == files
    assert show(host, "gctilca", "NeedDaemonReload") == {"NeedDaemonReload": "no"}
    restart(host)
    assert fips_state(host) == first == {"environ": FIPS_ENV, "fips_mapped": True}
    handshake(host)


# --- failing closed on h2 ----------------------------------------------------------------

def test_corrupted_module_fails_the_unit_with_78_and_says_why_in_the_journal(hosts):
    host = hosts[1]
    fipsboot(host, "install")
    restart(host)
    server_pid(host)
    module = host.path(f"{INSTALL_DIR}/fips/fips.so")
    good = module.read_bytes()
    corrupted = bytearray(good)
    corrupted[len(good) // 2] ^= 0xFF
    module.write_bytes(bytes(corrupted))
    try:
        since = host.run("date +%s.%N").stdout.strip()
        r = host.run("systemctl restart gctilca", check=False, timeout=60)
        assert r.returncode != 0
        assert show(host, "gctilca", "ActiveState", "Result", "ExecMainStatus") == {
            "ActiveState": "failed", "Result": "exit-code", "ExecMainStatus": "78"}
        journal = host.run(f"journalctl -u gctilca --since @{since} --no-pager -o cat").stdout
        assert "fipsboot: not starting" in journal and "module-mac" in journal, journal
        assert host.unit_pid("gctilca.service") == 0
    finally:
        module.write_bytes(good)
    restart(host)
    assert fips_state(host)["fips_mapped"]


# --- daemon-reload failing once, for real, on h3 -----------------------------------------

def test_daemon_reload_failing_once_exits_5_and_the_next_command_retries_it(hosts):
    host = hosts[2]
    fipsboot(host, "install")
    restart(host)  # a running unit stays loaded: systemd keeps what it read until a reload
    # systemctl reaches the manager through its private socket, else through D-Bus: both are
    # out of reach for one fipsboot command, so its real `systemctl daemon-reload` fails.
    sockets = ["/run/systemd/private", "/run/dbus/system_bus_socket"]
    for sock in sockets:
        r = host.enter(["mount", "--bind", "/dev/null", sock])
        assert r.returncode == 0, r.stderr
    try:
        result = fipsboot(host, "reset", code=5)
        assert "daemon-reload" in result["error"] and result["exit_code"] == 5
    finally:
        for sock in sockets:
            host.enter(["umount", sock])
    # The drop-in is rewritten, and systemd knows it has not read it.
    assert "UnsetEnvironment=" in host.path(DROPIN).read_text()
    assert show(host, "gctilca", "NeedDaemonReload") == {"NeedDaemonReload": "yes"}
    retry = fipsboot(host, "reset")  # nothing left to change: it retries the reload
    assert "ran `systemctl daemon-reload`" in retry["notes"]
    assert show(host, "gctilca", "NeedDaemonReload") == {"NeedDaemonReload": "no"}
    restart(host)
    env = environ_of(server_pid(host))
    assert "OPENSSL_CONF" not in env and env["LD_LIBRARY_PATH"].startswith(SECURITY_PACK + ":")


def test_the_hosts_are_still_healthy(hosts):
    for host in hosts:
        assert host.run("systemctl is-system-running", check=False).stdout.strip() in (
            "running", "degraded")
