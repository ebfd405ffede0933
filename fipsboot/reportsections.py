"""The sections of `fipsboot report`, one function each: an id, a title, a result (ok: true /
false / null for "information only"), a one-line summary, its data and the raw outputs it was
judged from. A section that can't gather its evidence says so; it never sinks the report."""
from __future__ import annotations

import datetime
import importlib
import json
import os
import platform
import shutil
import socket
import tempfile
from typing import Callable, Dict, List, Optional

from . import __version__, cmvp, environ, fipsmodule, fsutil, verify
from .checks import Check
from .errors import FipsbootError
from .journal import Journal
from .layout import Layout
from .openssl import OpenSSL


def section(sid: str, title: str, ok: Optional[bool], summary: str, data: Optional[dict] = None,
            raw: Optional[List[dict]] = None, severity: str = "error") -> dict:
    """ok: True passed, False failed (a "warning" fails only under --strict), None information."""
    return {"id": sid, "title": title, "ok": ok, "severity": severity, "summary": summary,
            "data": data or {}, "raw": raw or []}


def raw_output(label: str, result) -> dict:
    """A command's output as evidence: the command line, its exit code, what it printed."""
    return {"label": label, "command": " ".join(result.args), "exit_code": result.returncode,
            "text": result.output}


def os_name() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return f"{platform.system()} {platform.release()}"


# --- the sections -----------------------------------------------------------------------

def host_section(profile, now: datetime.datetime) -> dict:
    try:
        text = profile.source.read_bytes()
    except OSError:
        text = b""
    data = {"host": socket.gethostname(), "os": os_name(), "kernel": platform.platform(),
            "time": now.isoformat(timespec="seconds"), "fipsboot_version": __version__,
            "profile": str(profile.source), "profile_sha256": fsutil.digest(text)}
    return section("host", "Host and profile", None,
                   f"{data['host']}, {data['os']}, {data['time']}, fipsboot {__version__}", data,
                   [{"label": f"profile {profile.source}", "command": None, "exit_code": None,
                     "text": text.decode("utf-8", "replace")}])


def mode_section(journal: Journal, mode: str) -> dict:
    recorded = journal.mode
    words = {environ.FIPS: "FIPS mode", environ.NONFIPS: "non-FIPS mode"}[mode]
    summary = words + ("" if recorded else " (no journal yet: fipsboot has not installed here; "
                       "judged as FIPS mode)")
    return section("mode", "Mode of the installation", None, summary,
                   {"mode": mode, "recorded_in_journal": recorded, "journal": str(journal.folder)})


def provider_section(openssl: OpenSSL, env: Dict[str, str]) -> dict:
    listing, version = openssl.run_together([(["list", "-providers", "-verbose"], b""),
                                             (["version", "-a"], b"")], env)
    raw = [raw_output("providers (verbose)", listing), raw_output("openssl version -a", version)]
    from .providers import parse

    try:
        found = parse(listing.stdout)
    except FipsbootError as e:
        return section("provider", "FIPS provider and libcrypto", False, str(e), {}, raw)
    first = (version.stdout.splitlines() or [""])[0]
    libcrypto = first.split()[1] if first.startswith("OpenSSL ") and len(first.split()) > 1 else None
    data = {"providers": {k: {f: p.fields.get(f) for f in ("name", "version", "status")}
                          for k, p in found.items()},
            "libcrypto_version": libcrypto, "openssl_version_line": first}
    fips = found.get("fips")
    if fips is None:
        summary = ("no fips provider loaded in this environment; loaded: "
                   + (", ".join(found) or "none") + f" (libcrypto {libcrypto})")
        return section("provider", "FIPS provider and libcrypto", None, summary, data, raw)
    # `-verbose` prints "build info" (its nested parameter list also names "buildinfo").
    build_info = fips.fields.get("build info") or fips.fields.get("buildinfo")
    data["fips"] = {"name": fips.fields.get("name"), "version": fips.version,
                    "build_info": build_info, "status": fips.fields.get("status")}
    summary = (f"{fips.fields.get('name')} {fips.version} (build {build_info}), "
               f"{fips.fields.get('status')}; libcrypto {libcrypto}")
    return section("provider", "FIPS provider and libcrypto", fips.active, summary, data, raw)


