"""tls-check's parsing and wording on canned OpenSSL output (taken from real runs on the 3.0
test bed), and the [tls] profile section. The end-to-end tests are in test_tlscheck.py."""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from helpers import fipsboot
from tlspeers import new_cert, new_key

from fipsboot import profile as profile_mod
from fipsboot.errors import ProfileError
from fipsboot.tlscheck import listed_algorithms
from fipsboot.tlshandshake import parse
from fipsboot.tlsmaterial import host_matches
from fipsboot.tlspeer import parse_peer
from fipsboot.tlsverdict import BOTH_FAIL, FIPS_FAILS, WORKS, judge

GOOD = """CONNECTED(00000003)
---
Peer signing digest: SHA256
Peer signature type: RSA-PSS
Server Temp Key: X25519, 253 bits
---
New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384
Verify return code: 0 (ok)
---
"""
CHACHA_FIPS = """CONNECTED(00000003)
---
New, (NONE), Cipher is (NONE)
Verify return code: 0 (ok)
""", ("802B776F467F0000:error:0A000410:SSL routines:ssl3_read_bytes:sslv3 alert handshake "
      "failure:ssl/record/rec_layer_s3.c:1602:SSL alert number 40\n")
CHACHA_PLAIN = GOOD.replace("TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
REFUSED = ("80FB4F31987F0000:error:8000006F:system library:BIO_connect:Connection refused:"
           "crypto/bio/bio_sock2.c:117:calling connect()\nconnect:errno=111\n")
PEER = parse_peer("127.0.0.1:6379")


def test_parse_a_working_handshake():
    h = parse("fips", GOOD, "depth=0 CN = x\nverify return:1\n", 0)
    assert (h.protocol, h.cipher, h.group, h.verify_code) == \
        ("TLSv1.3", "TLS_AES_256_GCM_SHA384", "X25519", 0)
    assert h.ok and h.raw[0] == "CONNECTED(00000003)"


def test_parse_ecdh_group_and_35_group_line():
    h = parse("fips", GOOD.replace("X25519, 253 bits", "ECDH, prime256v1, 256 bits"), "", 0)
    assert h.group == "prime256v1"
    h = parse("fips", GOOD + "Negotiated TLS1.3 group: X25519MLKEM768\n", "", 0)
    assert h.group == "X25519MLKEM768"


def test_verdicts_in_plain_words():
    fips = parse("fips", *CHACHA_FIPS, 1)
    plain = parse("non-fips", CHACHA_PLAIN, "", 0)
    probe = parse("non-fips, FIPS ciphers only", *CHACHA_FIPS, 1)
    v = judge(PEER, fips, plain, probe, plain, set())
    assert v.status == FIPS_FAILS and v.sentence == (
        "works today, fails in FIPS mode: the peer offers only ChaCha20-Poly1305 (without FIPS "
        "it negotiated TLS_CHACHA20_POLY1305_SHA256), which FIPS mode does not offer")
    refused = parse("fips", "", REFUSED, 1)
    v = judge(PEER, refused, refused, refused, refused, set())
    assert v.status == BOTH_FAIL
    assert v.sentence == "fails in both modes: nothing is listening on 127.0.0.1:6379 " \
                         "(connection refused)"
    good = parse("fips", GOOD, "", 0)
    assert judge(PEER, good, good, good, good, set()).sentence == "works in FIPS mode"
    assert judge(PEER, good, good, good, good, set()).status == WORKS


def test_a_late_alert_fails_a_negotiated_handshake():
    """TLS 1.3: the peer rejects the client certificate after the handshake, with an alert."""
    h = parse("fips", GOOD, "4097:error:0A00041B:SSL routines:ssl3_read_bytes:tlsv1 alert "
              "unknown ca:../ssl/record/rec_layer_s3.c:1601:SSL alert number 48\n", 1)
    assert h.negotiated and not h.ok
    v = judge(PEER, h, h, h, h, set())
    assert "does not trust the server's client certificate" in v.sentence


def test_listed_algorithms():
    out = ("  { 1.2.840.113549.1.1.1, 2.5.8.1.1, RSA, rsaEncryption } @ fips\n"
           "  { 1.3.101.112, ED25519 } @ fips\n  ECDSA @ fips\n  HMAC @ default\n")
    assert {"RSA", "ED25519", "ECDSA", "RSAENCRYPTION"} <= listed_algorithms(out)
    assert "HMAC" not in listed_algorithms(out)


@pytest.mark.parametrize("spec, want", [("redis-1.example:6379", "redis-1.example:6379"),
                                        ("[::1]:6380", "[::1]:6380")])
def test_peer_specs(spec, want):
    assert parse_peer(spec).spec == want


@pytest.mark.parametrize("spec", ["-oops:1", "a:0", "a", "a:b:1", "a b:1", "host:70000"])
def test_bad_peer_specs(spec):
    with pytest.raises(ValueError):
        parse_peer(spec)


def test_tls_section_parsed():
    raw = {"server": {"install-dir": "/opt/ors"},
           "tls": {"cert": "/t/c.pem", "key": "/t/k.pem", "sni": "redis.example",
                   "peers": ["r1:6379", "r1:6379", "r2:6380"]}}
    p = profile_mod.parse(raw, Path("/p.toml"))
    assert p.tls.peers == ("r1:6379", "r2:6380") and p.tls.sni == "redis.example"
    assert profile_mod.parse({"server": {"install-dir": "/opt/ors"}}, Path("/p.toml")).tls is None
    with pytest.raises(ProfileError, match=r"\[tls\] sni: must be a host name"):
        profile_mod.parse({**raw, "tls": {"sni": "-x"}}, Path("/p.toml"))


@pytest.mark.parametrize("tls, message", [
    ('peers = ["no-port"]\n', "[tls] peers: 'no-port': expected HOST:PORT"),
    ('peers = ["-oProxyCommand=x:1"]\n', "is not a host name or IP address"),
    ('cert = "relative.pem"\n', "[tls] cert: must be an absolute path"),
    ('certificate = "/x.pem"\n', "[tls] certificate: unknown key"),
    ('sni = 5\n', "[tls] sni: must be a str"),
    ('peers = "a:1"\n', "[tls] peers: must be a list of strings"),
])
def test_bad_tls_section_is_a_profile_error(tmp_path, tls, message):
    """Exit 2 with the file and the key named, for tls-check and the other commands alike."""
    profile = tmp_path / "bad.toml"
    profile.write_text(f'[server]\ninstall-dir = "{tmp_path}"\n[tls]\n{tls}')
    for command in ("tls-check", "verify"):
        r = fipsboot(command, "--profile", str(profile), check=2)
        assert message in r.stderr and str(profile) in r.stderr and "Traceback" not in r.stderr


def test_host_matches_as_openssl_checks_names():
    """subjectAltName DNS names (the CN only when there are none), "*." for exactly one
    left-most label, IP addresses against IP entries only."""
    cert = new_cert(new_key(), "ignored-cn")  # SAN: DNS localhost, IP 127.0.0.1
    assert host_matches(cert, "localhost") == (True, ["localhost"])
    assert host_matches(cert, "LOCALHOST.")[0]
    assert not host_matches(cert, "ignored-cn")[0]  # a SAN DNS name hides the CN
    assert host_matches(cert, "127.0.0.1") == (True, ["127.0.0.1"])
    assert not host_matches(cert, "127.0.0.2")[0]
    key = new_key()
    base = cert  # reuse its validity; build a wildcard certificate
    wild = (x509.CertificateBuilder().subject_name(base.subject).issuer_name(base.subject)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(base.not_valid_before_utc).not_valid_after(base.not_valid_after_utc)
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("*.redis.example"), x509.DNSName("*.com"),
                x509.IPAddress(ipaddress.ip_address("::1"))]), False)
            .sign(key, hashes.SHA256()))
    assert host_matches(wild, "node1.redis.example")[0]
    assert not host_matches(wild, "a.node1.redis.example")[0]
    assert not host_matches(wild, "redis.example")[0]
    assert not host_matches(wild, "example.com")[0]  # "*.com" matches nothing
    assert host_matches(wild, "::1")[0] and not host_matches(wild, "localhost")[0]
