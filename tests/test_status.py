"""`fipsboot status` against real servers: the test bed's `openssl s_server` and Debian's
`redis-server` with TLS, started through `fipsboot run`, directly with the account's
environment, without it, before a reset; run records with a reused PID; an unprivileged
account looking at root's processes."""
from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from helpers import _missing, build, fipsboot, lay_out
from runhelpers import (
    account_switch,
    caller_env,
    free_port,
    installed,
    journal_folder,
    run_wrapped,
    s_server,
    serving,
    wrapper_argv,
)

from fipsboot import runrecords

TIMEOUT = 30
VARIABLES = ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")


def status(profile: Path, *options: str, env: Optional[Dict[str, str]] = None,
           wrap=None) -> tuple:
    """(exit code, parsed --json output) of `fipsboot status`."""
    argv = [sys.executable, "-m", "fipsboot", "status", "--profile", str(profile), "--json",
            *options]
    r = subprocess.run(wrap(argv) if wrap else argv, capture_output=True, text=True,
                       env=env or dict(os.environ), timeout=120, cwd="/")
    try:
        out = json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"status did not print JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    assert out.get("exit_code", r.returncode) == r.returncode
    return r.returncode, out


def status_text(profile: Path, *options: str) -> subprocess.CompletedProcess:
    return fipsboot("status", "--profile", str(profile), *options)


def by_pid(out: dict) -> Dict[int, dict]:
    return {p["pid"]: p for p in out["processes"]}


def without(env: Dict[str, str], keys=VARIABLES) -> Dict[str, str]:
    return {k: v for k, v in env.items() if k not in keys}


def launch_env(profile: Path, env: Dict[str, str]) -> Dict[str, str]:
    """What the wrapper would give the server (from `run --dry-run --json`): the env file's
    variables, as a start script that sources it would have them."""
    dry = json.loads(run_wrapped(profile, "x", env=env, options=("--dry-run", "--json")).stdout)
    return {**env, **{k: v for k, v in dry["environment"].items() if v is not None}}


@pytest.fixture(scope="module")
def cert_and_key(tmp_path_factory):
    """A self-signed RSA certificate for 127.0.0.1, made by the system openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the system openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, env=without(dict(os.environ)), timeout=TIMEOUT)
    return cert, key


# --- Debian's redis-server with TLS -----------------------------------------------------

@pytest.fixture
def redis(tmp_path) -> Path:
    """Debian's redis-server under a name of this test's own (a symlink): process-names then
    matches this test's server and no other Redis on the machine."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("Debian's redis-server (scripts/setup.sh installs it)")
    link = tmp_path / f"rds{os.getpid() % 100000}"
    link.symlink_to(binary)
    return link


def redis_argv(redis: Path, port: int, cert: Path, key: Path, workdir: Path) -> List[str]:
    workdir.mkdir(exist_ok=True)
    return [str(redis), "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
            "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--save", "",
            "--appendonly", "no", "--dir", str(workdir)]


def redis_ping(port: int, cert: Path) -> str:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cert))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"PING\r\n")
            return tls.recv(64).decode()


@contextmanager
def redis_serving(argv: List[str], env: Dict[str, str], port: int, cert: Path,
                  logs: Path) -> Iterator[subprocess.Popen]:
    logs.mkdir(parents=True, exist_ok=True)
    with open(logs / "out", "wb") as o:
        proc = subprocess.Popen(argv, stdout=o, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"redis exited with {proc.returncode}:\n{(logs / 'out').read_text()}")
            try:
                assert redis_ping(port, cert).startswith("+PONG")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"redis not answering:\n{(logs / 'out').read_text()}")
                time.sleep(0.05)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def assert_proven(proc: dict, inst, module_name: str = "fips.so") -> None:
    assert proc["ok"], proc["problems"]
    assert proc["fips_module"]["state"] == "installation"
    assert [os.path.basename(p) for p in proc["fips_module"]["paths"]] == [module_name]
    assert proc["restart_needed"] is False


# --- servers launched through `fipsboot run` --------------------------------------------

