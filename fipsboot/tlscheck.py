"""`fipsboot tls-check`: will the server's TLS connections still work in FIPS mode?

Read-only. Static checks judge the server's own certificate, key and CAs with `cryptography`;
live checks shake hands with each peer through the installation's own openssl, once with the
FIPS environment the server gets and once with the non-FIPS one, and say in plain words which
works and why not. Two diagnostic handshakes without FIPS (only FIPS cipher suites; only
approved groups) tell "the peer offers only ChaCha20-Poly1305" from other failures.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
from dataclasses import replace
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from . import environ, opensslcnf, verify
from .checks import Check, failed, passed, verdict_ok, warned
from .errors import FipsbootError, UsageError
from .layout import Layout
from .openssl import OpenSSL
from .profile import Profile, TlsSettings
from .session import readonly_session
from .tlsmaterial import (
    MaterialError,
    judge_cert_key,
    judge_key,
    keys_match,
    load_cert_dir,
    load_certs,
    load_key,
    subject,
    validity_problems,
    weak_signatures,
)
from .tlspeer import parse_peer
from .tlspeercheck import check_peers

FIX_FILES = ("point each option at a readable PEM file: certificates for cert and cacert, an "
             "unencrypted private key for key")


def settings(profile: Profile, peers: Sequence[str] = (), cert: Optional[str] = None,
             key: Optional[str] = None, cacert: Optional[str] = None) -> TlsSettings:
    """The profile's [tls] with the command line on top (--peer adds, the rest override)."""
    base = profile.tls or TlsSettings()
    extra = []
    for spec in peers:
        try:
            extra.append(parse_peer(spec).spec)
        except ValueError as e:
            raise UsageError(f"--peer {e}", "give the peer as HOST:PORT") from None
    given = {k: os.path.abspath(v) for k, v in (("cert", cert), ("key", key), ("cacert", cacert))
             if v is not None}
    tls = replace(base, peers=tuple(dict.fromkeys([*base.peers, *extra])), **given)
    if not (tls.peers or tls.cert or tls.key or tls.cacert or tls.cacertdir):
        raise UsageError(f"{profile.source}: nothing to check: no [tls] section and no --peer, "
                         "--cert, --key or --cacert",
                         'add [tls] with peers = ["HOST:PORT"] (and cert, key, cacert) to the '
                         "profile, or pass --peer HOST:PORT")
    return tls


# --- the FIPS environment the server gets -------------------------------------------------

@contextlib.contextmanager
def fips_environment(session) -> Iterator[Tuple[Dict[str, str], str]]:
    """The launch environment of FIPS mode when the installation has its config files;
    before `install`, the same built in a private temporary folder (fipsinstall there), so the
    question can be answered before the switch. Nothing of the installation is written."""
    layout = session.layout
    if layout.host(layout.openssl_cnf).is_file() and layout.host(layout.fipsmodule_cnf).is_file():
        yield session.launch_environment(environ.FIPS), "installed"
        return
    if layout.windows:
        raise UsageError(f"{layout.openssl_cnf} does not exist yet",
                         "run `fipsboot install --profile PROFILE` first")
    openssl = OpenSSL(layout)
    with tempfile.TemporaryDirectory(prefix="fipsboot-tls-") as tmp:
        empty = os.path.join(tmp, "empty.cnf")
        module_cnf = os.path.join(tmp, "fipsmodule.cnf")
        cnf = os.path.join(tmp, "openssl.cnf")
        open(empty, "w").close()
        env = openssl.env({**environ.values(layout, environ.FIPS), "OPENSSL_CONF": empty})
        report = openssl.fipsinstall(layout.module, module_cnf,
                                     layout.profile.fipsinstall_options, env)
        if not report.passed or not os.path.isfile(module_cnf):
            raise FipsbootError("fipsinstall failed in a temporary folder:\n" + report.raw,
                                "run `fipsboot verify --profile PROFILE` for the module's state")
        with open(cnf, "w", encoding="utf-8") as f:
            f.write(opensslcnf.render(layout, module_cnf))
        env = session.launch_environment(environ.FIPS)
        env["OPENSSL_CONF"] = cnf
        yield env, "temporary (not installed yet)"


def listed_algorithms(output: str) -> set:
    """Names the fips provider lists in `openssl list -signature-algorithms` (or
    -key-exchange-algorithms), upper case: '{ 1.3.101.112, ED25519 } @ fips' gives ED25519."""
    names = set()
    for line in output.splitlines():
        m = re.match(r"\s*(?:\{(.*)\}|(\S+))\s*@\s*fips\s*$", line)
        if m:
            names.update(n.strip().upper() for n in (m.group(1) or m.group(2)).split(","))
    return names


def provider_facts(openssl: OpenSSL, env: Dict[str, str]) -> Tuple[Check, dict]:
    try:
        listing, sigs, kex = openssl.run_together(
            [(["list", "-providers"], b""), (["list", "-signature-algorithms"], b""),
             (["list", "-key-exchange-algorithms"], b"")], env)
    except FipsbootError as e:
        return failed("tls-fips-provider", str(e), verify.REINSTALL), {}
    check = verify.providers_check(listing)
    facts = {"fips_version": check.details.get("fips_version"),
             "libcrypto_version": check.details.get("libcrypto_version"),
             "signature_algorithms": sorted(listed_algorithms(sigs.stdout)),
             "key_exchange_algorithms": sorted(listed_algorithms(kex.stdout))}
    return replace(check, name="tls-fips-provider", details=facts), facts


# --- the server's own material --------------------------------------------------------------

