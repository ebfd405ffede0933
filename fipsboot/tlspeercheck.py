"""tls-check's live part: shake hands with each peer through the installation's openssl, in the
FIPS environment the server gets and in the non-FIPS one, plus two diagnostic handshakes
without FIPS (only FIPS cipher suites; only approved groups) that tell "the peer offers only
ChaCha20-Poly1305" from other failures; then judge each peer and what in it is not approved."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from .checks import Check, failed, passed, warned
from .openssl import OpenSSL
from .profile import TlsSettings
from .tlshandshake import Handshake, run_handshakes, s_client_args
from .tlsmaterial import (
    MaterialError,
    host_matches,
    judge_cert_key,
    parse_certs,
    signature_hash,
    subject,
    weak_signatures,
)
from .tlspeer import Peer, parse_peer
from .tlsverdict import FIPS_CIPHER_ARGS, FIPS_GROUP_ARGS, WORKS, judge

PROBES = (("fips", None), ("non-fips", None), ("non-fips, FIPS ciphers only", FIPS_CIPHER_ARGS),
          ("non-fips, approved groups only", FIPS_GROUP_ARGS))


def peer_chain(*handshakes: Handshake) -> list:
    for h in handshakes:
        if h.chain:
            try:
                return parse_certs("\n".join(h.chain).encode(), "the peer's chain")
            except MaterialError:
                continue
    return []


def peer_findings(peer: Peer, results: Dict[str, Handshake], sentence: str, facts: dict,
                  fips_sigs: Optional[set]) -> List[Check]:
    """What in the peer is not FIPS-approved, whatever the handshake did; each says what this
    installation's OpenSSL did with it in FIPS mode."""
    fips, plain = results["fips"], results["non-fips"]
    chain = peer_chain(plain, fips)
    outcome = (f" (OpenSSL {facts.get('libcrypto_version') or '?'}, FIPS provider "
               f"{facts.get('fips_version') or '?'}: {sentence})")
    found = []
    for text in weak_signatures(
            ("the peer's certificate" if i == 0 else f"chain certificate {i}", c)
            for i, c in enumerate(chain)):
        found.append(warned("tls-peer-signature-hash", f"{peer.spec}: {text}" + outcome,
                            "reissue the peer's certificate signed with SHA-256 or better",
                            peer=peer.spec))
    if chain:
        v = judge_cert_key(chain[0], fips_sigs)
        if not v.ok:
            found.append(warned("tls-peer-key", f"{peer.spec}: the peer's key is {v.why}" + outcome,
                                "reissue the peer's certificate with an RSA-2048+ or ECDSA "
                                "P-256/P-384 key", peer=peer.spec, key=v.label))
    if chain:
        # s_client checks the chain, not the name: a certificate issued to another host
        # verifies, but a client that checks the host name (as it should) refuses it
        named, names = host_matches(chain[0], peer.host)
        if not named:
            found.append(warned("tls-peer-hostname", f"{peer.spec}: the peer's certificate "
                                f"{subject(chain[0])} is issued to "
                                f"{', '.join(names) or 'no host name'}, not to {peer.host}: a "
                                "client that checks the host name refuses it",
                                f"reissue the peer's certificate with {peer.host} in its "
                                "subjectAltName, or name the peer in [tls] peers / --peer by a "
                                "name the certificate carries", peer=peer.spec, names=names))
    probe = results["non-fips, approved groups only"]
    if plain.ok and not probe.negotiated:
        found.append(warned("tls-peer-group", f"{peer.spec}: the peer offers only the "
                            f"{plain.group or 'non-approved'} group, no approved one (P-256, "
                            "P-384, P-521, ffdhe)" + outcome,
                            "let the peer offer P-256 or P-384 as well", peer=peer.spec,
                            group=plain.group))
    return found


def check_peers(openssl: OpenSSL, tls: TlsSettings, fips_env: Dict[str, str],
                plain_env: Dict[str, str], facts: dict) -> Tuple[List[Check], List[dict]]:
    peers = [parse_peer(spec) for spec in tls.peers]
    jobs = []
    for peer in peers:
        args = s_client_args(peer, tls)  # s_client opens the files itself, as the server does
        for name, extra in PROBES:
            jobs.append((name, [*args, *(extra or [])], fips_env if name == "fips" else plain_env))
    handshakes = run_handshakes(openssl, jobs)
    fips_sigs = set(facts.get("signature_algorithms") or []) or None
    fips_groups = set(facts.get("key_exchange_algorithms") or [])
    checks: List[Check] = []
    reports = []
    for i, peer in enumerate(peers):
        results = {h.env_name: h for h in handshakes[i * len(PROBES):(i + 1) * len(PROBES)]}
        fips, plain = results["fips"], results["non-fips"]
        v = judge(peer, fips, plain, results["non-fips, FIPS ciphers only"],
                  results["non-fips, approved groups only"], fips_groups)
        details = {"peer": peer.spec, "status": v.status}
        checks.append(passed("tls-peer", f"{peer.spec}: {v.sentence}", **details)
                      if v.status == WORKS else
                      failed("tls-peer", f"{peer.spec}: {v.sentence}", v.fix, **details))
        findings = peer_findings(peer, results, v.sentence, facts, fips_sigs)
        checks += findings
        chain = peer_chain(plain, fips)
        reports.append({
            "peer": peer.spec, "ok": v.status == WORKS, "status": v.status,
            "verdict": v.sentence, "fix": v.fix, "sni": tls.sni,
            "findings": [f.reason for f in findings],
            "chain": [{"subject": subject(c), "key": judge_cert_key(c, fips_sigs).label,
                       "signature_hash": signature_hash(c)} for c in chain],
            "handshakes": {name: h.to_json() for name, h in results.items()},
        })
    return checks, reports
