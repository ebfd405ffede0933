"""`fipsboot tls-check` against real TLS servers: Debian's redis-server with TLS, and
`openssl s_server` where Redis has no option for the case (a peer limited to X25519), on the
3.0 and 3.5 test beds. Certificates are made here with `cryptography`.

One installation per test bed is installed once, every peer is started once, and one
`tls-check --json` run covers them all (as an operator's profile lists all Redis nodes); each
test then reads what that run said about its peer. Where OpenSSL 3.0 and 3.5 differ the test
pins what each does.
"""
from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Dict

import pytest
from conftest import LINUX_VERSIONS, build, fipsboot, lay_out, tree_snapshot
from tlspeers import Pki, free_port, openssl_server, redis_tls

TLS13_CHACHA = {"tls_protocols": '"TLSv1.3"', "tls_ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"}
TLS12_CHACHA = {"tls_protocols": '"TLSv1.2"',
                "tls_ciphers": "ECDHE-RSA-CHACHA20-POLY1305:DHE-RSA-CHACHA20-POLY1305"}


def run_json(*args: str, env: Dict[str, str], check: int) -> dict:
    r = fipsboot("tls-check", *args, "--json", env=env)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    assert r.returncode == check, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    return json.loads(r.stdout)


def toml_profile(inst, path: Path, tls: str) -> Path:
    inst.write_profile(name=path.name)
    path = inst.root / path.name
    path.write_text(path.read_text() + "\n[tls]\n" + tls)
    return path


class Bed:
    """One test bed's installation, its peers, and what tls-check said about them."""

    def __init__(self, version: str, inst, env: Dict[str, str], pki: Pki, client: dict):
        self.version, self.inst, self.env, self.pki, self.client = version, inst, env, pki, client
        self.peers: Dict[str, str] = {}
        self.result: dict = {}
        self.exit_code = None

    def peer(self, name: str) -> dict:
        spec = self.peers[name]
        found = [p for p in self.result["peers"] if p["peer"] == spec]
        assert len(found) == 1, self.result["peers"]
        return found[0]

    def checks(self, name: str, peer: str) -> list:
        return [c for c in self.result["checks"]
                if c["name"] == name and c["details"].get("peer") == self.peers[peer]]

    def profile(self, name: str, tls: str) -> Path:
        return toml_profile(self.inst, Path(name), tls)


@pytest.fixture(scope="module", params=LINUX_VERSIONS, ids=lambda v: f"openssl-{v}")
def bed(request, testbed, tmp_path_factory):
    version = request.param
    root = tmp_path_factory.mktemp(f"tls {version}")
    (root / "server root").mkdir()
    inst = lay_out(build(testbed, f"linux-{version}"), root / "server root", version)
    env = {"FIPSBOOT_STATE_DIR": str(root / "state")}
    fipsboot("install", "--profile", str(inst.write_profile()), env=env, check=0)
    pki = Pki(root / "pki")
    client = pki.issue("ors-client")
    b = Bed(version, inst, env, pki, client)
    other = Pki(root / "other-pki", "Other CA")
    plain_openssl = (inst.security_pack / "libcrypto.so.3").parent
    with contextlib.ExitStack() as stack:
        def redis(name: str, issuer: Pki = pki, legacy: bool = False, cert: dict = None,
                  **options: str) -> None:
            cert = cert or issuer.issue(f"redis-{name}")
            b.peers[name] = stack.enter_context(redis_tls(
                root / f"redis-{name}", cert["cert"], cert["key"], issuer.cacert, legacy,
                **options))

        redis("good")
        redis("chacha13", **TLS13_CHACHA)
        redis("chacha12", **TLS12_CHACHA)
        # OpenSSL 3 serves a SHA-1-signed or RSA-1024 certificate only at security level 0
        redis("sha1", legacy=True, cert=pki.issue("redis-sha1", sha1=True))
        redis("rsa1024", legacy=True, cert=pki.issue("redis-rsa1024", "rsa1024"))
        redis("ed25519", cert=pki.issue("redis-ed25519", "ed25519"))
        redis("wrong-ca", issuer=other)
        x = pki.issue("s-server-x25519")
        b.peers["x25519"] = stack.enter_context(openssl_server(
            inst.build / "bin" / "openssl", plain_openssl, root / "s_server-x25519",
            x["cert"], x["key"], "-groups", "X25519"))
        b.peers["nothing"] = f"127.0.0.1:{free_port()}"
        profile = b.profile("tls.toml", (
            f"cert = {json.dumps(str(client['cert']))}\n"
            f"key = {json.dumps(str(client['key']))}\n"
            f"cacert = {json.dumps(str(pki.cacert))}\n"
            f"peers = {json.dumps(list(b.peers.values()))}\n"))
        before = tree_snapshot(root / "server root"), tree_snapshot(root / "state")
        r = fipsboot("tls-check", "--profile", str(profile), "--json", env=env)
        assert "Traceback" not in r.stderr, r.stderr
        b.exit_code, b.result = r.returncode, json.loads(r.stdout)
        b.unchanged = (before == (tree_snapshot(root / "server root"),
                                  tree_snapshot(root / "state")))
        b.text = fipsboot("tls-check", "--profile", str(profile), env=env)
    yield b


