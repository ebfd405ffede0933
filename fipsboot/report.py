"""`fipsboot report`: the evidence an auditor keeps, gathered in one go.

The report is a list of sections, each with an id, a title, a result (ok: true / false / null
for "information only"), a one-line summary, its data and the raw outputs it was judged from.
The text, JSON and HTML forms all render that one list; `status` and `tls-check` results (when
those commands exist in this fipsboot) become sections the same way.

Exit codes: 0 the evidence shows FIPS mode; 1 it does not (a failed check, or the installation
is in non-FIPS mode); 2 usage or profile error (raised before anything runs).
"""
from __future__ import annotations

import datetime
from typing import Callable, List, Optional

from . import __version__, environ, verify
from .checks import Check
from .errors import EXIT_FAILED, EXIT_OK, FipsbootError
from .openssl import OpenSSL
from .printable import printable
from .reportsections import (
    checks_section,
    cmvp_section,
    host_section,
    journal_section,
    mode_section,
    module_mac_section,
    optional_section,
    probe_section,
    provider_section,
    section,
    self_test_section,
)
from .session import Session

FORMAT = 1


# --- the whole report -------------------------------------------------------------------

def build(profile, now: Optional[datetime.datetime] = None) -> dict:
    now = now or datetime.datetime.now(datetime.timezone.utc)
    session = Session(profile)
    layout, journal, mode = session.layout, session.journal, session.mode
    env = session.launch_environment(mode)
    openssl = OpenSSL(layout, env)
    checks = verify.verify(session)

    sections = [host_section(profile, now), mode_section(journal, mode)]

    def guarded(sid: str, title: str, make: Callable[[], dict]) -> dict:
        try:
            return make()
        except (FipsbootError, OSError) as e:
            return section(sid, title, False, f"could not gather this evidence: {e}")

    sections.append(guarded("provider", "FIPS provider and libcrypto",
                            lambda: provider_section(openssl, env)))
    if mode == environ.FIPS or layout.host(layout.fipsmodule_cnf).exists():
        sections.append(guarded("module-mac", "Module MAC", lambda: module_mac_section(layout)))
    sections.append(guarded("self-test", "Self-tests of the module (fresh fipsinstall)",
                            lambda: self_test_section(layout)))
    sections.append(checks_section(mode, checks))
    sections.append(guarded("negative-probe", "Negative probe",
                            lambda: probe_section(openssl, env, mode)))
    sections.append(cmvp_section(profile, checks, mode))
    status = optional_section("status", "Running processes (status)", "status",
                              lambda m: m.status_report(profile, require_running=False),
                              # 0 consistent FIPS, 1 inconsistent, 2 consistent non-FIPS
                              lambda r: {0: True, 1: False}.get(r.get("exit_code")))
    if status:
        sections.append(status)
    if getattr(profile, "tls", None) or "tls" in profile.raw:
        tls = optional_section("tls-check", "TLS (tls-check)", "tlscheck",
                               lambda m: m.tls_check(profile), lambda r: bool(r.get("ok")))
        if tls:
            sections.append(tls)
    sections.append(guarded("journal", "Journal: what fipsboot changed, and when",
                            lambda: journal_section(journal)))

    v = verdict(mode, sections, checks)
    return {"format": FORMAT, "generated": now.isoformat(timespec="seconds"),
            "fipsboot_version": __version__, "profile": str(profile.source), "mode": mode,
            "verdict": v, "exit_code": EXIT_OK if v["ok"] else EXIT_FAILED, "sections": sections}


def verdict(mode: str, sections: List[dict], checks: List[Check]) -> dict:
    """FIPS mode only when every check and every section that judged passed (warnings
    aside); the failed ones are named. Non-FIPS mode is never evidence of FIPS mode."""
    if mode == environ.FIPS:
        failed = [s["id"] for s in sections
                  if s["ok"] is False and s["severity"] != "warning" and s["id"] != "verify"]
        failed[:0] = [c.name for c in checks if c.fails()]
        failed = list(dict.fromkeys(failed))
        ok = not failed
        text = "FIPS mode" if ok else "NOT in FIPS mode: failed " + ", ".join(failed)
    else:
        failed = [c.name for c in checks if c.fails()]
        ok = False
        text = "non-FIPS mode" + (f" (failed {', '.join(failed)})" if failed else "")
    warnings = [c.name for c in checks if not c.ok and not c.fails()]
    detail = {environ.FIPS: "The evidence below shows this installation in FIPS mode: the FIPS "
                            "provider is active, its self-tests pass, non-approved algorithms "
                            "are refused.",
              environ.NONFIPS: "This installation is in non-FIPS mode (fipsboot reset): servers "
                               "started with its environment do not use the FIPS provider."}[mode]
    if mode == environ.FIPS and not ok:
        detail = ("The evidence below does NOT show FIPS mode: each failed section says why and "
                  "how to fix it.")
    return {"ok": ok, "text": text, "detail": detail, "failed": failed, "warnings": warnings}


# --- text -------------------------------------------------------------------------------

def label(s: dict) -> str:
    if s["ok"] is False and s.get("severity") == "warning":
        return "WARN"
    return {True: "PASS", False: "FAIL", None: "INFO"}[s["ok"]]


def text_lines(report: dict) -> List[str]:
    v = report["verdict"]
    lines = [f"Verdict: {v['text']}", v["detail"]]
    reasons = {c.get("name"): c.get("reason") for s in report["sections"] if s["id"] == "verify"
               for c in s["data"].get("checks", [])}
    lines += [f"Warning ({w}): {reasons.get(w, '')}" for w in v["warnings"]]
    for s in report["sections"]:
        lines += ["", f"{label(s)}  {s['title']}: {s['summary']}"]
        for c in s["data"].get("checks", []) if isinstance(s["data"].get("checks"), list) else []:
            if isinstance(c, dict) and "name" in c:
                tag = "PASS" if c.get("ok") else ("WARN" if c.get("severity") == "warning" else "FAIL")
                lines.append(f"      {tag}  {c['name']:15} {c.get('reason', '')}")
        if s["id"] == "cmvp" and s["data"].get("operator_statement"):
            lines.append("      " + s["data"]["operator_statement"]["text"])
        if s["id"] == "journal":
            for cp in s["data"].get("checkpoints", []):
                lines.append(f"      {cp['id']:3} {cp['time']} {cp['command']:8} by {cp['user']}: "
                             f"{len(cp['changes'])} change(s), {cp['status']}")
    # subjects, process names, OpenSSL's lines: nothing in them may drive the terminal
    return [printable(line) for line in lines]
