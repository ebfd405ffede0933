"""Real TLS peers for the tls-check tests and the demo: certificates made here with `cryptography`, Debian's
redis-server with TLS, and `openssl s_server` where Redis has no option for the case.

Each server listens on a free loopback port with its own temporary folder and is stopped when
its `with` block ends.
"""
from __future__ import annotations

import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.x509.oid import NameOID
from loopback import free_port

SHA256_RSA_OID = bytes.fromhex("06092a864886f70d01010b")  # DER of sha256WithRSAEncryption
SHA1_RSA_OID = bytes.fromhex("06092a864886f70d010105")  # sha1WithRSAEncryption: same length


def new_key(kind: str = "rsa2048"):
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(65537, int(kind[3:]))


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def new_cert(key, cn: str, issuer_key=None, issuer_cn: Optional[str] = None, *, ca: bool = False,
             sha1: bool = False, days: int = 365, starts_in_days: int = -1) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_key = issuer_key or key
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn)).issuer_name(_name(issuer_cn or cn))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now + datetime.timedelta(days=starts_in_days))
               .not_valid_after(now + datetime.timedelta(days=days))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    eddsa = isinstance(issuer_key, ed25519.Ed25519PrivateKey)
    cert = builder.sign(issuer_key, None if eddsa else hashes.SHA256())
    if sha1:
        cert = _resign_sha1(cert, issuer_key)
    return cert


def _resign_sha1(cert: x509.Certificate, issuer_key) -> x509.Certificate:
    """`cryptography` no longer signs certificates with SHA-1; peers in the field still have
    them. Swap the algorithm identifier (same DER length) and sign the new TBS with SHA-1."""
    der = cert.public_bytes(serialization.Encoding.DER)
    assert der.count(SHA256_RSA_OID) == 2, "expected an RSA/SHA-256 certificate"
    der = der.replace(SHA256_RSA_OID, SHA1_RSA_OID)
    tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
    signature = issuer_key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())
    assert len(signature) == issuer_key.key_size // 8
    return x509.load_der_x509_certificate(der[:-len(signature)] + signature)


def write_cert(path: Path, *certs: x509.Certificate) -> Path:
    path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs))
    return path


def write_key(path: Path, key) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


@dataclass
class Pki:
    """A CA, and certificates it signs, as files in one folder."""

    folder: Path
    name: str = "Test CA"

    def __post_init__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key = new_key("rsa2048")
        self.cert = new_cert(self.key, self.name, ca=True, days=3650)
        self.cacert = write_cert(self.folder / f"{self.slug}-ca.pem", self.cert)

    @property
    def slug(self) -> str:
        return self.name.lower().replace(" ", "-")

    def issue(self, cn: str, kind: str = "rsa2048", **kw) -> Dict[str, Path]:
        key = new_key(kind)
        cert = new_cert(key, cn, self.key, self.name, **kw)
        return {"cert": write_cert(self.folder / f"{cn}.pem", cert),
                "key": write_key(self.folder / f"{cn}.key", key)}


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server exited ({proc.returncode}):\n{log.read_text()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"server not listening on {port} after {timeout} s:\n{log.read_text()}")


@contextlib.contextmanager
def _serving(argv: List[str], folder: Path, port: int, env: Dict[str, str]) -> Iterator[str]:
    log = folder / "server.log"
    with open(log, "wb") as out:
        # stdin stays open: s_server quits on end of input
        proc = subprocess.Popen(argv, cwd=folder, env=env, stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_listening(port, proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        proc.stdin.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


LEGACY_CNF = """openssl_conf = default_conf
[default_conf]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
CipherString = DEFAULT@SECLEVEL=0
"""


def _plain_env(folder: Path, legacy: bool = False) -> Dict[str, str]:
    """The peer runs without FIPS and without the system's openssl.cnf (Debian's raises the
    security level). `legacy`: security level 0, like an old peer in the field, which is what it
    takes for OpenSSL 3 to serve a SHA-1-signed certificate at all."""
    cnf = folder / "peer-openssl.cnf"
    cnf.write_text(LEGACY_CNF if legacy else "")
    return {"PATH": os.environ["PATH"], "LANG": "C", "OPENSSL_CONF": str(cnf)}


def redis_server() -> str:
    path = shutil.which("redis-server")
    if path is None:
        import pytest  # here, not at the top: scripts/demo.py uses this module without pytest

        msg = "redis-server is not installed: run scripts/setup.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(msg, pytrace=False)
        pytest.skip(msg)
    return path


@contextlib.contextmanager
def redis_tls(folder: Path, cert: Path, key: Path, cacert: Path, legacy: bool = False,
              **options: str) -> Iterator[str]:
    """Debian's redis-server with TLS only, on a free loopback port; yields "127.0.0.1:PORT".
    `options`: more Redis settings, e.g. tls_ciphersuites="TLS_CHACHA20_POLY1305_SHA256"."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    quoted = json.dumps  # paths with spaces: Redis reads C-style double-quoted strings
    settings = {"port": "0", "tls-port": str(port), "bind": "127.0.0.1", "dir": quoted(str(folder)),
                "save": '""', "appendonly": "no", "daemonize": "no", "protected-mode": "yes",
                "tls-cert-file": quoted(str(cert)), "tls-key-file": quoted(str(key)),
                "tls-ca-cert-file": quoted(str(cacert))}
    settings.update({k.replace("_", "-"): v for k, v in options.items()})
    conf = folder / "redis.conf"
    conf.write_text("".join(f"{k} {v}\n" for k, v in settings.items()))
    with _serving([redis_server(), str(conf)], folder, port, _plain_env(folder, legacy)) as peer:
        yield peer


@contextlib.contextmanager
def openssl_server(openssl: Path, lib_dir: Path, folder: Path, cert: Path, key: Path,
                   *args: str) -> Iterator[str]:
    """`openssl s_server` (non-FIPS) for what Redis has no option for, e.g. `-groups X25519`."""
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {**_plain_env(folder), "LD_LIBRARY_PATH": str(lib_dir)}
    argv = [str(openssl), "s_server", "-accept", f"127.0.0.1:{port}", "-cert", str(cert),
            "-key", str(key), "-naccept", "1000", *args]
    with _serving(argv, folder, port, env) as peer:
        yield peer