def test_s_server_through_run_is_proven(installation, cert_and_key, tmp_path):
    inst = installation
    cert, key = cert_and_key
    profile = installed(inst)
    port = free_port()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), caller_env(),
                 tmp_path / "wrapped") as server:
        code, out = status(profile)
        assert code == 0, out
        proc = by_pid(out)[server.pid]
        assert_proven(proc, inst)
        assert proc["fips_module"]["paths"] == [str(inst.module)]
        assert str(inst.lib64 / "libcrypto.so.3") in proc["libraries"]
        assert "run-record" in proc["found_by"] and "install-dir" in proc["found_by"]
        assert proc["environment"]["OPENSSL_MODULES"] == str(inst.module.parent)
        assert proc["cmdline"][1:3] == ["s_server", "-accept"]
        assert proc["record"]["mode"] == "fips" and proc["record"]["module_mac"]
        assert out["mode"] == "fips" and "FIPS mode" in out["summary"]
        text = status_text(profile)
        assert text.returncode == 0
        assert f"PID {server.pid} openssl" in text.stdout and "fips provider: installation" in text.stdout
        # The record: in the state folder, fixed modes, named by PID and start time.
        records = list((journal_folder(inst) / "runs").glob("*.json"))
        assert [r.name.split("-")[0] for r in records] == [str(server.pid)]
        assert (records[0].stat().st_mode & 0o777, records[0].parent.stat().st_mode & 0o777) == \
            (0o644, 0o755)
    # The server has gone: its record is pruned, and no server is running.
    code, out = status(profile)
    assert (code, out["processes"]) == (0, [])
    assert "no running server found" in out["summary"]
    assert any("has exited; pruned" in n for n in out["notes"])
    assert list((journal_folder(inst) / "runs").glob("*.json")) == []
    code, out = status(profile, "--require-running")
    assert code == 1 and "no running server found" in out["summary"]


def test_redis_tls_through_run_is_proven(installation30, cert_and_key, redis, tmp_path):
    inst = installation30
    cert, key = cert_and_key
    profile = inst.write_profile(f"process-names = [{json.dumps(redis.name)}]")
    fipsboot("install", "--profile", str(profile), check=0)
    port = free_port()
    argv = wrapper_argv(profile, *redis_argv(redis, port, cert, key, tmp_path / "data"))
    with redis_serving(argv, caller_env(), port, cert, tmp_path / "logs") as server:
        code, out = status(profile)
        assert code == 0, out
        proc = by_pid(out)[server.pid]
        assert proc["name"] == redis.name
        assert sorted(proc["found_by"]) == ["process-names", "run-record"]
        assert_proven(proc, inst)
        assert sorted(proc["libraries"]) == [str(inst.lib64 / "libcrypto.so.3"),
                                             str(inst.lib64 / "libssl.so.3")]


def test_redis_started_directly_with_the_env_files_variables(installation30, cert_and_key, redis,
                                                            tmp_path):
    """No wrapper, no record: found by process-names, proven by its maps."""
    inst = installation30
    cert, key = cert_and_key
    profile = inst.write_profile(f"process-names = [{json.dumps(redis.name)}]")
    fipsboot("install", "--profile", str(profile), check=0)
    env = launch_env(profile, without(caller_env()))
    port = free_port()
    with redis_serving(redis_argv(redis, port, cert, key, tmp_path / "data"), env, port, cert,
                       tmp_path / "logs") as server:
        code, out = status(profile)
        assert code == 0, out
        proc = by_pid(out)[server.pid]
        assert proc["found_by"] == ["process-names"] and "record" not in proc
        assert_proven(proc, inst)


# --- servers in the wrong mode ----------------------------------------------------------