def static_checks(tls: TlsSettings, layout: Layout, provider_sigs: Optional[set]) -> List[Check]:
    def host(path: str) -> str:
        return str(layout.host(path))

    problems: List[str] = []
    chain, key, cas = None, None, []
    if tls.cert:
        try:
            chain = load_certs(host(tls.cert), "cert")
        except MaterialError as e:
            problems.append(str(e))
    if tls.key:
        try:
            key = load_key(host(tls.key))
        except MaterialError as e:
            problems.append(str(e))
    if tls.cacert:
        try:
            cas += [(f"cacert {tls.cacert}", c) for c in load_certs(host(tls.cacert), "cacert")]
        except MaterialError as e:
            problems.append(str(e))
    if tls.cacertdir:
        try:
            for path, certs in load_cert_dir(host(tls.cacertdir)):
                cas += [(f"cacertdir {path}", c) for c in certs]
        except MaterialError as e:
            problems.append(str(e))
    given = [k for k in ("cert", "key", "cacert", "cacertdir") if getattr(tls, k)]
    if not given:
        return []
    checks = [failed("tls-files", "; ".join(problems), FIX_FILES) if problems else
              passed("tls-files", f"{', '.join(given)}: readable and parsed")]

    if bool(tls.cert) != bool(tls.key):
        have, missing = ("cert", "key") if tls.cert else ("key", "cert")
        checks.append(failed("tls-cert-key", f"{have} is set without {missing}: the server "
                             "can't present a client certificate (tls-cert and tls-key go "
                             "together)", "set both cert and key in [tls], or neither"))
    elif tls.cert:
        checks.append(passed("tls-cert-key", "cert and key are given together"))
    if chain and key is not None:
        match = keys_match(chain[0], key)
        if match:
            checks.append(passed("tls-key-match", f"the key matches {subject(chain[0])}"))
        elif match is None:
            checks.append(failed("tls-key-match", f"can't tell whether the key {tls.key} belongs "
                                 f"to {subject(chain[0])} in {tls.cert}: the certificate's key "
                                 "type is not supported (see tls-key-type)",
                                 "use an RSA-2048+ or ECDSA P-256/P-384 key and certificate"))
        else:
            checks.append(failed("tls-key-match", f"the key {tls.key} does not belong to the "
                                 f"certificate {subject(chain[0])} in {tls.cert}: the server "
                                 "can't use them", "point key at the private key of cert (or "
                                 "cert at the certificate of key)"))
    v = (judge_cert_key(chain[0], provider_sigs) if chain else
         judge_key(key.public_key(), provider_sigs) if key is not None else None)
    if v is not None:
        if v.ok:
            checks.append(passed("tls-key-type", f"{v.label}: FIPS-approved", key=v.label))
        else:
            make = warned if v.unsure else failed
            checks.append(make("tls-key-type", v.why, "use an RSA-2048+ or ECDSA P-256/P-384 key "
                               "and certificate", key=v.label))
    own = [(f"cert {tls.cert}", c) for c in chain or []]
    if own or cas:
        weak = weak_signatures(own + cas)
        checks.append(failed("tls-signature-hash", "; ".join(weak) + ": FIPS mode refuses SHA-1 "
                             "and MD5 signatures", "reissue each certificate named with SHA-256 "
                             "or better") if weak else
                      passed("tls-signature-hash", f"{len(own) + len(cas)} certificate(s) "
                             "signed with an approved hash"))
        errors, warnings = validity_problems(own + cas)
        if errors:
            checks.append(failed("tls-validity", "; ".join(errors), "renew each certificate named"))
        elif warnings:
            checks.append(warned("tls-validity", "; ".join(warnings),
                                 "renew each certificate named before it expires"))
        else:
            checks.append(passed("tls-validity", "every certificate is within its validity dates"))
    return checks


# --- the command ----------------------------------------------------------------------------

def tls_check(profile: Profile, peers: Sequence[str] = (), cert: Optional[str] = None,
              key: Optional[str] = None, cacert: Optional[str] = None,
              strict: bool = False) -> dict:
    """Static checks of the server's TLS material and a FIPS / non-FIPS handshake with each
    peer. JSON-able: ok, exit_code, summary, checks, peers. Raises UsageError (exit 2) when
    there is nothing to check or an argument is malformed."""
    tls = settings(profile, peers, cert, key, cacert)
    session = readonly_session(profile)
    layout = session.layout
    with fips_environment(session) as (fips_env, source):
        openssl = OpenSSL(layout, fips_env)
        provider_check, facts = provider_facts(openssl, fips_env)
        checks = [provider_check]
        sigs = set(facts.get("signature_algorithms") or []) or None
        checks += static_checks(tls, layout, sigs)
        reports: List[dict] = []
        if tls.peers and provider_check.ok:
            plain_env = session.launch_environment(environ.NONFIPS)
            peer_checks, reports = check_peers(openssl, tls, fips_env, plain_env, facts)
            checks += peer_checks
    ok = verdict_ok(checks, strict)
    working = sum(1 for r in reports if r["ok"])
    failing = [c for c in checks if c.fails(strict)]
    if reports:
        peers_said = f"{working} of {len(reports)} peer(s) work in FIPS mode"
    elif tls.peers:
        peers_said = "peers not checked: the FIPS environment has no active fips provider"
    else:
        peers_said = "no peers given (only the server's own certificate, key and CAs checked)"
    summary = f"{peers_said}; " + (f"{len(failing)} check(s) fail" if failing else "no check fails")
    return {"ok": ok, "exit_code": 0 if ok else 1, "strict": strict, "summary": summary,
            "fips_environment": source, "fips_provider": facts.get("fips_version"),
            "checks": checks, "peers": reports}
