"""The review's findings on tls-check and report, end to end on the real 3.0 test bed: hostile
peers served by the test bed's own `openssl s_server`, an SM2 certificate made by the test
bed's openssl, a certificate subject that tries to drive the terminal, a self-signed peer, a
peer whose certificate names another host, and `report --html` aimed at a missing folder, a
link and a file planted by another account."""
from __future__ import annotations

import contextlib
import datetime
import json
import os
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from helpers import build, fipsboot, lay_out
from tlspeers import Pki, new_cert, new_key, openssl_server, write_cert, write_key

VERSION = "3.0"
# a subject that retitles the terminal (OSC 0 ... BEL) and forges a line of its own
HOSTILE_CN = "evil\x1b]0;pwned\x07\nPASS  tls-peer   all good\r"


class Bed:
    def __init__(self, root: Path, inst, env: Dict[str, str], pki: Pki):
        self.root, self.inst, self.env, self.pki = root, inst, env, pki
        self.peers: Dict[str, str] = {}
        self.files: Dict[str, Path] = {}

    def profile(self, name: str, tls: str = "") -> Path:
        path = self.inst.write_profile(name=name)
        if tls:
            path.write_text(path.read_text() + "\n[tls]\n" + tls)
        return path

    def tls_check(self, *args: str, check: int, as_json: bool = True):
        r = fipsboot("tls-check", "--profile", str(self.profile("plain.toml")), *args,
                     *(["--json"] if as_json else []), env=self.env)
        assert "Traceback" not in r.stdout + r.stderr, r.stderr
        assert r.returncode == check, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
        return json.loads(r.stdout) if as_json else r


def openssl_env(folder: Path, lib_dir: Path) -> Dict[str, str]:
    empty = folder / "empty.cnf"
    empty.write_text("")
    return {"PATH": os.environ["PATH"], "LANG": "C", "OPENSSL_CONF": str(empty),
            "LD_LIBRARY_PATH": str(lib_dir)}


def sm2_certificate(openssl: Path, lib_dir: Path, folder: Path) -> Dict[str, Path]:
    """A self-signed SM2 certificate, made by the test bed's own (non-FIPS) openssl."""
    folder.mkdir(parents=True, exist_ok=True)
    env = openssl_env(folder, lib_dir)
    key, cert = folder / "sm2.key", folder / "sm2.pem"
    subprocess.run([str(openssl), "genpkey", "-algorithm", "SM2", "-out", str(key)], env=env,
                   check=True, capture_output=True)
    subprocess.run([str(openssl), "req", "-new", "-x509", "-key", str(key), "-out", str(cert),
                    "-subj", "/CN=sm2-ca", "-days", "30", "-sm3"], env=env, check=True,
                   capture_output=True)
    assert b"BEGIN CERTIFICATE" in cert.read_bytes()
    return {"cert": cert, "key": key}


def cert_for_other_host(pki: Pki, folder: Path) -> Dict[str, Path]:
    """Signed by the trusted CA, valid, but issued to other.example only."""
    key = new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "other.example")]))
            .issuer_name(pki.cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("other.example")]), False)
            .sign(pki.key, hashes.SHA256()))
    return {"cert": write_cert(folder / "other-host.pem", cert),
            "key": write_key(folder / "other-host.key", key)}


