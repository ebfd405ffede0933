"""The verdict on one peer in plain words, from what OpenSSL printed in each mode:
"works in FIPS mode", "works today, fails in FIPS mode: <reason>" or
"fails in both modes: <reason>"."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .tlshandshake import Handshake
from .tlspeer import Peer

WORKS = "works"
FIPS_FAILS = "fails-in-fips"
BOTH_FAIL = "fails-in-both"

# Cipher families FIPS mode does not offer, as OpenSSL names them in suites.
NON_APPROVED_CIPHERS = {"CHACHA20": "ChaCha20-Poly1305", "CAMELLIA": "Camellia", "ARIA": "ARIA",
                        "SEED": "SEED", "IDEA": "IDEA", "RC4": "RC4"}
# The diagnostic handshakes (without FIPS): only what FIPS mode offers, one aspect at a time.
FIPS_CIPHER_ARGS = ["-ciphersuites", "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256",
                    "-cipher", "DEFAULT:" + ":".join(f"!{c}" for c in NON_APPROVED_CIPHERS)]
FIPS_GROUP_ARGS = ["-groups", "P-256:P-384:P-521:ffdhe2048:ffdhe3072:ffdhe4096"]
# unable to get issuer / self-signed leaf / self-signed in chain / local issuer / leaf /
# not trusted: each means "the CA (or the self-signed certificate itself) is not in cacert"
NOT_TRUSTED = {2, 18, 19, 20, 21, 27}

FIX_CIPHER = ("let the peer offer an AES-GCM suite (TLS 1.3: TLS_AES_256_GCM_SHA384 or "
              "TLS_AES_128_GCM_SHA256; TLS 1.2: ECDHE-RSA-AES256-GCM-SHA384)")
FIX_CERT = ("reissue the peer's certificate with an RSA-2048+ or ECDSA P-256/P-384 key, signed "
            "with SHA-256 or better")
FIX_GENERIC = "compare the raw OpenSSL lines of both handshakes (--json, details)"


@dataclass
class Verdict:
    status: str
    sentence: str
    fix: Optional[str]


def cipher_family(cipher: Optional[str]) -> Optional[str]:
    for token, name in NON_APPROVED_CIPHERS.items():
        if cipher and token in cipher.upper():
            return name
    return None


def failure(h: Handshake, peer: Peer) -> tuple:
    """(reason, fix) for a handshake that did not work, from what OpenSSL printed."""
    text = " ".join(h.errors)
    if h.timed_out:
        return (f"{peer.spec} did not answer within the time limit",
                "check that HOST:PORT is the peer's TLS port and that a firewall lets it through")
    if "Connection refused" in text:
        return (f"nothing is listening on {peer.spec} (connection refused)",
                "start the peer, or correct HOST:PORT in [tls] peers / --peer")
    if "BIO_lookup" in text or "lookup" in text.lower() or "not known" in text:
        return (f"{peer.host} cannot be resolved", "correct the host name in [tls] peers / --peer")
    if any(w in text for w in ("No route", "unreachable", "timed out")):
        return (f"{peer.spec} cannot be reached ({'; '.join(h.errors)})",
                "check the network path to the peer")
    if h.negotiated and not h.verified and h.verify_code is not None:
        why = f"the peer's certificate does not verify: {h.verify_message}"
        if h.verify_code in NOT_TRUSTED:
            why += " (the CA that signed it is not in cacert/cacertdir)"
            fix = "put the CA that signed the peer's certificate into cacert (or cacertdir)"
        else:
            fix = FIX_CERT
        if any("unknown ca" in a for a in h.alerts):
            why += "; and the peer does not trust the server's client certificate"
        return why, fix
    if any("unknown ca" in a or "bad certificate" in a for a in h.alerts):
        return ("the peer does not trust the server's client certificate "
                f"({', '.join(h.alerts)})",
                "have the peer trust the CA that signed cert, or use a certificate it trusts")
    if any("certificate required" in a for a in h.alerts):
        return ("the peer requires a client certificate and none is configured",
                "set cert and key in [tls]")
    if h.alerts:
        return f"the peer refused the handshake ({', '.join(h.alerts)})", FIX_GENERIC
    if h.errors:
        return f"OpenSSL: {'; '.join(h.errors)}", FIX_GENERIC
    return f"no TLS handshake (openssl exit {h.returncode})", FIX_GENERIC


def judge(peer: Peer, fips: Handshake, plain: Handshake, ciphers_probe: Optional[Handshake],
          groups_probe: Optional[Handshake], fips_groups: set) -> Verdict:
    if fips.ok:
        return Verdict(WORKS, "works in FIPS mode", None)
    if not plain.ok:
        why, fix = failure(plain, peer)
        return Verdict(BOTH_FAIL, f"fails in both modes: {why}", fix)
    why, fix = fips_only_failure(peer, fips, plain, ciphers_probe, groups_probe, fips_groups)
    return Verdict(FIPS_FAILS, f"works today, fails in FIPS mode: {why}", fix)


def fips_only_failure(peer: Peer, fips: Handshake, plain: Handshake,
                      ciphers_probe: Optional[Handshake], groups_probe: Optional[Handshake],
                      fips_groups: set) -> tuple:
    if fips.negotiated and not fips.verified:
        return (f"the peer's certificate does not verify in FIPS mode: {fips.verify_message}",
                FIX_CERT)
    family = cipher_family(plain.cipher)
    if family and ciphers_probe is not None and not ciphers_probe.negotiated:
        return (f"the peer offers only {family} (without FIPS it negotiated {plain.cipher}), "
                "which FIPS mode does not offer", FIX_CIPHER)
    if family:
        return (f"the handshake fails ({'; '.join(fips.errors) or 'no handshake'}); without FIPS "
                f"the peer chose {plain.cipher} ({family}, not FIPS-approved)", FIX_CIPHER)
    group = (plain.group or "").upper()
    if (groups_probe is not None and not groups_probe.negotiated and group
            and group not in fips_groups):
        return (f"the peer offers only the {plain.group} group, which this FIPS provider does "
                "not offer", "let the peer offer P-256, P-384 or an ffdhe group")
    why, fix = failure(fips, peer)
    return (f"{why}; without FIPS it negotiated {plain.protocol} {plain.cipher}",
            fix if fix != FIX_GENERIC else FIX_GENERIC)
