"""CMVP status of the FIPS provider: is this provider version a validated module, under which
certificate, and is that certificate still active today?

The facts live in data/cmvp.json (shipped with the package, each row with its sources); this
module only looks them up. A row marked "unconfirmed" is reported as unconfirmed, never as a
validated module. A version with no row is a FIPS-capable build, not a validated module.
"""
from __future__ import annotations

import datetime
import json
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from .checks import WARNING, Check, passed, warned

DATA = Path(__file__).resolve().parent / "data" / "cmvp.json"
FIX = ("use a FIPS provider built from a validated version (see the certificate's security "
       "policy), or record your vendor's own certificate as [server] cmvp-certificate")


@lru_cache(maxsize=1)
def load() -> dict:
    return json.loads(DATA.read_text(encoding="utf-8"))


def status_on(row: dict, day: datetime.date) -> str:
    """The certificate's status on `day`: a FIPS 140-2 (or any) certificate past its sunset
    date is on the historical list."""
    sunset = row.get("sunset")
    if row["status"] == "active" and sunset and day > datetime.date.fromisoformat(sunset):
        return "historical"
    return row["status"]


def lookup(provider: str, version: str, rows: Optional[Iterable[dict]] = None) -> List[dict]:
    return [r for r in (load()["rows"] if rows is None else rows)
            if r["provider"].lower() == (provider or "").strip().lower() and r["version"] == version]


def rows_for_certificate(number: str) -> List[dict]:
    return [r for r in load()["rows"] if r["certificate"] == number]


def _describe(row: dict, day: datetime.date) -> dict:
    status = status_on(row, day)
    return {"certificate": row["certificate"], "standard": row["standard"], "status": status,
            "recorded_status": row["status"], "sunset": row.get("sunset"),
            "unconfirmed": bool(row.get("unconfirmed")), "why_unconfirmed": row.get("why_unconfirmed"),
            "certificate_url": row.get("certificate_url"), "sources": list(row.get("sources", [])),
            "note": row.get("note")}


def _cert_text(c: dict) -> str:
    number = f"#{c['certificate']}" if c["certificate"] else "no certificate"
    text = f"{number} ({c['standard']}, {c['status']}"
    if c["sunset"]:
        text += f", sunset {c['sunset']}"
    return text + (", UNCONFIRMED" if c["unconfirmed"] else "") + ")"


def assess(provider: str, version: str, stated_certificate: Optional[str] = None,
           today: Optional[datetime.date] = None) -> dict:
    """Everything the report's CMVP section and verify's `cmvp` check say, as data."""
    day = today or datetime.date.today()
    found = [_describe(r, day) for r in lookup(provider, version)]
    active = [c for c in found if c["status"] == "active" and not c["unconfirmed"]]
    label = f"{provider} {version}"
    if active:
        summary = f"{label} is a validated module: " + ", ".join(_cert_text(c) for c in active)
        warning = False
    elif any(not c["unconfirmed"] and c["status"] in ("historical", "revoked") for c in found):
        summary = (f"{label} was validated, but its certificate is "
                   + ", ".join(_cert_text(c) for c in found if not c["unconfirmed"])
                   + f" on {day.isoformat()}: not for new procurements")
        warning = True
    elif found:
        summary = (f"{label} is not a confirmed validated module; fipsboot's data lists "
                   + ", ".join(_cert_text(c) for c in found))
        warning = True
    else:
        summary = (f"{label} is a FIPS-capable build, not a validated module: no CMVP "
                   "certificate covers this version")
        warning = True
    statement = None
    if stated_certificate:
        known_rows = rows_for_certificate(stated_certificate)
        known = [_describe(r, day) for r in known_rows]
        covers = lookup(provider, version, known_rows)
        statement = {
            "certificate": stated_certificate,
            "text": (f"The operator states that this provider is covered by the vendor's CMVP "
                     f"certificate #{stated_certificate} ([server] cmvp-certificate in the "
                     "profile). fipsboot has not verified this statement."),
            "known_rows": known,
            "url": ("https://csrc.nist.gov/projects/cryptographic-module-validation-program/"
                    f"certificate/{stated_certificate}"),
        }
        bad = [c for c in known if c["status"] in ("historical", "revoked")]
        # fipsboot knows what this certificate covers, and it is not this provider version:
        # the statement can't switch the warning off
        statement["covers_this_version"] = bool(covers) if known_rows else None
        if bad:
            statement["text"] += (" fipsboot's data has this certificate as "
                                  + ", ".join(_cert_text(c) for c in bad) + ".")
        elif known_rows and not covers:
            statement["text"] += (f" fipsboot's data has certificate #{stated_certificate} for "
                                  + ", ".join(sorted({f"{r['provider']} {r['version']}"
                                                      for r in known_rows}))
                                  + f", not for {label}: it does not cover this provider.")
        else:
            warning = False  # the operator's word, shown as such; a stale certificate still warns
    return {"provider": provider, "version": version, "date": day.isoformat(),
            "validated": bool(active), "warning": warning, "summary": summary,
            "certificates": found, "operator_statement": statement,
            "data_checked": load().get("checked")}


def check(assessment: dict) -> Check:
    reason = assessment["summary"]
    statement = assessment["operator_statement"]
    if statement:
        reason += f"; operator's statement: certificate #{statement['certificate']} (not verified)"
        if statement.get("covers_this_version") is False:
            reason += (f"; fipsboot's data has #{statement['certificate']} for other versions "
                       "only")
    details = {"cmvp": assessment}
    if assessment["warning"]:
        return warned("cmvp", reason, FIX, **details)
    check = passed("cmvp", reason, **details)
    check.severity = WARNING  # the same severity whatever the result: it never fails alone
    return check


def check_from(checks: Iterable[Check], profile, today: Optional[datetime.date] = None
               ) -> Optional[Check]:
    """verify's `cmvp` check, from what the `providers` check found (None when no fips
    provider was found: that is the providers check's failure to report)."""
    for c in checks:
        if c.name == "providers" and c.ok and c.details.get("fips_version"):
            fips: Dict[str, str] = c.details.get("providers", {}).get("fips", {})
            return check(assess(fips.get("name", ""), c.details["fips_version"],
                                getattr(profile, "cmvp_certificate", None), today))
    return None