@pytest.fixture(scope="module")
def bed(testbed, tmp_path_factory):
    root = tmp_path_factory.mktemp("tls review")
    (root / "server root").mkdir()
    inst = lay_out(build(testbed, f"linux-{VERSION}"), root / "server root", VERSION)
    env = {"FIPSBOOT_STATE_DIR": str(root / "state")}
    fipsboot("install", "--profile", str(inst.write_profile()), env=env, check=0)
    pki = Pki(root / "pki")
    b = Bed(root, inst, env, pki)
    openssl, lib_dir = inst.build / "bin" / "openssl", (inst.security_pack / "libcrypto.so.3").parent
    b.files["sm2"] = sm2_certificate(openssl, lib_dir, root / "sm2")["cert"]
    b.files["sm2-key"] = root / "sm2" / "sm2.key"
    good = pki.issue("good-peer")
    hostile_key = new_key()
    hostile_cert = new_cert(hostile_key, HOSTILE_CN, pki.key, pki.name)
    hostile = {"cert": write_cert(pki.folder / "hostile.pem", hostile_cert),
               "key": write_key(pki.folder / "hostile.key", hostile_key)}
    self_key = new_key()
    self_signed = {"cert": write_cert(pki.folder / "self.pem", new_cert(self_key, "self-signed")),
                   "key": write_key(pki.folder / "self.key", self_key)}
    other = cert_for_other_host(pki, pki.folder)
    with contextlib.ExitStack() as stack:
        def serve(name: str, cert: Dict[str, Path], *args: str) -> None:
            b.peers[name] = stack.enter_context(openssl_server(
                openssl, lib_dir, root / f"s_server-{name}", cert["cert"], cert["key"], *args))

        serve("sm2-chain", good, "-cert_chain", str(b.files["sm2"]))
        serve("hostile", hostile)
        serve("self-signed", self_signed)
        serve("other-host", other)
        serve("good", good)
        yield b


# --- finding 2: a key type cryptography can't load --------------------------------------------

def test_peer_with_an_sm2_certificate_in_its_chain_is_named_not_a_traceback(bed):
    r = bed.tls_check("--peer", bed.peers["sm2-chain"], "--cacert", str(bed.pki.cacert), check=0)
    [p] = r["peers"]
    assert p["ok"], p["verdict"]  # the leaf and its CA are fine; the extra SM2 certificate
    keys = {c["subject"]: c["key"] for c in p["chain"]}
    assert keys["CN=sm2-ca"] == "unsupported key type SM2" and keys["CN=good-peer"] == "RSA-2048"
    text = bed.tls_check("--peer", bed.peers["sm2-chain"], "--cacert", str(bed.pki.cacert),
                         check=0, as_json=False)
    assert "chain     CN=sm2-ca: unsupported key type SM2" in text.stdout


def test_own_sm2_certificate_fails_tls_key_type_naming_it(bed):
    rsa = bed.pki.issue("rsa-client")
    r = bed.tls_check("--cert", str(bed.files["sm2"]), "--key", str(rsa["key"]), check=1)
    checks = {c["name"]: c for c in r["checks"]}
    kt = checks["tls-key-type"]
    assert not kt["ok"] and kt["severity"] == "error" and kt["fix"]
    assert kt["reason"] == "unsupported key type SM2 in CN=sm2-ca: not FIPS-approved"
    assert not checks["tls-key-match"]["ok"]
    assert "can't tell whether the key" in checks["tls-key-match"]["reason"]
    # the SM2 private key itself can't be loaded: a failed tls-files check, no traceback
    r = bed.tls_check("--cert", str(bed.files["sm2"]), "--key", str(bed.files["sm2-key"]),
                      check=1)
    checks = {c["name"]: c for c in r["checks"]}
    assert not checks["tls-files"]["ok"] and "not a PEM private key" in checks["tls-files"]["reason"]
    assert "unsupported key type SM2" in checks["tls-key-type"]["reason"]


# --- finding 3: untrusted strings can't drive root's terminal ---------------------------------

def test_certificate_subject_cannot_inject_terminal_escapes_or_lines(bed):
    r = bed.tls_check("--peer", bed.peers["hostile"], "--cacert", str(bed.pki.cacert), check=0,
                      as_json=False)
    out = r.stdout + r.stderr
    assert "\x1b" not in out and "\x07" not in out and "\r" not in out
    assert not any(line.startswith("PASS  tls-peer   all good") for line in out.splitlines())
    # shown escaped (RFC 4514's "\\;" keeps its backslash, doubled as every backslash is)
    assert "chain     CN=evil\\x1b]0\\\\;pwned\\x07\\nPASS  tls-peer   all good\\r: RSA-2048" in out
    # JSON keeps the value as it is (its encoder escapes it)
    r = bed.tls_check("--peer", bed.peers["hostile"], "--cacert", str(bed.pki.cacert), check=0)
    assert r["peers"][0]["chain"][0]["subject"] == "CN=" + HOSTILE_CN.replace(";", "\\;")


# --- finding 9: a self-signed peer is a trust problem, not a key problem ----------------------