def module_mac_section(layout: Layout) -> dict:
    cnf_path = layout.host(layout.fipsmodule_cnf)
    raw = []
    try:
        text = cnf_path.read_text(encoding="utf-8")
        raw.append({"label": f"fipsmodule.cnf ({layout.fipsmodule_cnf})", "command": None,
                    "exit_code": None, "text": text})
        recorded = fipsmodule.parse(text).module_mac
    except (OSError, ValueError) as e:
        return section("module-mac", "Module MAC", False, f"fipsmodule.cnf unreadable: {e}", {}, raw)
    try:
        actual = fipsmodule.module_mac(layout.host(layout.module), layout.profile.fips_key)
    except OSError as e:
        return section("module-mac", "Module MAC", False, f"module unreadable: {e}", {}, raw)
    same = bool(recorded) and fipsmodule.normalise_mac(recorded) == fipsmodule.normalise_mac(actual)
    data = {"module": layout.module, "recomputed": actual, "in_fipsmodule_cnf": recorded,
            "match": same}
    summary = ("the module's HMAC-SHA256, recomputed now, matches fipsmodule.cnf" if same else
               "the module's HMAC-SHA256, recomputed now, does NOT match fipsmodule.cnf: the "
               "module changed since fipsinstall")
    return section("module-mac", "Module MAC", same, summary, data, raw)


def self_test_section(layout: Layout) -> dict:
    """A fresh `openssl fipsinstall` into a private temporary folder: the module's self-tests
    run now, and the MAC it computes is compared with the installed fipsmodule.cnf."""
    from .install import staged_env

    title = "Self-tests of the module (fresh fipsinstall)"
    if layout.windows:  # openssl.exe must see the folder: next to the config, by its own path
        host_tmp = tempfile.mkdtemp(prefix=".fipsboot-report-", dir=layout.host(layout.config_dir))
        native = str(layout.profile.pure_path(layout.config_dir) / os.path.basename(host_tmp))
    else:
        host_tmp = native = tempfile.mkdtemp(prefix="fipsboot-report-")
    try:
        sep = "\\" if layout.windows else "/"
        with open(os.path.join(host_tmp, "empty.cnf"), "w"):
            pass
        openssl = OpenSSL(layout)
        env = openssl.env(staged_env(layout, native + sep + "empty.cnf"))
        result = openssl.fipsinstall(layout.module, native + sep + "fipsmodule.cnf",
                                     layout.profile.fipsinstall_options, env)
        fresh_mac = None
        try:
            with open(os.path.join(host_tmp, "fipsmodule.cnf"), encoding="utf-8") as f:
                fresh_mac = fipsmodule.parse(f.read()).module_mac
        except (OSError, ValueError):
            pass
    finally:
        shutil.rmtree(host_tmp, ignore_errors=True)
    try:
        installed = verify.read_fipsmodule(layout).module_mac
    except (OSError, ValueError):
        installed = None
    same = bool(fresh_mac and installed) and \
        fipsmodule.normalise_mac(fresh_mac) == fipsmodule.normalise_mac(installed)
    data = {"passed": result.passed, "self_tests": result.self_tests,
            "failed_tests": result.failed_tests, "fresh_module_mac": fresh_mac,
            "matches_installed_fipsmodule_cnf": same}
    raw = [{"label": "openssl fipsinstall (into a private temporary file)", "command":
            f"openssl fipsinstall -module {layout.module} -out <temporary file>", "exit_code": None,
            "text": result.raw}]
    n = len(result.self_tests)
    if result.passed:
        summary = f"INSTALL PASSED: {n} self-test results, none failed"
        summary += ("; the MAC it computed matches fipsmodule.cnf" if same
                    else "; the MAC it computed differs from the installed fipsmodule.cnf")
    else:
        summary = "fipsinstall FAILED" + (": " + "; ".join(result.failed_tests)
                                          if result.failed_tests else "")
    return section("self-test", title, result.passed and same, summary, data, raw)


