"""The CMVP data file and its lookup: every row has its sources, every row is found by its
provider and version with the status it has on a given day, unconfirmed rows are never
presented as validated, and a version with no row is a FIPS-capable build."""
from __future__ import annotations

import datetime
import json
import subprocess
import sys

import pytest

from fipsboot import cmvp

PROVIDER = "OpenSSL FIPS Provider"
BEFORE_SUNSET = datetime.date(2026, 9, 21)
AFTER_SUNSET = datetime.date(2026, 9, 22)
TODAY = datetime.date(2026, 11, 26)

# (version, certificate, standard, status before 2026-09-22, status on 2026-11-26, unconfirmed)
EXPECTED = [
    ("3.0.0", "4282", "FIPS 140-2", "active", "historical", True),
    ("3.0.8", "4282", "FIPS 140-2", "active", "historical", False),
    ("3.0.9", "4282", "FIPS 140-2", "active", "historical", True),
    ("3.0.9", "4811", "FIPS 140-2", "active", "historical", True),
    ("3.1.2", "4985", "FIPS 140-3", "active", "active", False),
    ("3.5.4", None, "FIPS 140-3", "in process", "in process", True),
]


def test_every_row_has_sources_and_a_certificate_page():
    data = json.loads(cmvp.DATA.read_text())
    assert data["fips_140_2"]["sunset"] == "2026-09-21" and data["fips_140_2"]["sources"]
    assert len(data["rows"]) == len(EXPECTED)
    for row in data["rows"]:
        assert row["sources"] and all(s.startswith("https://") for s in row["sources"]), row
        assert row["certificate_url"].startswith("https://csrc.nist.gov/"), row
        assert isinstance(row["unconfirmed"], bool)
        if row["unconfirmed"]:
            assert row["why_unconfirmed"].strip(), row
        if row["certificate"]:
            assert row["certificate_url"].endswith("/certificate/" + row["certificate"])


@pytest.mark.parametrize("version,cert,standard,before,today,unconfirmed", EXPECTED,
                         ids=[f"{e[0]}-{e[1]}" for e in EXPECTED])
def test_lookup_of_each_row(version, cert, standard, before, today, unconfirmed):
    rows = [r for r in cmvp.lookup(PROVIDER, version) if r["certificate"] == cert]
    assert len(rows) == 1
    row = rows[0]
    assert row["standard"] == standard and row["unconfirmed"] is unconfirmed
    assert cmvp.status_on(row, BEFORE_SUNSET) == before
    assert cmvp.status_on(row, TODAY) == today
    if standard == "FIPS 140-2":  # the FIPS 140-2 sunset moves it to the historical list
        assert cmvp.status_on(row, AFTER_SUNSET) == "historical"
    a = cmvp.assess(PROVIDER, version, today=TODAY)
    assert any(c["certificate"] == cert and c["status"] == today for c in a["certificates"])
    check = cmvp.check(a)
    assert check.name == "cmvp"
    if (version, cert) == ("3.1.2", "4985"):
        assert a["validated"] and not a["warning"] and check.ok, a["summary"]
        assert "validated module" in check.reason and "#4985" in check.reason
    else:  # historical, unconfirmed or in process: never "validated", always a warning
        assert not a["validated"] and a["warning"] and not check.ok
        assert check.severity == "warning" and check.fix
    if unconfirmed:
        assert "UNCONFIRMED" in check.reason and "is a validated module" not in check.reason


def test_historical_certificate_warns_after_sunset_only():
    a = cmvp.assess(PROVIDER, "3.0.8", today=BEFORE_SUNSET)
    assert a["validated"] and not a["warning"], a["summary"]
    a = cmvp.assess(PROVIDER, "3.0.8", today=AFTER_SUNSET)
    assert not a["validated"] and a["warning"]
    assert "historical" in a["summary"] and "#4282" in a["summary"]


@pytest.mark.parametrize("version", ["3.0.22", "3.5.7", "3.0.7", ""])
def test_unknown_version_is_a_fips_capable_build_not_a_validated_module(version):
    a = cmvp.assess(PROVIDER, version, today=TODAY)
    assert a["certificates"] == [] and not a["validated"] and a["warning"]
    assert "FIPS-capable build, not a validated module" in a["summary"]
    check = cmvp.check(a)
    assert not check.ok and check.severity == "warning" and not check.fails()
    assert check.fails(strict=True)


def test_other_provider_name_matches_nothing():
    assert cmvp.lookup("Some Vendor FIPS Provider", "3.1.2") == []
    assert cmvp.lookup("openssl fips provider", "3.1.2")  # case as printed may vary


def test_operator_statement_is_shown_as_such():
    """A vendor's own certificate fipsboot's data doesn't know (#5123: no row)."""
    a = cmvp.assess(PROVIDER, "3.0.22", stated_certificate="5123", today=TODAY)
    s = a["operator_statement"]
    assert s["certificate"] == "5123" and "operator states" in s["text"]
    assert "has not verified" in s["text"]
    assert "FIPS-capable build, not a validated module" in a["summary"]  # the facts stay
    assert not a["warning"]  # the operator's word, shown as theirs
    check = cmvp.check(a)
    assert check.ok and "operator's statement: certificate #5123 (not verified)" in check.reason


def test_operator_statement_of_a_certificate_for_another_version_still_warns():
    """#4985 covers 3.1.2 in fipsboot's own data: stating it for 3.0.22 can't turn the
    warning off (review finding 8)."""
    a = cmvp.assess(PROVIDER, "3.0.22", stated_certificate="4985", today=TODAY)
    s = a["operator_statement"]
    assert a["warning"] and s["covers_this_version"] is False
    assert "OpenSSL FIPS Provider 3.1.2, not for OpenSSL FIPS Provider 3.0.22" in s["text"]
    check = cmvp.check(a)
    assert not check.ok and check.severity == "warning"
    assert "#4985 for other versions only" in check.reason
    a = cmvp.assess(PROVIDER, "3.1.2", stated_certificate="4985", today=TODAY)
    assert not a["warning"] and a["operator_statement"]["covers_this_version"] is True


def test_operator_statement_of_a_historical_certificate_still_warns():
    a = cmvp.assess(PROVIDER, "3.0.22", stated_certificate="4282", today=TODAY)
    assert a["warning"] and "historical" in a["operator_statement"]["text"]


def test_cmvp_stays_out_of_the_wrappers_start_up():
    """`run` sits in the server's start-up: importing its path must not load the CMVP data."""
    code = ("import sys, fipsboot.entry, fipsboot.runner, fipsboot.verify; "
            "print(sorted(m for m in sys.modules if m in ('fipsboot.cmvp', 'fipsboot.report')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
