"""The checks that start the installation's openssl with a launch environment and judge by what
it prints, never by its exit code alone (`openssl list -providers` exits 0 when the FIPS provider
failed to load)."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Mapping

from .checks import Check, failed, passed
from .configchecks import REINSTALL
from .errors import FipsbootError

if TYPE_CHECKING:  # imported where used: the wrapper's warm path starts no process
    from .openssl import OpenSSL


def live_checks(openssl: OpenSSL, env: Mapping[str, str], label: str = "",
                sha256: bool = True) -> List[Check]:
    """`providers` and `negative-probe` from openssl runs started together. The wrapper's
    start-up skips the SHA-256 run: the active fips provider it proves ran its own SHA-2
    self-tests, and on 2 cores a third self-testing process is what the start waits on."""
    try:
        listing, md5, sha = openssl.probe(env, sha256)
    except FipsbootError as e:
        return [failed("providers", str(e), e.fix or REINSTALL),
                failed("negative-probe", str(e), e.fix or REINSTALL)]
    return [providers_check(listing, label), negative_probe_check(md5, sha)]


def providers_check(listing, label: str = "") -> Check:
    where = f" (environment of {label})" if label else ""
    from .openssl import parse_listing

    try:
        found = parse_listing(listing)
    except FipsbootError as e:
        return failed("providers", f"{e}{where}", e.fix or REINSTALL)
    details = {name: p.fields for name, p in found.items()}
    fips, base = found.get("fips"), found.get("base")
    version = base.version if base else None
    if "default" in found:
        return failed("providers", f"the non-FIPS default provider is loaded{where}: the FIPS "
                      "configuration was not applied (a missing include with config_diagnostics "
                      "= 0 falls back silently)", REINSTALL, providers=details)
    if fips is None:
        return failed("providers", f"the fips provider is not loaded{where} (it failed its "
                      "integrity check, its module-mac is stale, a fipsmodule.cnf value is bad, "
                      "or OPENSSL_MODULES does not name its folder); `openssl list -provider "
                      "fips -providers` shows the reason", REINSTALL, providers=details)
    if "FIPS" not in fips.fields.get("name", "").upper():
        return failed("providers", f"the provider loaded as fips is {fips.fields.get('name')!r}"
                      f"{where}, not a FIPS provider", REINSTALL, providers=details)
    if not fips.active:
        return failed("providers", f"the fips provider is {fips.fields.get('status')}{where}",
                      REINSTALL, providers=details)
    if base is None or not base.active:
        return failed("providers", f"the base provider is not active{where}: PEM keys "
                      "can't be decoded", REINSTALL, providers=details)
    return passed("providers", f"fips {fips.version} active, base active (libcrypto {version})"
                  + where, fips_version=fips.version, libcrypto_version=version,
                  providers=details)


def negative_probe_check(md5, sha) -> Check:
    if md5.returncode == 0:
        return failed("negative-probe", "MD5 was allowed: the process is not restricted to "
                      "FIPS-approved algorithms", REINSTALL, md5=md5.output)
    if sha is None:
        return passed("negative-probe", "MD5 refused")
    if sha.returncode != 0:
        return failed("negative-probe", "SHA-256 failed: " + sha.output, REINSTALL)
    return passed("negative-probe", "MD5 refused, SHA-256 works")


def check_nonfips_providers(openssl: OpenSSL, env: Mapping[str, str]) -> Check:
    try:
        found = openssl.list_providers(env)
    except FipsbootError as e:
        return failed("providers", str(e), "fipsboot reset --profile PROFILE")
    if "fips" in found:
        return failed("providers", "the fips provider is loaded in non-FIPS mode",
                      "fipsboot reset --profile PROFILE")
    if "default" not in found:
        return failed("providers", "the default provider is not loaded in non-FIPS mode "
                      f"(found: {', '.join(found) or 'none'})", "fipsboot reset --profile PROFILE")
    return passed("providers", "non-FIPS: default provider active, fips not loaded")