def checks_section(mode: str, checks: List[Check]) -> dict:
    failed = [c.name for c in checks if c.fails()]
    warnings = [c.name for c in checks if not c.ok and not c.fails()]
    summary = (f"{len(checks)} checks: " + (f"FAILED {', '.join(failed)}" if failed else "all passed")
               + (f"; warnings: {', '.join(warnings)}" if warnings else ""))
    return section("verify", f"verify ({mode})", not failed, summary,
                   {"checks": [c.to_json() for c in checks]})


def probe_section(openssl: OpenSSL, env: Dict[str, str], mode: str) -> dict:
    _, md5, sha = openssl.probe(env)
    raw = [raw_output("MD5 (must be refused in FIPS mode)", md5),
           raw_output("SHA-256 (must work)", sha)]
    data = {"md5_refused": md5.returncode != 0, "sha256_works": sha.returncode == 0}
    if mode == environ.NONFIPS:
        return section("negative-probe", "Negative probe", None,
                       "non-FIPS mode: MD5 " + ("allowed" if md5.returncode == 0 else "refused")
                       + ", SHA-256 " + ("works" if sha.returncode == 0 else "FAILS"), data, raw)
    check = verify.negative_probe_check(md5, sha)
    return section("negative-probe", "Negative probe", check.ok, check.reason, data, raw)


def cmvp_section(profile, checks: List[Check], mode: str) -> dict:
    title = "CMVP status of the provider"
    found = next((c for c in checks if c.name == "cmvp"), None) or cmvp.check_from(checks, profile)
    if found is None:
        why = ("non-FIPS mode: no FIPS provider in use" if mode == environ.NONFIPS
               else "no active fips provider was found, so its version is unknown")
        data = {}
        if getattr(profile, "cmvp_certificate", None):
            data["operator_statement"] = cmvp.assess("", "", profile.cmvp_certificate)[
                "operator_statement"]
        return section("cmvp", title, None, why, data)
    return section("cmvp", title, found.ok, found.reason, found.details["cmvp"],
                   severity=found.severity)


def journal_section(journal: Journal) -> dict:
    rows = []
    for cp in journal.checkpoints:
        changes = journal.describe(cp)
        rows.append({"id": cp["id"], "time": cp.get("time"), "command": cp["command"],
                     "user": cp.get("user") or "not recorded", "status": cp["status"],
                     "changes": changes})
    summary = (f"{len(rows)} checkpoint(s); mode recorded: {journal.mode or 'none'}"
               if rows else "no checkpoints: fipsboot has changed nothing here")
    return section("journal", "Journal: what fipsboot changed, and when", None, summary,
                   {"folder": str(journal.folder), "checkpoints": rows,
                    "managed_now": dict(journal.managed)})


def optional_section(sid: str, title: str, module: str, call: Callable,
                     ok_of: Callable[[dict], Optional[bool]]) -> Optional[dict]:
    """A section from another command's core (status, tls-check) when this fipsboot has it."""
    try:
        mod = importlib.import_module(f".{module}", __package__)
    except ImportError:
        return None
    try:
        result = json.loads(json.dumps(call(mod), default=lambda o: o.to_json()
                                       if hasattr(o, "to_json") else str(o)))
    except FipsbootError as e:
        return section(sid, title, False, f"could not run: {e}")
    except Exception as e:  # one broken section must not sink the whole report
        return section(sid, title, False, f"could not run: {type(e).__name__}: {e} (a fault in "
                       f"fipsboot's {module} check; the other sections are unaffected)")
    ok = ok_of(result)
    summary = result.get("summary") or ("passed" if ok else "failed")
    return section(sid, title, ok, str(summary), result)
