"""What the `fipsboot run` tests share: start the wrapper with a server behind it, read back the
environment the server got, find the verdict cache, see whether the FIPS provider loads, start
a real server and switch to another account (damage to the module: modulefaults.py).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest
from helpers import build, fipsboot, lay_out, providers_with_env

from fipsboot import providers
from fipsboot.environ import with_values
from fipsboot.journal import Journal

CACHE_NAME = "verdict-cache.json"
VARIABLES = ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")
TIMEOUT = 30


# --- helpers ----------------------------------------------------------------------------

def caller_env(**changes: Optional[str]) -> Dict[str, str]:
    """This process's environment with `changes` (None: the variable is removed)."""
    return with_values(os.environ, changes)


def wrapper_argv(profile: Path, *server: str, options=()) -> List[str]:
    return [sys.executable, "-m", "fipsboot", "run", "--profile", str(profile), *options,
            "--", *server]


def run_wrapped(profile: Path, *server: str, env: Optional[Dict[str, str]] = None,
                options=(), text: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(wrapper_argv(profile, *server, options=options), capture_output=True,
                          text=text, env=caller_env() if env is None else env, timeout=TIMEOUT)


def installed(inst) -> Path:
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


def journal_folder(inst) -> Path:
    return Journal.for_installation(str(inst.install_dir)).folder


def cache_file(inst) -> Path:
    return journal_folder(inst) / CACHE_NAME


def marker_server(marker: Path) -> List[str]:
    """A server that leaves a file behind if it is ever started."""
    return ["sh", "-c", 'touch "$1"', "sh", str(marker)]


def env_of_server(r: subprocess.CompletedProcess) -> Dict[str, str]:
    """What `env -0`, run as the server, printed: the environment it was given."""
    assert r.returncode == 0, r.stderr
    entries = r.stdout.split(b"\0")[:-1]
    return dict(e.decode().split("=", 1) for e in entries)


def without(env: Dict[str, str], keys=VARIABLES) -> Dict[str, str]:
    return {k: v for k, v in env.items() if k not in keys}


# --- the module ---------------------------------------------------------------------

def fips_loads(inst) -> bool:
    """Does the installation's openssl, given the installed config, get an active fips?"""
    env = {"OPENSSL_CONF": str(inst.config_dir / "openssl.cnf"),
           "OPENSSL_MODULES": str(inst.module.parent),
           "LD_LIBRARY_PATH": f"{inst.module.parent}:{inst.lib64}"}
    found = providers.parse(providers_with_env(inst.openssl, env))
    return "fips" in found and found["fips"].active


# --- a real server, another account --------------------------------------------------

def s_server(inst, cert: Path, key: Path, port: int) -> List[str]:
    return [str(inst.openssl), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
            "-key", str(key), "-www"]


@contextmanager
def started(argv: List[str], env: Dict[str, str], logs: Path, ready: Callable[[Path], bool],
            name: str = "server") -> Iterator[subprocess.Popen]:
    """Start a server (with Popen, its output in `logs`), wait until `ready(its stdout file)`,
    kill it at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout", logs / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + TIMEOUT
        while not ready(out):
            if proc.poll() is not None:
                pytest.fail(f"{name} exited with {proc.returncode} before it was ready:\n"
                            f"{out.read_text()}\n{err.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} not ready after {TIMEOUT} s:\n{out.read_text()}\n"
                            f"{err.read_text()}")
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


def serving(argv: List[str], env: Dict[str, str], logs: Path):
    """Start a server (with Popen), wait until s_server says ACCEPT, kill it at the end."""
    return started(argv, env, logs, lambda stdout: b"ACCEPT" in stdout.read_bytes())


@contextmanager
def installed_where_others_can_read(testbed, prefix: str) -> Iterator[Tuple[Path, object, Path,
                                                                           Dict[str, str]]]:
    """An installed 3.0 server and its state folder (work/state) in a new folder every account
    can enter, for what runs as another account (pytest's own tmp folders are root-only);
    removed afterwards. Yields (that folder, the installation, its profile, this process's
    environment naming the state folder)."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        work.chmod(0o755)
        root = work / "server root"
        root.mkdir()
        inst = lay_out(build(testbed, "linux-3.0"), root, "3.0")
        env = caller_env(FIPSBOOT_STATE_DIR=str(work / "state"))
        profile = inst.write_profile()
        fipsboot("install", "--profile", str(profile), env=env, check=0)
        yield work, inst, profile, env
    finally:
        shutil.rmtree(work, ignore_errors=True)


def account_switch(uid: int, gid: int):
    """A prefix that runs a command as uid:gid (setpriv), or skip if that account can't run
    this Python here."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is needed to start a command as another account")

    def wrap(argv: List[str]) -> List[str]:
        return [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]

    probe = subprocess.run(wrap([sys.executable, "-c", "import fipsboot"]), capture_output=True,
                           cwd="/", timeout=TIMEOUT)
    if probe.returncode != 0:
        pytest.skip(f"uid {uid} can't run {sys.executable}: {probe.stderr[-200:]!r}")
    return wrap
