"""What the `fipsboot run` tests share: start the wrapper with a server behind it, read back the
environment the server got, find the verdict cache, corrupt the FIPS module.
"""
from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import pytest
from helpers import fipsboot, providers_with_env

from fipsboot import providers
from fipsboot.journal import Journal

CACHE_NAME = "verdict-cache.json"
VARIABLES = ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")
TIMEOUT = 30


# --- helpers ----------------------------------------------------------------------------

def caller_env(**changes: Optional[str]) -> Dict[str, str]:
    """This process's environment with `changes` (None: the variable is removed)."""
    env = dict(os.environ)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


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


# --- module corruption ------------------------------------------------------------------

def rodata_middle(path: Path) -> int:
    """File offset of the middle of the ELF64 module's .rodata section."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "not a little-endian ELF64"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)

    def header(i):  # sh_name, sh_type, sh_flags, sh_addr, sh_offset, sh_size
        return struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize)

    names = header(shstrndx)[4]
    for i in range(shnum):
        name, _, _, _, offset, size = header(i)
        start = names + name
        if data[start:data.index(b"\0", start)] == b".rodata" and size:
            return offset + size // 2
    raise AssertionError(f"{path}: no .rodata section")


def corrupt_module(module: Path) -> None:
    """Flip one byte in the middle of .rodata, in place (same file, same mode)."""
    offset = rodata_middle(module)
    with open(module, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def fips_loads(inst) -> bool:
    """Does the installation's openssl, given the installed config, get an active fips?"""
    env = {"OPENSSL_CONF": str(inst.config_dir / "openssl.cnf"),
           "OPENSSL_MODULES": str(inst.module.parent),
           "LD_LIBRARY_PATH": f"{inst.module.parent}:{inst.lib64}"}
    found = providers.parse(providers_with_env(inst.openssl, env))
    return "fips" in found and found["fips"].active


# --- a real server, another account --------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def s_server(inst, cert: Path, key: Path, port: int) -> List[str]:
    return [str(inst.openssl), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
            "-key", str(key), "-www"]


@contextmanager
def serving(argv: List[str], env: Dict[str, str], logs: Path) -> Iterator[subprocess.Popen]:
    """Start a server (with Popen), wait until s_server says ACCEPT, kill it at the end."""
    logs.mkdir(parents=True, exist_ok=True)
    out, err = logs / "stdout", logs / "stderr"
    with open(out, "wb") as o, open(err, "wb") as e:
        proc = subprocess.Popen(argv, stdout=o, stderr=e, stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + TIMEOUT
        while b"ACCEPT" not in out.read_bytes():
            if proc.poll() is not None:
                pytest.fail(f"server exited with {proc.returncode} before accepting:\n"
                            f"{out.read_text()}\n{err.read_text()}")
            if time.monotonic() > deadline:
                pytest.fail(f"server not accepting after {TIMEOUT} s:\n{err.read_text()}")
            time.sleep(0.02)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(TIMEOUT)


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
