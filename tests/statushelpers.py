"""What the `fipsboot status` tests share (test_status, test_status_evidence, test_status_wine):
run status and read its JSON, the environment the wrapper would give a server, Debian's
redis-server with TLS, run records written by hand, a temporary account. Their fixtures
(cert_and_key, redis) are in conftest.py; starting servers and switching accounts is in
runhelpers.py.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Dict, Iterator, List, Optional, Tuple

import pytest
from helpers import fipsboot
from loopback import free_port
from runhelpers import (
    caller_env,
    installed,
    installed_where_others_can_read,
    run_wrapped,
    s_server,
    serving,
    started,
    without,
    wrapper_argv,
)

TIMEOUT = 30


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


def judged(profile: Path, pid: int, exit_code: int) -> Tuple[dict, dict]:
    """`fipsboot status --json`, which must exit with `exit_code`: (its output, what it says
    of process `pid`)."""
    code, out = status(profile)
    assert code == exit_code, out
    return out, by_pid(out)[pid]


def status_text(profile: Path, *options: str) -> subprocess.CompletedProcess:
    return fipsboot("status", "--profile", str(profile), *options)


def by_pid(out: dict) -> Dict[int, dict]:
    return {p["pid"]: p for p in out["processes"]}


def launch_env(profile: Path, env: Dict[str, str]) -> Dict[str, str]:
    """What the wrapper would give the server (from `run --dry-run --json`): the env file's
    variables, as a start script that sources it would have them."""
    dry = json.loads(run_wrapped(profile, "x", env=env, options=("--dry-run", "--json")).stdout)
    return {**env, **{k: v for k, v in dry["environment"].items() if v is not None}}


def assert_proven(proc: dict, inst, module_name: str = "fips.so") -> None:
    assert proc["ok"], proc["problems"]
    assert proc["fips_module"]["state"] == "installation"
    assert [os.path.basename(p) for p in proc["fips_module"]["paths"]] == [module_name]
    assert proc["restart_needed"] is False


def installed_finding(inst, process_name: str) -> Path:
    """Install with a profile whose process-names finds the server by `process_name`."""
    profile = inst.write_profile(f"process-names = [{json.dumps(process_name)}]")
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


@contextmanager
def served_with_modules_from_elsewhere(inst, cert_and_key, folder: Path, place
                                       ) -> Iterator[Tuple[Path, subprocess.Popen, Path]]:
    """Install; `place(the module, folder/elsewhere/fips.so)` (a copy, a hard link); start
    s_server with what the env file gives but OPENSSL_MODULES=folder/elsewhere (no wrapper):
    (the profile, the server, that folder)."""
    cert, key = cert_and_key
    profile = installed(inst)
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    place(inst.module, elsewhere / "fips.so")
    env = dict(launch_env(profile, without(caller_env())), OPENSSL_MODULES=str(elsewhere))
    with serving(s_server(inst, cert, key, free_port()), env, folder / "s") as server:
        yield profile, server, elsewhere


# --- Debian's redis-server with TLS -----------------------------------------------------

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


def redis_serving(argv: List[str], env: Dict[str, str], port: int, cert: Path,
                  logs: Path):
    """Start Redis (with Popen), wait until it answers PING over TLS, kill it at the end."""
    def answers(_stdout: Path) -> bool:
        try:
            answer = redis_ping(port, cert)
        except OSError:
            return False
        assert answer.startswith("+PONG"), answer
        return True

    return started(argv, env, logs, answers, "redis")


@contextmanager
def redis_through_run(profile: Path, redis: Path, cert_and_key, folder: Path
                      ) -> Iterator[subprocess.Popen]:
    """Redis with TLS (conftest's `redis` and `cert_and_key`) started through `fipsboot run`,
    answering PING; its data and logs in `folder`."""
    cert, key = cert_and_key
    port = free_port()
    argv = wrapper_argv(profile, *redis_argv(redis, port, cert, key, folder / "data"))
    with redis_serving(argv, caller_env(), port, cert, folder / "logs") as server:
        yield server


# --- run records and accounts -----------------------------------------------------------

def write_record(folder: Path, pid: int, ticks: Optional[int], **extra) -> Path:
    """A run record as the wrapper writes it, in the installation's journal folder."""
    runs = folder / "runs"
    runs.mkdir(mode=0o755, exist_ok=True)
    record = {"format": 1, "pid": pid, "start_ticks": ticks, "start_time": None,
              "argv": ["/opt/server"], "mode": "fips", "module_mac": None, "checkpoint": 1,
              "time": time.time(), "uid": 0, "launch": "exec", **extra}
    path = runs / f"{pid}-{ticks}.json"
    path.write_text(json.dumps(record))
    path.chmod(0o644)
    return path


@contextmanager
def temporary_account() -> Iterator[pwd.struct_passwd]:
    """An account without a home or a shell, removed afterwards."""
    name = f"fbst{os.getpid() % 100000}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
                   check=True, capture_output=True)
    try:
        yield pwd.getpwnam(name)
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


@contextmanager
def root_server_an_account_looks_at(testbed, cert_and_key, prefix: str) -> Iterator[SimpleNamespace]:
    """Root's s_server, started through `fipsboot run` on an installation every account can
    enter, and a temporary account to look at it with status. Yields work (the folder, removed
    afterwards), inst, profile, env (naming the state folder work/state), server, account."""
    with installed_where_others_can_read(testbed, prefix) as (work, inst, profile, env):
        cert, key = work / "cert.pem", work / "key.pem"
        shutil.copy(cert_and_key[0], cert), shutil.copy(cert_and_key[1], key)
        port = free_port()
        with temporary_account() as account, \
                serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                        work / "logs") as server:
            yield SimpleNamespace(work=work, inst=inst, profile=profile, env=env, server=server,
                                  account=account)
