"""`fipsboot run --profile P -- SERVER ARGS`, end to end, against the real OpenSSL builds.

A real TLS server (the installation's own `openssl s_server`) is started through the wrapper
and inspected from outside: its PID, its image, its environment, the libraries it mapped, a
handshake, the cipher list it offers and its exit status. The wrapper's refusals are checked
with a server that would leave a marker file if it ever ran.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterator, List, Optional

import psutil
import pytest
from helpers import build, fipsboot, lay_out, providers_with_env, sourced

from fipsboot import providers
from fipsboot.errors import EXIT_REFUSED, EXIT_USAGE
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


# --- a real TLS server ------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert_and_key(tmp_path_factory):
    """RSA-2048 key and self-signed certificate, made by the system openssl with no
    OpenSSL variables (FIPS-neutral); PKCS#8 PEM, which the FIPS config reads via base."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the system openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSSL")}
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, env=env, timeout=TIMEOUT)
    return cert, key


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


def tls_get(port: int, cert: Path, ciphers: Optional[str] = None,
            tls12: bool = False) -> tuple:
    """Handshake (verifying the server's certificate), GET /, return (version, cipher, page)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(str(cert))
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    if ciphers:
        ctx.set_ciphers(ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            version, cipher = tls.version(), tls.cipher()[0]
            tls.sendall(b"GET / HTTP/1.0\r\n\r\n")
            page = b""
            while True:
                chunk = tls.recv(65536)
                if not chunk:
                    break
                page += chunk
    return version, cipher, page.decode("utf-8", "replace")


def mapped_files(pid: int) -> set:
    """Every file mapped into the process, read from /proc/<pid>/maps."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            found.add(parts[5])
    return found


def assert_is_the_server(pid: int, inst) -> psutil.Process:
    """The PID Popen returned is the server itself: the wrapper exec'd, no process between."""
    proc = psutil.Process(pid)
    assert os.path.realpath(proc.exe()) == os.path.realpath(inst.openssl)
    assert proc.cmdline()[1:3] == ["s_server", "-accept"]
    assert proc.ppid() == os.getpid()
    assert proc.children(recursive=True) == []
    return proc


def libcrypto_mapped(pid: int) -> List[str]:
    return sorted(p for p in mapped_files(pid) if os.path.basename(p) == "libcrypto.so.3")


# --- a FIPS server, from outside ---------------------------------------------------------

def test_fips_tls_server_runs_with_the_module_mapped_and_is_the_pid(installation, cert_and_key,
                                                                     tmp_path):
    inst = installation
    cert, key = cert_and_key
    profile = installed(inst)
    # The caller's environment points elsewhere: the wrapper must override it.
    env = caller_env(OPENSSL_CONF=str(tmp_path / "elsewhere.cnf"),
                     OPENSSL_MODULES=str(tmp_path / "elsewhere-modules"),
                     LD_LIBRARY_PATH="/opt/other/lib")
    port = free_port()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "wrapped") as proc:
        server = assert_is_the_server(proc.pid, inst)
        maps = mapped_files(proc.pid)
        assert str(inst.module) in maps, "the installation's fips.so is not mapped"
        assert libcrypto_mapped(proc.pid) == [str(inst.lib64 / "libcrypto.so.3")]
        seen = server.environ()
        assert seen["OPENSSL_CONF"] == str(inst.config_dir / "openssl.cnf")
        assert seen["OPENSSL_MODULES"] == str(inst.module.parent)
        assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}:/opt/other/lib"

        version, cipher, page = tls_get(port, cert)
        assert version == "TLSv1.3" and "GCM" in cipher
        assert "Ciphers supported in s_server binary" in page
        assert "CHACHA20" not in page  # ChaCha20 is not in any FIPS provider
        with pytest.raises(ssl.SSLError):  # and a client that offers only it is refused
            tls_get(port, cert, ciphers="ECDHE-RSA-CHACHA20-POLY1305", tls12=True)
        assert proc.poll() is None  # the server survived the refused handshake

        proc.send_signal(signal.SIGTERM)
        wrapped_status = proc.wait(TIMEOUT)

    # The same server started directly, with the environment the wrapper gives: its status
    # on SIGTERM is what the caller of the wrapper must see.
    dry = json.loads(run_wrapped(profile, "x", env=env, options=("--dry-run", "--json")).stdout)
    direct_env = {**env, **dry["environment"]}
    port = free_port()
    with serving(s_server(inst, cert, key, port), direct_env, tmp_path / "direct") as proc:
        assert str(inst.module) in mapped_files(proc.pid)
        proc.send_signal(signal.SIGTERM)
        direct_status = proc.wait(TIMEOUT)
    assert direct_status == -signal.SIGTERM
    assert wrapped_status == direct_status


