"""`fipsboot run` starts a real TLS server (the installation's own `openssl s_server`),
inspected from outside: its PID, its image, its environment, the libraries it mapped, a
handshake and the cipher list it offers.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
from pathlib import Path
from typing import List, Optional

import psutil
import pytest
from helpers import fipsboot, mapped_files
from loopback import free_port
from runhelpers import (
    TIMEOUT,
    caller_env,
    installed,
    run_wrapped,
    s_server,
    serving,
    wrapper_argv,
)

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