def fips_handshake(bed: Bed, name: str) -> dict:
    return bed.peer(name)["handshakes"]["fips"]


def plain_handshake(bed: Bed, name: str) -> dict:
    return bed.peer(name)["handshakes"]["non-fips"]


# --- Done when: the peers -------------------------------------------------------------------

def test_redis_rsa2048_sha256_works_in_fips_mode(bed):
    p = bed.peer("good")
    assert p["verdict"] == "works in FIPS mode" and p["ok"] and p["findings"] == []
    h = fips_handshake(bed, "good")
    assert h["protocol"] == "TLSv1.3" and h["cipher"].startswith("TLS_AES_")
    assert h["verify_code"] == 0 and h["errors"] == []
    assert any("Verify return code: 0 (ok)" in line for line in h["raw"])
    assert p["chain"][0]["key"] == "RSA-2048" and p["chain"][0]["signature_hash"] == "sha256"
    [check] = bed.checks("tls-peer", "good")
    assert check["ok"]


def test_the_whole_report_fails_with_exit_1_and_changes_nothing(bed):
    assert bed.exit_code == 1 and bed.result["ok"] is False and bed.result["exit_code"] == 1
    assert bed.result["fips_environment"] == "installed"
    assert bed.unchanged, "tls-check wrote into the installation or the state folder"
    assert bed.text.returncode == 1
    assert f"peer {bed.peers['good']}: works in FIPS mode" in bed.text.stdout
    assert "tls-check (FIPS environment installed): FAILED" in bed.text.stdout


@pytest.mark.parametrize("name", ["chacha13", "chacha12"])
def test_redis_limited_to_chacha20_fails_only_in_fips_mode(bed, name):
    p = bed.peer(name)
    assert p["status"] == "fails-in-fips", p["verdict"]
    assert p["verdict"].startswith("works today, fails in FIPS mode: the peer offers only "
                                   "ChaCha20-Poly1305"), p["verdict"]
    fips, plain = fips_handshake(bed, name), plain_handshake(bed, name)
    assert "sslv3 alert handshake failure" in fips["errors"], fips["raw"]
    assert "CHACHA20" in plain["cipher"] and plain["verify_code"] == 0
    assert plain["protocol"] == ("TLSv1.3" if name == "chacha13" else "TLSv1.2")
    [check] = bed.checks("tls-peer", name)
    assert not check["ok"] and "AES-GCM" in check["fix"]


def test_sha1_signed_peer_certificate_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-signature-hash", "sha1")
    assert finding["severity"] == "warning" and "signed with SHA-1" in finding["reason"]
    # Pinned: at OpenSSL's default security level 1 both 3.0 and 3.5 refuse a SHA-1 signature
    # in the chain with or without FIPS (X509_V_ERR_CA_MD_TOO_WEAK), so the peer fails in both
    # modes, and the finding says so.
    p = bed.peer("sha1")
    assert p["status"] == "fails-in-both", p["verdict"]
    assert "CA signature digest algorithm too weak" in p["verdict"]
    assert fips_handshake(bed, "sha1")["verify_code"] == 68
    assert "fails in both modes" in finding["reason"]


def test_rsa1024_peer_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-key", "rsa1024")
    assert "RSA-1024" in finding["reason"] and finding["severity"] == "warning"
    p = bed.peer("rsa1024")
    assert p["chain"][0]["key"] == "RSA-1024"
    assert p["verdict"] in finding["reason"]


def test_ed25519_peer_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-key", "ed25519")
    assert "Ed25519" in finding["reason"]
    p = bed.peer("ed25519")
    assert p["chain"][0]["key"] == "Ed25519"
    assert p["verdict"] in finding["reason"]


def test_x25519_only_peer_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-group", "x25519")
    assert "only the X25519 group" in finding["reason"]
    p = bed.peer("x25519")
    assert fips_handshake(bed, "x25519")["group"] == "X25519" or not p["ok"]
    assert p["verdict"] in finding["reason"]


def test_peer_with_a_ca_not_in_cacert_fails_in_both_modes(bed):
    p = bed.peer("wrong-ca")
    assert p["status"] == "fails-in-both"
    assert p["verdict"].startswith("fails in both modes: the peer's certificate does not "
                                   "verify"), p["verdict"]
    assert "not in cacert" in p["verdict"]
    assert fips_handshake(bed, "wrong-ca")["verify_code"] in (19, 20, 21)


def test_nothing_listening_fails_in_both_modes(bed):
    p = bed.peer("nothing")
    assert p["verdict"] == f"fails in both modes: nothing is listening on {bed.peers['nothing']} " \
                           "(connection refused)"
    assert "Connection refused" in fips_handshake(bed, "nothing")["errors"]


def test_zz_show(bed):
    print(bed.text.stdout)
    assert 0