def test_server_started_without_the_accounts_environment(installation30, cert_and_key, redis,
                                                         tmp_path):
    """A start script that doesn't source the env file: no OPENSSL_CONF, the default provider.
    status names the process and why; a Redis that crashes at start leaves nothing running."""
    inst = installation30
    cert, key = cert_and_key
    profile = inst.write_profile(f"process-names = [{json.dumps(redis.name)}]")
    fipsboot("install", "--profile", str(profile), check=0)
    script = tmp_path / "start-ors.sh"
    script.write_text('#!/bin/sh\nexec "$@"\n')  # forgets `. /etc/default/gctilca`
    script.chmod(0o755)
    port = free_port()
    bare = without(caller_env())
    with serving([str(script), *s_server(inst, cert, key, port)],
                 dict(bare, LD_LIBRARY_PATH=str(inst.lib64)), tmp_path / "s") as server:
        code, out = status(profile)
        assert code == 1, out
        proc = by_pid(out)[server.pid]
        assert proc["found_by"] == ["install-dir"]
        assert proc["fips_module"] == {"state": "none", "paths": []}
        reasons = " ".join(p["reason"] for p in proc["problems"])
        assert "no FIPS provider mapped" in reasons and "without OPENSSL_CONF" in reasons
        assert f"process {server.pid}" in out["summary"]
        text = status_text(profile)
        assert text.returncode == 1 and f"PID {server.pid}" in text.stdout
        assert "started without OPENSSL_CONF" in text.stdout and "fix: restart gctilca.service" in \
            text.stdout

    # With another OPENSSL_MODULES (a folder without the provider) Debian's Redis 7.0 crashes
    # in SSL_CTX_set_options at start: nothing left running, which status says.
    env = launch_env(profile, bare)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env["OPENSSL_MODULES"] = str(empty)
    r = subprocess.run(redis_argv(redis, free_port(), cert, key, tmp_path / "data"), env=env,
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode != 0
    code, out = status(profile)
    assert (code, out["processes"]) == (0, []) and "no running server found" in out["summary"]
    code, out = status(profile, "--require-running")
    assert code == 1


def test_server_started_elsewhere_with_another_modules_folder(installation30, cert_and_key,
                                                              testbed, tmp_path):
    """A copy of a FIPS provider outside the installation is not this installation's."""
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(inst.module, elsewhere / "fips.so")
    env = launch_env(profile, without(caller_env()))
    env["OPENSSL_MODULES"] = str(elsewhere)
    port = free_port()
    with serving(s_server(inst, cert, key, port), env, tmp_path / "s") as server:
        code, out = status(profile)
        assert code == 1, out
        proc = by_pid(out)[server.pid]
        assert proc["fips_module"] == {"state": "other", "paths": [str(elsewhere / "fips.so")]}
        assert f"OPENSSL_MODULES={elsewhere}" in proc["problems"][0]["reason"]


def test_server_started_before_reset_needs_a_restart(installation30, cert_and_key, tmp_path):
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    port, port2 = free_port(), free_port()
    env = caller_env()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "a") as wrapped, \
            serving(s_server(inst, cert, key, port2), launch_env(profile, without(env)),
                    tmp_path / "b") as direct:
        assert status(profile)[0] == 0
        time.sleep(1.1)  # the journal's times have whole seconds
        fipsboot("reset", "--profile", str(profile), check=0)
        code, out = status(profile)
        assert code == 1, out
        assert out["mode"] == "non-fips" and out["last_change"]["command"] == "reset"
        for pid in (wrapped.pid, direct.pid):
            proc = by_pid(out)[pid]
            assert proc["restart_needed"] is True
            assert any("restart needed" in p["reason"] for p in proc["problems"])
            assert any("other mode" in p["reason"] for p in proc["problems"])
        text = status_text(profile)
        assert text.returncode == 1 and "restart needed" in text.stdout
        wrapped.send_signal(signal.SIGTERM)
        direct.send_signal(signal.SIGTERM)
        wrapped.wait(TIMEOUT), direct.wait(TIMEOUT)
    # Restarted through the wrapper: non-FIPS, consistently.
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "c") as server:
        code, out = status(profile)
        assert code == 2, out
        proc = by_pid(out)[server.pid]
        assert proc["ok"] and proc["fips_module"]["state"] == "none"
        assert proc["restart_needed"] is False and proc["record"]["mode"] == "non-fips"
        assert "non-FIPS mode" in out["summary"]
    assert status(profile)[0] == 2


# --- run records ------------------------------------------------------------------------

def write_record(folder: Path, pid: int, ticks: Optional[int], **extra) -> Path:
    runs = folder / "runs"
    runs.mkdir(mode=0o755, exist_ok=True)
    record = {"format": 1, "pid": pid, "start_ticks": ticks, "start_time": None,
              "argv": ["/opt/server"], "mode": "fips", "module_mac": None, "checkpoint": 1,
              "time": time.time(), "uid": 0, "launch": "exec", **extra}
    path = runs / f"{pid}-{ticks}.json"
    path.write_text(json.dumps(record))
    path.chmod(0o644)
    return path


def test_a_record_whose_pid_was_reused_is_not_the_server(installation30):
    inst = installation30
    profile = installed(inst)
    folder = journal_folder(inst)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ticks = runrecords.linux_start(sleeper.pid)[0]
        assert ticks is not None
        # The control: a record naming this very process (same start) is taken, and this
        # process maps no FIPS provider, so status fails: the check can fail.
        good = write_record(folder, sleeper.pid, ticks)
        code, out = status(profile)
        assert code == 1 and sleeper.pid in by_pid(out)
        good.unlink()
        # The PID is the same, the start time another: an unrelated process that got the PID.
        stale = write_record(folder, sleeper.pid, ticks - 100)
        code, out = status(profile)
        assert code == 0, out
        assert sleeper.pid not in by_pid(out)
        assert any("belongs to another process" in n and "pruned" in n for n in out["notes"])
        assert not stale.exists()
        assert sleeper.poll() is None  # only the record went
        # A record with no start (as on Windows) written before this process started: the
        # process can't be the wrapper that wrote it.
        early = write_record(folder, sleeper.pid, None, time=time.time() - 3600)
        code, out = status(profile)
        assert code == 0 and sleeper.pid not in by_pid(out) and not early.exists()
        write_record(folder, sleeper.pid, None)  # written after it started: taken
        assert status(profile)[0] == 1
    finally:
        sleeper.kill()
        sleeper.wait()