def test_self_signed_peer_says_put_it_in_cacert(bed):
    r = bed.tls_check("--peer", bed.peers["self-signed"], "--cacert", str(bed.pki.cacert),
                      check=1)
    [p] = r["peers"]
    assert r["peers"][0]["handshakes"]["non-fips"]["verify_code"] == 18
    assert "not in cacert/cacertdir" in p["verdict"]
    assert p["fix"] == "put the CA that signed the peer's certificate into cacert (or cacertdir)"


# --- finding 12: the peer's host name -------------------------------------------------------

def test_certificate_issued_to_another_host_is_a_finding(bed):
    port = bed.peers["other-host"].rsplit(":", 1)[1]
    r = bed.tls_check("--peer", f"localhost:{port}", "--cacert", str(bed.pki.cacert), check=0)
    [p] = r["peers"]
    assert p["ok"]  # the chain verifies: s_client alone would call this working
    [f] = [c for c in r["checks"] if c["name"] == "tls-peer-hostname"]
    assert f["severity"] == "warning" and f["details"]["names"] == ["other.example"]
    assert "issued to other.example, not to localhost" in f["reason"] and f["fix"]
    assert f["reason"] in p["findings"]
    bed.tls_check("--peer", f"localhost:{port}", "--cacert", str(bed.pki.cacert), "--strict",
                  check=1)
    # a certificate that names the host (DNS:localhost, IP:127.0.0.1): no finding
    port = bed.peers["good"].rsplit(":", 1)[1]
    for spec in (f"localhost:{port}", f"127.0.0.1:{port}"):
        r = bed.tls_check("--peer", spec, "--cacert", str(bed.pki.cacert), check=0)
        assert not [c for c in r["checks"] if c["name"] == "tls-peer-hostname"], r["checks"]


def test_no_peers_summary_does_not_count_zero_of_zero(bed):
    good = bed.pki.issue("client-only")
    r = bed.tls_check("--cert", str(good["cert"]), "--key", str(good["key"]), check=0)
    assert "0 of 0" not in r["summary"] and r["summary"].startswith("no peers given")


# --- finding 2 and 3 in the report; finding 11: report --html -------------------------------

def test_report_survives_sm2_and_hostile_subjects_and_owns_its_html(bed, tmp_path):
    profile = bed.profile("report.toml", (
        f"cert = {json.dumps(str(bed.files['sm2']))}\n"
        f"key = {json.dumps(str(bed.files['sm2-key']))}\n"
        f"cacert = {json.dumps(str(bed.pki.cacert))}\n"
        f"peers = {json.dumps([bed.peers['hostile'], bed.peers['sm2-chain']])}\n"))
    planted = tmp_path / "report.html"
    planted.write_text("planted by another account")
    os.chmod(tmp_path, 0o1777)
    os.chown(planted, 65534, 65534)
    r = fipsboot("report", "--profile", str(profile), "--html", str(planted), env=bed.env)
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    assert r.returncode == 1  # the SM2 certificate fails tls-check
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "FAIL  TLS (tls-check)" in r.stdout
    assert "unsupported key type SM2 in CN=sm2-ca: not FIPS-approved" in r.stdout
    st = os.lstat(planted)
    assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid()) and st.st_mode & 0o777 == 0o644
    assert "<!DOCTYPE html>" in planted.read_text()[:200]


def test_report_html_into_a_missing_folder_or_a_link_is_a_usage_error(bed, tmp_path):
    profile = bed.profile("plain.toml")
    missing = tmp_path / "no such folder" / "report.html"
    r = fipsboot("report", "--profile", str(profile), "--html", str(missing), "--json",
                 env=bed.env)
    err = json.loads(r.stdout)
    assert r.returncode == 2 and err["exit_code"] == 2 and err["fix"]
    assert f"the folder {missing.parent} does not exist" in err["error"]
    assert "report" not in [p.name for p in tmp_path.iterdir()]
    target = tmp_path / "elsewhere.html"
    target.write_text("keep")
    link = tmp_path / "link.html"
    link.symlink_to(target)
    r = fipsboot("report", "--profile", str(profile), "--html", str(link), env=bed.env)
    assert r.returncode == 2 and "is a symbolic link" in r.stderr and "fix:" in r.stderr
    assert target.read_text() == "keep" and link.is_symlink()
