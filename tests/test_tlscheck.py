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
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from helpers import LINUX_VERSIONS, build, fipsboot, lay_out, tree_snapshot
from tlspeers import Pki, free_port, new_cert, openssl_server, redis_tls, write_cert

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
        two = b.profile("two.toml", (
            f"cert = {json.dumps(str(client['cert']))}\n"
            f"key = {json.dumps(str(client['key']))}\n"
            f"cacert = {json.dumps(str(pki.cacert))}\n"
            f"peers = {json.dumps([b.peers['good'], b.peers['chacha13']])}\n"))
        b.text = fipsboot("tls-check", "--profile", str(two), env=env)
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
    assert f"FAIL  tls-peer                {bed.peers['chacha13']}: works today, fails in FIPS " \
           "mode: the peer offers only ChaCha20-Poly1305" in bed.text.stdout
    assert "tls-check (FIPS environment installed): FAILED" in bed.text.stdout


@pytest.mark.parametrize("name", ["chacha13", "chacha12"])
def test_redis_limited_to_chacha20_fails_only_in_fips_mode(bed, name):
    p = bed.peer(name)
    assert p["status"] == "fails-in-fips", p["verdict"]
    assert p["verdict"].startswith("works today, fails in FIPS mode: the peer offers only "
                                   "ChaCha20-Poly1305"), p["verdict"]
    fips, plain = fips_handshake(bed, name), plain_handshake(bed, name)
    # 3.0: "sslv3 alert handshake failure"; 3.5: "ssl/tls alert handshake failure"
    assert any(e.endswith("alert handshake failure") for e in fips["errors"]), fips["raw"]
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
    if bed.version == "3.0":  # pinned: 3.0.22 verifies an RSA-1024 peer, even in FIPS mode
        assert p["verdict"] == "works in FIPS mode"
    else:  # pinned: 3.5.7 refuses it in both modes (verify error 66)
        assert p["verdict"] == ("fails in both modes: the peer's certificate does not verify: "
                                "EE certificate key too weak")
        assert fips_handshake(bed, "rsa1024")["verify_code"] == 66


def test_ed25519_peer_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-key", "ed25519")
    assert "Ed25519" in finding["reason"]
    assert "this FIPS provider lists ED25519" in finding["reason"]
    p = bed.peer("ed25519")
    assert p["chain"][0]["key"] == "Ed25519"
    assert p["verdict"] in finding["reason"]
    # pinned: both providers list ED25519 and the FIPS-mode handshake works on 3.0 and 3.5
    assert p["verdict"] == "works in FIPS mode"


def test_x25519_only_peer_is_a_finding(bed):
    [finding] = bed.checks("tls-peer-group", "x25519")
    assert "only the X25519 group" in finding["reason"]
    p = bed.peer("x25519")
    assert p["verdict"] in finding["reason"]
    kex = bed.result["checks"][0]["details"]["key_exchange_algorithms"]
    if bed.version == "3.0":  # pinned: the 3.0.22 provider lists X25519 and negotiates it
        assert "X25519" in kex
        assert p["verdict"] == "works in FIPS mode"
        assert fips_handshake(bed, "x25519")["group"] == "X25519"
    else:  # pinned: in 3.5.7 FIPS mode X25519 is not offered
        assert p["verdict"] == ("works today, fails in FIPS mode: the peer offers only the "
                                "X25519 group, which this FIPS provider does not offer")
        assert plain_handshake(bed, "x25519")["group"] == "X25519"


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



# --- Done when: the server's own material ---------------------------------------------------

def own(bed: Bed, *args: str, check: int = 1) -> dict:
    profile = bed.inst.write_profile(name="no-tls.toml")
    return run_json("--profile", str(profile), *args, env=bed.env, check=check)


def failing_check(result: dict, name: str) -> dict:
    [c] = [c for c in result["checks"] if c["name"] == name]
    assert not c["ok"] and c["severity"] == "error" and c["fix"], c
    return c


def test_cert_without_key_is_a_failing_check(bed):
    r = own(bed, "--cert", str(bed.client["cert"]))
    c = failing_check(r, "tls-cert-key")
    assert c["reason"].startswith("cert is set without key")
    assert r["ok"] is False and r["exit_code"] == 1


def test_key_that_does_not_match_the_certificate(bed):
    stranger = bed.pki.issue("stranger")
    r = own(bed, "--cert", str(bed.client["cert"]), "--key", str(stranger["key"]))
    c = failing_check(r, "tls-key-match")
    assert "does not belong to the certificate CN=ors-client" in c["reason"]