def test_nonfips_tls_server_has_no_fips_module_and_no_inherited_openssl_vars(
        installation, cert_and_key, tmp_path):
    inst = installation
    cert, key = cert_and_key
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    # The worst inheritance: a login shell that still holds the FIPS values.
    env = caller_env(OPENSSL_CONF=str(inst.config_dir / "openssl.cnf"),
                     OPENSSL_MODULES=str(inst.module.parent),
                     LD_LIBRARY_PATH=f"{inst.module.parent}:{inst.lib64}:/opt/other/lib")
    port = free_port()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "wrapped") as proc:
        server = assert_is_the_server(proc.pid, inst)
        assert not [p for p in mapped_files(proc.pid) if p.endswith("/fips.so")]
        assert libcrypto_mapped(proc.pid) == [str(inst.security_pack / "libcrypto.so.3")]
        seen = server.environ()
        assert "OPENSSL_CONF" not in seen and "OPENSSL_MODULES" not in seen
        assert seen["LD_LIBRARY_PATH"] == f"{inst.security_pack}:{inst.lib64}:/opt/other/lib"

        version, _, page = tls_get(port, cert)
        assert version == "TLSv1.3"
        assert "CHACHA20" in page  # the default provider is what serves
        _, cipher, _ = tls_get(port, cert, ciphers="ECDHE-RSA-CHACHA20-POLY1305", tls12=True)
        assert cipher == "ECDHE-RSA-CHACHA20-POLY1305"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(TIMEOUT) == -signal.SIGTERM


# --- refusal ----------------------------------------------------------------------------

def assert_refused_for_module_mac(r: subprocess.CompletedProcess, marker: Path) -> None:
    assert r.returncode == EXIT_REFUSED, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert not marker.exists(), "the server was started"
    assert "module-mac" in r.stderr
    assert "fipsboot install" in r.stderr
    assert r.stdout == ""