def test_records_that_are_not_trusted(installation30):
    """Records another account could have written, or that aren't fipsboot's, are ignored."""
    inst = installation30
    profile = installed(inst)
    folder = journal_folder(inst)
    sleeper = subprocess.Popen(["sleep", "60"])
    try:
        ticks = runrecords.linux_start(sleeper.pid)[0]
        loose = write_record(folder, sleeper.pid, ticks)
        loose.chmod(0o666)
        garbage = folder / "runs" / "1-1.json"
        garbage.write_text("{not json")
        garbage.chmod(0o644)
        code, out = status(profile)
        assert code == 0 and sleeper.pid not in by_pid(out)
        assert sum("not trusted" in n for n in out["notes"]) == 2
        loose.chmod(0o644)
        (folder / "runs").chmod(0o777)
        code, out = status(profile)
        assert code == 0 and sleeper.pid not in by_pid(out)
        assert any("not trusted" in n for n in out["notes"])
        (folder / "runs").chmod(0o755)
        assert status(profile)[0] == 1  # the same record, trusted again: the control
    finally:
        sleeper.kill()
        sleeper.wait()


def test_run_writes_no_record_into_an_unsafe_folder_and_still_starts(installation30):
    inst = installation30
    profile = installed(inst)
    runs = journal_folder(inst) / "runs"
    runs.mkdir(mode=0o755)
    runs.chmod(0o777)
    r = run_wrapped(profile, "sh", "-c", "exit 7")
    assert r.returncode == 7 and r.stderr == ""
    assert list(runs.iterdir()) == []


# --- an unprivileged account ------------------------------------------------------------

@contextmanager
def temporary_account() -> Iterator[pwd.struct_passwd]:
    name = f"fbst{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root: root's server, another account's status")
def test_unprivileged_account_says_what_it_could_not_read(testbed, cert_and_key, state_dir):
    if shutil.which("useradd") is None:
        pytest.skip("useradd is needed")
    work = Path(tempfile.mkdtemp(prefix="fipsboot-status-"))
    try:
        work.chmod(0o755)  # pytest's own tmp folders are root-only
        root = work / "server root"
        root.mkdir()
        inst = lay_out(build(testbed, "linux-3.0"), root, "3.0")
        state = work / "state"
        env = caller_env(FIPSBOOT_STATE_DIR=str(state))
        profile = inst.write_profile()
        fipsboot("install", "--profile", str(profile), env=env, check=0)
        cert, key = work / "cert.pem", work / "key.pem"
        shutil.copy(cert_and_key[0], cert), shutil.copy(cert_and_key[1], key)
        port = free_port()
        with temporary_account() as account, \
                serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                        work / "logs") as server:
            as_account = account_switch(account.pw_uid, account.pw_gid)
            code, out = status(profile, env=env, wrap=as_account)
            assert code == 1, out
            proc = by_pid(out)[server.pid]
            assert "run-record" in proc["found_by"]
            assert proc["fips_module"]["state"] == "unknown" and not proc["ok"]
            assert proc["environment"]["readable"] is False
            assert "not readable" in proc["environment"]["reason"]
            assert any("could not read its memory maps" in p["reason"] for p in proc["problems"])
            assert "FIPS mode:" not in out["summary"]
            # Root, on the same process: proven.
            code, out = status(profile, env=env)
            assert code == 0 and by_pid(out)[server.pid]["ok"]
    finally:
        shutil.rmtree(work, ignore_errors=True)


# --- usage ------------------------------------------------------------------------------

def test_never_installed_and_bad_process_names_are_usage_errors(installation30):
    inst = installation30
    profile = inst.write_profile()
    code, out = status(profile)
    assert code == 2 and "never installed" in out["error"] and out["fix"]
    bad = inst.write_profile('process-names = ["/usr/bin/redis-server"]', name="bad.toml")
    r = status_text(bad)
    assert r.returncode == 2 and "process-names" in r.stderr


def test_nonfips_with_no_server_is_exit_2(installation30):
    inst = installation30
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    code, out = status(profile)
    assert code == 2 and out["processes"] == [] and "non-FIPS mode" in out["summary"]
    assert status(profile, "--require-running")[0] == 1
    # The configuration's fast checks decide too: a hand-edited target is inconsistent.
    inst.envfile.write_text(f'OPENSSL_CONF="{inst.config_dir / "openssl.cnf"}"\n')
    assert status(profile)[0] == 1


def test_the_record_adds_no_import_to_runs_warm_path(installation30):
    """The record is written with what the wrapper has already imported: no psutil, no
    tempfile, nothing status needs."""
    profile = installed(installation30)
    run_wrapped(profile, "true")  # the verdict is cached now
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "fipsboot", "run", "--profile",
                        str(profile), "--", "true"], capture_output=True, text=True,
                       env=caller_env(), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "fipsboot.runrecords" in imported  # the record was written on this path
    assert not {"psutil", "tempfile", "fipsboot.status", "fipsboot.procinspect", "click"} & imported
    assert len(list((journal_folder(installation30) / "runs").glob("*.json"))) == 2