def test_expired_certificate(bed):
    old = bed.pki.issue("expired", days=-2, starts_in_days=-400)
    r = own(bed, "--cert", str(old["cert"]), "--key", str(old["key"]))
    c = failing_check(r, "tls-validity")
    assert "CN=expired expired on" in c["reason"]
    assert [x for x in r["checks"] if x["name"] == "tls-key-match"][0]["ok"]


def test_garbage_pem_names_the_file(bed, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    noise = tmp_path / "noise.key"
    noise.write_bytes(bytes(range(256)))
    r = own(bed, "--cert", str(garbage), "--key", str(noise))
    c = failing_check(r, "tls-files")
    assert f"cert {garbage}: certificate 1 is damaged" in c["reason"]
    assert f"key {noise}: not a PEM private key" in c["reason"]
    text = fipsboot("tls-check", "--profile", str(bed.inst.write_profile(name="no-tls.toml")),
                    "--cacert", str(garbage), env=bed.env)
    assert text.returncode == 1 and "Traceback" not in text.stderr + text.stdout
    assert "FAIL  tls-files" in text.stdout and str(garbage) in text.stdout


def test_sha1_and_rsa1024_own_certificate_fail(bed):
    weak = bed.pki.issue("weak-client", "rsa1024", sha1=True)
    r = own(bed, "--cert", str(weak["cert"]), "--key", str(weak["key"]))
    assert "CN=weak-client is signed with SHA-1" in failing_check(r, "tls-signature-hash")["reason"]
    assert failing_check(r, "tls-key-type")["reason"].startswith("RSA-1024")


def test_expiring_soon_is_a_warning_that_fails_only_with_strict(bed):
    soon = bed.pki.issue("soon", days=10)
    args = ("--cert", str(soon["cert"]), "--key", str(soon["key"]), "--cacert", str(bed.pki.cacert))
    r = own(bed, *args, check=0)
    [c] = [c for c in r["checks"] if c["name"] == "tls-validity"]
    assert not c["ok"] and c["severity"] == "warning" and "CN=soon expires on" in c["reason"]
    r = own(bed, *args, "--strict", check=1)
    assert r["ok"] is False


# --- the profile and the command line -------------------------------------------------------

def test_nothing_to_check_and_bad_peer_are_usage_errors(bed):
    profile = bed.inst.write_profile(name="no-tls.toml")
    r = run_json("--profile", str(profile), env=bed.env, check=2)
    assert r["exit_code"] == 2 and "nothing to check" in r["error"] and "--peer" in r["fix"]
    r = run_json("--profile", str(profile), "--peer", "localhost", env=bed.env, check=2)
    assert "expected HOST:PORT" in r["error"]


def test_peer_option_adds_and_cert_options_override(bed):
    profile = bed.profile("override.toml", f'cert = "/nonexistent/client.pem"\n'
                                           f'key = "/nonexistent/client.key"\n'
                                           f'peers = [{json.dumps(bed.peers["nothing"])}]\n')
    r = run_json("--profile", str(profile), "--peer", bed.peers["good"],
                 "--cert", str(bed.client["cert"]), "--key", str(bed.client["key"]),
                 "--cacert", str(bed.pki.cacert), env=bed.env, check=1)
    assert [p["peer"] for p in r["peers"]] == [bed.peers["nothing"], bed.peers["good"]]
    assert [p["ok"] for p in r["peers"]] == [False, True], [p["verdict"] for p in r["peers"]]
    assert all(c["ok"] for c in r["checks"] if c["name"] != "tls-peer")


def test_before_install_a_temporary_fips_config_is_used(bed, tmp_path):
    """Ask before the switch: with no openssl.cnf installed yet, tls-check builds the FIPS
    configuration in a temporary folder and writes nothing into the installation."""
    root = tmp_path / "fresh root"
    root.mkdir()
    inst = lay_out(bed.inst.build, root, bed.version)
    profile = toml_profile(inst, Path("fresh.toml"), (
        f"cacert = {json.dumps(str(bed.pki.cacert))}\n"
        f"peers = [{json.dumps(bed.peers['good'])}, {json.dumps(bed.peers['chacha13'])}]\n"))
    before = tree_snapshot(root)
    env = {"FIPSBOOT_STATE_DIR": str(tmp_path / "state")}
    # Redis asks for a client certificate: without one the peer refuses in both modes
    r = run_json("--profile", str(profile), env=env, check=1)
    assert r["fips_environment"].startswith("temporary")
    assert r["fips_provider"].startswith(bed.version)
    assert tree_snapshot(root) == before and not (tmp_path / "state").exists()
    r = run_json("--profile", str(profile), "--cert", str(bed.client["cert"]),
                 "--key", str(bed.client["key"]), env=env, check=1)
    assert [p["status"] for p in r["peers"]] == ["works", "fails-in-fips"]


def test_install_and_verify_mention_tls_check(bed):
    profile = bed.profile("mention.toml", f'peers = [{json.dumps(bed.peers["good"])}]\n')
    r = fipsboot("verify", "--profile", str(profile), env=bed.env, check=0)
    assert "fipsboot tls-check --profile" in r.stdout
    r = fipsboot("verify", "--profile", str(profile), "--json", env=bed.env, check=0)
    assert any("fipsboot tls-check --profile" in n for n in json.loads(r.stdout)["notes"])
    r = fipsboot("install", "--profile", str(profile), "--dry-run", env=bed.env, check=0)
    assert "fipsboot tls-check --profile" in r.stdout
    plain = fipsboot("verify", "--profile", str(bed.inst.write_profile(name="no-tls.toml")),
                     env=bed.env, check=0)
    assert "tls-check" not in plain.stdout


def test_cacertdir_is_read_and_used_for_verification(bed, tmp_path):
    """A CApath-style folder (OpenSSL's hashed names) instead of cacert; a SHA-1-signed CA in
    it fails tls-signature-hash."""
    folder = tmp_path / "ca dir"
    folder.mkdir()
    subject_hash = subprocess.run(
        [str(bed.inst.openssl), "x509", "-hash", "-noout", "-in", str(bed.pki.cacert)],
        env={"LD_LIBRARY_PATH": str(bed.inst.lib64), "LANG": "C"}, capture_output=True,
        text=True, check=True).stdout.strip()
    (folder / f"{subject_hash}.0").write_bytes(bed.pki.cacert.read_bytes())
    profile = bed.profile("capath.toml", (
        f"cert = {json.dumps(str(bed.client['cert']))}\n"
        f"key = {json.dumps(str(bed.client['key']))}\n"
        f"cacertdir = {json.dumps(str(folder))}\n"
        f"peers = [{json.dumps(bed.peers['good'])}]\n"))
    r = run_json("--profile", str(profile), env=bed.env, check=0)
    assert r["peers"][0]["verdict"] == "works in FIPS mode"
    assert "cacertdir" in [c for c in r["checks"] if c["name"] == "tls-files"][0]["reason"]
    old = Pki(tmp_path / "old-pki", "Old CA")
    write_cert(folder / "old-ca.pem", new_cert(old.key, "Old CA", sha1=True))
    r = run_json("--profile", str(profile), env=bed.env, check=1)
    c = failing_check(r, "tls-signature-hash")
    assert f"cacertdir {folder / 'old-ca.pem'}: CN=Old CA is signed with SHA-1" in c["reason"]



def test_python_api_for_report_and_a_peer_that_never_answers(bed, monkeypatch):
    """`tls_check()` as `report` calls it: a JSON-able dict. A peer that accepts the connection
    and says nothing is bounded by the time limit and fails in both modes."""
    import socket

    from fipsboot import profile as profile_mod
    from fipsboot import tlshandshake
    from fipsboot.tlscheck import tls_check

    monkeypatch.setenv("FIPSBOOT_STATE_DIR", bed.env["FIPSBOOT_STATE_DIR"])
    monkeypatch.setattr(tlshandshake, "TIMEOUT", 2.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        spec = f"127.0.0.1:{silent.getsockname()[1]}"
        profile = profile_mod.load(bed.profile("api.toml", f"cacert = {json.dumps(str(bed.pki.cacert))}\n"))
        result = tls_check(profile, peers=[spec, bed.peers["ed25519"]], cert=str(bed.client["cert"]),
                           key=str(bed.client["key"]))
    data = json.loads(json.dumps(result, default=lambda o: o.to_json()))
    assert {"ok", "checks", "peers", "summary", "exit_code"} <= set(data)
    silent_peer, ed_peer = data["peers"]
    assert silent_peer["verdict"] == f"fails in both modes: {spec} did not answer within the " \
                                     "time limit"
    assert silent_peer["handshakes"]["fips"]["timed_out"] is True
    assert ed_peer["ok"] and data["ok"] is False and data["exit_code"] == 1
    mine = {"cert": str(bed.client["cert"]), "key": str(bed.client["key"])}
    # the Ed25519 finding is a warning: it fails the verdict only when strict
    assert tls_check(profile, peers=[bed.peers["ed25519"]], strict=True, **mine)["ok"] is False
    assert tls_check(profile, peers=[bed.peers["ed25519"]], **mine)["ok"] is True