def test_corrupted_module_is_refused_cold(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    assert not cache_file(inst).exists()
    corrupt_module(inst.module)
    assert not fips_loads(inst)  # the refusal is justified: OpenSSL would not load it
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert_refused_for_module_mac(r, marker)
    assert str(inst.module) in r.stderr
    assert not cache_file(inst).exists()


def test_corrupted_module_is_refused_with_a_warm_cache(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists() and cache_file(inst).exists()  # a cached verdict exists
    marker.unlink()
    assert run_wrapped(profile, *marker_server(marker)).returncode == 0  # and it is used
    marker.unlink()

    corrupt_module(inst.module)
    r = run_wrapped(profile, *marker_server(marker))
    assert_refused_for_module_mac(r, marker)
    # Still refused on the next launch: a refusal never turns into a pass.
    assert_refused_for_module_mac(run_wrapped(profile, *marker_server(marker)), marker)


def test_module_replaced_by_another_build_is_refused(installation30, testbed, tmp_path):
    """An upgrade that swaps fips.so without running fipsinstall: the old MAC no longer fits."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0  # warm cache
    other = Path(testbed["linux-3.5"]["dir"]) / "fips" / "fips.so"
    if not other.exists():
        pytest.skip("the 3.5 build is needed")
    tmp = inst.module.with_name(".fips.so.new")
    shutil.copyfile(other, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, inst.module)
    marker = tmp_path / "started"
    assert_refused_for_module_mac(run_wrapped(profile, *marker_server(marker)), marker)


# --- the environment the server gets ----------------------------------------------------

def test_fips_environment_overrides_openssl_vars_and_keeps_the_rest(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    fips_dir = str(inst.module.parent)
    env = caller_env(
        OPENSSL_CONF=str(tmp_path / "other" / "openssl.cnf"),
        OPENSSL_MODULES=str(tmp_path / "other" / "modules"),
        LD_LIBRARY_PATH=f"/opt/other/lib:{inst.security_pack}:{fips_dir}:/opt/more lib",
        FIPSBOOT_TEST_KEPT="a b $c \"d\" 'e'",
        SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt",
    )
    r = run_wrapped(profile, "env", "-0", env=env, text=False)
    seen = env_of_server(r)
    assert seen["OPENSSL_CONF"] == str(inst.config_dir / "openssl.cnf")
    assert seen["OPENSSL_MODULES"] == fips_dir
    # Led by <install>/fips then lib64; the Security Pack (the other mode's) dropped; the
    # caller's other entries kept, in order.
    assert seen["LD_LIBRARY_PATH"] == f"{fips_dir}:{inst.lib64}:/opt/other/lib:/opt/more lib"
    assert without(seen) == without(env)  # every other variable unchanged


def test_fips_environment_with_no_inherited_library_path(installation30):
    inst = installation30
    profile = installed(inst)
    env = caller_env(LD_LIBRARY_PATH=None, OPENSSL_CONF=None, OPENSSL_MODULES=None)
    seen = env_of_server(run_wrapped(profile, "env", "-0", env=env, text=False))
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}"
    assert without(seen) == without(env)


def test_nonfips_environment_drops_openssl_vars_and_the_fips_folder(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    fips_dir = str(inst.module.parent)
    env = caller_env(OPENSSL_CONF=str(inst.config_dir / "openssl.cnf"),
                     OPENSSL_MODULES=fips_dir,
                     LD_LIBRARY_PATH=f"{fips_dir}:{inst.lib64}:/opt/other/lib",
                     FIPSBOOT_TEST_KEPT="kept")
    seen = env_of_server(run_wrapped(profile, "env", "-0", env=env, text=False))
    assert "OPENSSL_CONF" not in seen and "OPENSSL_MODULES" not in seen
    ld = seen["LD_LIBRARY_PATH"].split(":")
    assert ld == [str(inst.security_pack), str(inst.lib64), "/opt/other/lib"]
    assert fips_dir not in ld
    assert without(seen) == without(env)


def test_nonfips_mode_does_not_depend_on_the_module(installation30, tmp_path):
    """Non-FIPS mode loads no fips.so: a damaged module there does not stop the server."""
    inst = installation30
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    corrupt_module(inst.module)
    assert run_wrapped(profile, "sh", "-c", "exit 7").returncode == 7


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_fips_run_from_an_environment_that_already_holds_the_fips_values(installation, cache):
    """What `fipsboot install` writes into the account's environment (env file, systemd
    drop-in, shell profile) is what the wrapper inherits when the service manager or a login
    shell starts it: the wrapper's own checks must not be disturbed by it."""
    inst = installation
    profile = installed(inst)
    written = sourced(inst.envfile)
    assert set(written) == set(VARIABLES)
    if cache == "warm":
        assert run_wrapped(profile, "true").returncode == 0
        assert cache_file(inst).exists()
    r = run_wrapped(profile, "env", "-0", env=caller_env(**written), text=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    seen = env_of_server(r)
    assert {k: seen.get(k) for k in VARIABLES} == written


# --- no journal, dry run ----------------------------------------------------------------

def test_never_installed_is_a_usage_error(installation30, tmp_path, state_dir):
    inst = installation30
    profile = inst.write_profile()
    marker = tmp_path / "started"
    for options in ((), ("--dry-run",), ("--dry-run", "--json")):
        r = run_wrapped(profile, *marker_server(marker), options=options)
        assert r.returncode == EXIT_USAGE, r.stderr
        assert "no fipsboot journal" in r.stderr and str(inst.install_dir) in r.stderr
        assert "fipsboot install" in r.stderr
        assert "Traceback" not in r.stderr
        assert not marker.exists()
    assert not state_dir.exists()  # a refused run leaves no state behind


def test_unknown_wrapper_option_is_a_usage_error_not_part_of_the_server(installation30,
                                                                        tmp_path):
    """An option fipsboot does not know (a typo) is refused, not passed on as the server."""
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"
    for options in (("--bogus",), ("--dry-run", "--bogus"), ("--dry-run", "--json", "--bogus")):
        r = run_wrapped(profile, *marker_server(marker), options=options)
        assert r.returncode == EXIT_USAGE, f"{options}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        assert "--bogus" in r.stderr
        assert "exec:" not in r.stdout and '"argv"' not in r.stdout
        assert not marker.exists()


def test_missing_server_command_is_a_usage_error(installation30):
    profile = installed(installation30)
    r = run_wrapped(profile)
    assert r.returncode == EXIT_USAGE and "no server command" in r.stderr


def test_server_that_cannot_be_started(installation30, tmp_path):
    profile = installed(installation30)
    r = run_wrapped(profile, str(tmp_path / "no such server"))
    assert r.returncode == 127
    assert "cannot start" in r.stderr and "no such server" in r.stderr


@pytest.mark.parametrize("mode", ["fips", "non-fips"])
def test_dry_run_prints_environment_and_command_and_execs_nothing(installation30, tmp_path,
                                                                   mode):
    inst = installation30
    profile = installed(inst)
    if mode == "non-fips":
        fipsboot("reset", "--profile", str(profile), check=0)
    marker = tmp_path / "started"
    env = caller_env(OPENSSL_CONF="/elsewhere.cnf", LD_LIBRARY_PATH="/opt/other/lib")
    fips = mode == "fips"
    want = {
        "OPENSSL_CONF": str(inst.config_dir / "openssl.cnf") if fips else None,
        "OPENSSL_MODULES": str(inst.module.parent) if fips else None,
        "LD_LIBRARY_PATH": f"{inst.module.parent if fips else inst.security_pack}:{inst.lib64}"
                           ":/opt/other/lib",
    }

    r = run_wrapped(profile, *marker_server(marker), env=env, options=("--dry-run",))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    assert f"mode: {mode}" in r.stdout
    for key, value in want.items():
        assert (f"{key}={value}" if value is not None else f"{key} (unset)") in r.stdout
    assert "exec: sh -c" in r.stdout and str(marker) in r.stdout

    r = run_wrapped(profile, *marker_server(marker), env=env, options=("--dry-run", "--json"))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    out = json.loads(r.stdout)
    assert out["mode"] == mode
    assert out["argv"] == marker_server(marker)
    assert out["environment"] == want
    # A dry run verifies nothing, so it leaves no verdict behind.
    assert not cache_file(inst).exists()


# --- exit status ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fips", "non-fips"])
def test_exit_status_is_the_servers(installation30, mode):
    inst = installation30
    profile = installed(inst)
    if mode == "non-fips":
        fipsboot("reset", "--profile", str(profile), check=0)
    assert run_wrapped(profile, "sh", "-c", "exit 7").returncode == 7
    assert run_wrapped(profile, "sh", "-c", "exit 0").returncode == 0
    assert run_wrapped(profile, "sh", "-c", 'kill -TERM "$$"').returncode == -signal.SIGTERM
    r = run_wrapped(profile, "sh", "-c", 'echo out; echo err >&2; exit 3')
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_stdin_and_pid_are_the_callers(installation30):
    """exec, not a child: the server reads the caller's stdin and has the wrapper's PID."""
    profile = installed(installation30)
    proc = subprocess.Popen(wrapper_argv(profile, "sh", "-c", 'read line; echo "$$ $line"'),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate("hello\n", timeout=TIMEOUT)
    assert proc.returncode == 0
    assert out == f"{proc.pid} hello\n"


# --- cold and warm ----------------------------------------------------------------------

IN_ACCESS, IN_OPEN = 0x1, 0x20


class FileWatch:
    """inotify on one file: every open or read of it, exec included, is an event; a stat
    (what a cache hit does to the openssl binary) is not."""

    def __init__(self, path: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip(f"inotify is not available: errno {ctypes.get_errno()}")
        if self.libc.inotify_add_watch(self.fd, os.fsencode(path), IN_ACCESS | IN_OPEN) < 0:
            os.close(self.fd)
            pytest.skip(f"inotify_add_watch failed: errno {ctypes.get_errno()}")

    def events(self) -> List[int]:
        masks, data = [], b""
        while True:
            try:
                data += os.read(self.fd, 65536)
            except BlockingIOError:
                break
        i = 0
        while i < len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, i)
            masks.append(mask)
            i += 16 + length
        return masks

    def close(self) -> None:
        os.close(self.fd)


def test_warm_run_starts_no_openssl(installation):
    inst = installation
    profile = installed(inst)
    watch = FileWatch(inst.openssl)
    try:
        assert not cache_file(inst).exists()
        watch.events()  # drop anything before
        assert run_wrapped(profile, "true").returncode == 0  # cold: the probes run openssl
        assert any(m & IN_OPEN for m in watch.events()), "the cold run did not start openssl"
        assert cache_file(inst).exists()
        for _ in range(2):
            r = run_wrapped(profile, "sh", "-c", "exit 5")
            assert r.returncode == 5, r.stderr
            assert watch.events() == [], "a warm run opened the openssl binary"
        cache_file(inst).unlink()  # and cold again once the verdict is gone
        assert run_wrapped(profile, "true").returncode == 0
        assert any(m & IN_OPEN for m in watch.events())
    finally:
        watch.close()


def strace_execs(trace: Path) -> List[str]:
    return re.findall(r'execve\("((?:[^"\\]|\\.)*)"', trace.read_text())


def test_warm_run_execs_only_the_server_per_strace(installation30, tmp_path):
    """Second witness, process-level: every execve of the whole tree is traced."""
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed")
    probe = subprocess.run([strace, "-f", "-qq", "-e", "trace=execve", "-o", os.devnull, "true"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"strace can't trace here: {probe.stderr.decode(errors='replace')[:200]}")
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"

    def traced(name: str) -> List[str]:
        trace = tmp_path / name
        p = subprocess.run([strace, "-f", "-qq", "-s", "4096", "-e", "trace=execve", "-o",
                            str(trace), *wrapper_argv(profile, *marker_server(marker))],
                           capture_output=True, text=True, timeout=TIMEOUT)
        assert p.returncode == 0, p.stderr
        assert marker.exists()
        marker.unlink()
        return strace_execs(trace)

    cold = traced("cold")
    assert cold.count(str(inst.openssl)) >= 2  # list -providers and the digest probes
    warm = traced("warm")
    assert str(inst.openssl) not in warm
    assert not [p for p in warm if os.path.basename(p) == "openssl"]
    # The wrapper itself, then the server (sh, found on PATH), then what sh runs: nothing else.
    assert warm[0] == sys.executable
    assert {os.path.basename(p) for p in warm[1:]} <= {"sh", "touch"}


def test_changed_openssl_invalidates_the_cache_and_a_broken_one_is_refused(installation30,
                                                                           tmp_path):
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"
    assert run_wrapped(profile, "true").returncode == 0
    assert cache_file(inst).exists()

    original = tmp_path / "openssl.orig"
    shutil.copy2(inst.openssl, original)
    broken = inst.openssl.with_name(".openssl.new")
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    os.replace(broken, inst.openssl)  # another file: another identity

    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert not marker.exists()
    assert "FIPS check 'providers' failed" in r.stderr and "fipsboot install" in r.stderr
    assert not cache_file(inst).exists()  # a failed verdict is not kept

    restored = inst.openssl.with_name(".openssl.new")
    shutil.copy2(original, restored)
    os.replace(restored, inst.openssl)
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists() and cache_file(inst).exists()


@pytest.mark.parametrize("name", ["openssl.cnf", "fipsmodule.cnf"])
def test_changed_config_bytes_are_a_cache_miss(installation30, name):
    """Any change to either config's bytes (here a harmless comment) means the probes run
    again; then the new verdict is cached."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    watch = FileWatch(inst.openssl)
    try:
        assert run_wrapped(profile, "true").returncode == 0
        assert watch.events() == []  # warm
        with open(inst.config_dir / name, "a") as f:
            f.write("# touched\n")
        assert run_wrapped(profile, "true").returncode == 0
        assert any(m & IN_OPEN for m in watch.events()), "a changed config was a cache hit"
        assert run_wrapped(profile, "true").returncode == 0
        assert watch.events() == []
    finally:
        watch.close()


def test_config_broken_after_a_cached_verdict_is_refused(installation30, tmp_path):
    """A 3.0 provider checks install-mac against install-status: a wrong one fails its load.
    The cached verdict was for the old bytes, so the launch is refused."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    cnf = inst.config_dir / "fipsmodule.cnf"
    text = cnf.read_text()
    if "install-mac" not in text:
        pytest.skip("this fipsmodule.cnf has no install-mac")
    cnf.write_text(re.sub(r"(install-mac\s*=\s*)([0-9A-Fa-f]{2})",
                          lambda m: m.group(1) + ("00" if m.group(2) != "00" else "11"), text))
    assert not fips_loads(inst)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert not marker.exists()
    assert "FIPS check '" in r.stderr and "fipsboot install" in r.stderr
    cnf.write_text(text)
    assert run_wrapped(profile, "true").returncode == 0


def test_changed_libcrypto_invalidates_the_cache(installation30, tmp_path):
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    assert cache_file(inst).exists()
    lib = inst.lib64 / "libcrypto.so.3"
    broken = lib.with_name(".libcrypto.new")
    broken.write_bytes(b"not a library\n" * 64)
    os.replace(broken, lib)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == EXIT_REFUSED, r.stderr
    assert "FIPS check 'providers' failed" in r.stderr
    assert not marker.exists() and not cache_file(inst).exists()


def test_a_changed_openssl_variable_is_a_cache_miss(installation30):
    """The verdict holds for one environment: another value of a variable that OpenSSL or the
    loader reads means the probes run again; the same value again is a hit."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    watch = FileWatch(inst.openssl)
    try:
        watch.events()
        env = caller_env(SSL_CERT_DIR=str(inst.root / "no certs"))
        assert run_wrapped(profile, "true", env=env).returncode == 0
        assert any(m & IN_OPEN for m in watch.events())
        assert run_wrapped(profile, "true", env=env).returncode == 0
        assert watch.events() == []
    finally:
        watch.close()


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


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to start the wrapper as another account")
def test_service_account_that_cannot_write_the_state_folder(testbed):
    """The server's own account runs the wrapper; root ran `fipsboot install`. A verdict that
    can't be cached is no reason to refuse a verified server, and an unreadable journal is
    an error message, not a traceback."""
    work = Path(tempfile.mkdtemp(prefix="fipsboot-run-"))
    try:
        work.chmod(0o755)  # pytest's own tmp folders are root-only
        root = work / "server root"
        root.mkdir()
        inst = lay_out(build(testbed, "linux-3.0"), root, "3.0")
        state = work / "state"
        profile = inst.write_profile()
        fipsboot("install", "--profile", str(profile), env={"FIPSBOOT_STATE_DIR": str(state)},
                 check=0)
        journal = next(state.glob("*/journal.json"))
        journal.chmod(0o644)  # the account may read the mode, not write the folder
        env = caller_env(FIPSBOOT_STATE_DIR=str(state))

        as_nobody = account_switch(65534, 65534)

        def run_as_nobody():
            return subprocess.run(as_nobody(wrapper_argv(profile, "sh", "-c", "exit 7")),
                                  env=env, capture_output=True, text=True, timeout=TIMEOUT)

        r = run_as_nobody()
        assert (r.returncode, r.stderr) == (7, ""), r.stderr
        journal.chmod(0o600)
        r = run_as_nobody()
        assert r.returncode not in (0, 7)
        assert "Traceback" not in r.stderr and "journal" in r.stderr, r.stderr
    finally:
        shutil.rmtree(work, ignore_errors=True)


@pytest.mark.parametrize("content", ["garbage", "", "{}", '{"key": 5}', "[]", "null", '"x"'])
def test_damaged_cache_is_a_miss(installation30, tmp_path, content):
    """Whatever the cache file holds, it is never a reason to fail: a miss, then rewritten."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0
    good = cache_file(inst).read_text()
    cache_file(inst).write_text(content)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists()
    assert cache_file(inst).read_text() == good
