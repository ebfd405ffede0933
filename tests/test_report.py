"""`fipsboot report` end to end on the real OpenSSL builds, its HTML rendered in a real
headless Chromium (Debian's package), and the CMVP warning of `verify`.

What an auditor would check: the verdict at the top, in words; every section; the CMVP section
saying plainly that the test bed's 3.0.22 / 3.5.7 are FIPS-capable builds, not validated
modules; the operator's statement of a vendor certificate; a corrupted module named in the
verdict; non-FIPS mode after reset.
"""
from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Dict, List, Tuple

import pytest
from helpers import ROOT, Installation, _missing, fipsboot
from modulefaults import flip_rodata_byte

from fipsboot import reporthtml

CHROMIUM = "/usr/bin/chromium"
SECTIONS = ["host", "mode", "provider", "module-mac", "self-test", "verify", "negative-probe",
            "cmvp", "journal"]
TITLES = ["Host and profile", "Mode of the installation", "FIPS provider and libcrypto",
          "Module MAC", "Self-tests of the module (fresh fipsinstall)", "verify (fips)",
          "Negative probe", "CMVP status of the provider", "Journal: what fipsboot changed, and when"]


# --- helpers ----------------------------------------------------------------------------

def report(profile: Path, *args: str, check: int | None = None) -> Tuple[dict, subprocess.CompletedProcess]:
    r = fipsboot("report", "--profile", str(profile), "--json", *args, check=check)
    try:
        return json.loads(r.stdout), r
    except ValueError:
        pytest.fail(f"report --json printed no JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")


def sections(result: dict) -> Dict[str, dict]:
    return {s["id"]: s for s in result["sections"]}


def install(inst: Installation, extra: str = "") -> Path:
    profile = inst.write_profile(extra)
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


class DomText(HTMLParser):
    """The rendered DOM's verdict heading, section headings and visible text."""

    def __init__(self):
        super().__init__()
        self.stack: List[Tuple[str, Dict[str, str]]] = []
        self.verdict = ""
        self.h2: List[str] = []
        self.section_ids: List[str] = []
        self.text: List[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section_ids.append(attrs.get("id", ""))
        self.stack.append((tag, attrs))
        if tag == "h2":
            self.h2.append("")

    def handle_endtag(self, tag):
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data):
        self.text.append(data)
        tags = [t for t, _ in self.stack]
        if any(t == "h1" and a.get("id") == "verdict" for t, a in self.stack):
            self.verdict += data
        elif tags and tags[-1] == "h2":
            self.h2[-1] += data


def chromium(html: Path, tmp: Path, screenshot: bool = False) -> Tuple[DomText, Path | None]:
    """Open the file in headless Chromium: the DOM it rendered, and a screenshot."""
    if not os.access(CHROMIUM, os.X_OK):
        _missing("Debian's chromium (scripts/setup.sh installs it)")
    profile_dir = tmp / "chromium-profile"
    base = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile_dir}"]
    url = html.resolve().as_uri()
    r = subprocess.run([*base, "--dump-dom", url], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0 and "<html" in r.stdout, r.stderr[-2000:]
    dom = DomText()
    dom.feed(r.stdout)
    png = None
    if screenshot:
        png = tmp / "report.png"
        r = subprocess.run([*base, "--window-size=1000,1500", f"--screenshot={png}", url],
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", r.stderr[-2000:]
    return dom, png


# --- the report after install -----------------------------------------------------------

def test_report_after_install_is_evidence_of_fips_mode(installation, testbed, tmp_path):
    inst = installation
    version = testbed[f"linux-{inst.version}"]["version"]
    profile = install(inst)
    html = tmp_path / "report.html"
    result, _ = report(profile, "--html", str(html), check=0)

    assert result["exit_code"] == 0 and result["mode"] == "fips"
    assert result["verdict"]["ok"] is True and result["verdict"]["text"] == "FIPS mode"
    assert result["verdict"]["failed"] == [] and result["verdict"]["warnings"] == ["cmvp"]
    by_id = sections(result)
    assert [i for i in SECTIONS if i in by_id] == SECTIONS, list(by_id)
    for sid in SECTIONS:
        assert by_id[sid]["summary"].strip() and by_id[sid]["ok"] is not False or sid == "cmvp"

    host = by_id["host"]["data"]
    assert host["fipsboot_version"] and host["time"] and host["os"] and host["host"]
    assert host["profile"] == str(profile.resolve())
    prov = by_id["provider"]["data"]
    assert prov["fips"]["version"] == version and prov["fips"]["status"] == "active"
    assert prov["fips"]["name"] == "OpenSSL FIPS Provider" and prov["fips"]["build_info"]
    assert prov["libcrypto_version"] == version
    assert any("list -providers -verbose" in r["command"] for r in by_id["provider"]["raw"])
    mac = by_id["module-mac"]["data"]
    assert mac["match"] is True and mac["recomputed"] == mac["in_fipsmodule_cnf"]
    st = by_id["self-test"]["data"]
    assert st["passed"] and st["failed_tests"] == [] and st["matches_installed_fipsmodule_cnf"]
    assert len(st["self_tests"]) >= 5 and all("pass" in t["result"].lower() for t in st["self_tests"])
    assert {"Module_Integrity", "KAT_Digest"} & {t["type"] for t in st["self_tests"]}
    checks = {c["name"]: c for c in by_id["verify"]["data"]["checks"]}
    assert {"providers", "negative-probe", "module-mac", "cmvp"} <= set(checks)
    assert by_id["negative-probe"]["ok"] is True
    assert by_id["negative-probe"]["summary"] == "MD5 refused, SHA-256 works"
    cm = by_id["cmvp"]
    assert cm["ok"] is False and cm["severity"] == "warning"
    assert f"OpenSSL FIPS Provider {version} is a FIPS-capable build, not a validated module" \
        in cm["summary"]
    assert cm["data"]["validated"] is False and cm["data"]["operator_statement"] is None
    journal = by_id["journal"]["data"]["checkpoints"]
    assert [c["command"] for c in journal] == ["install"]
    assert journal[0]["user"] == getpass.getuser()
    changed = {c["what"]: c for c in journal[0]["changes"]}
    cnf = changed[str(inst.config_dir / "openssl.cnf")]
    assert cnf["before"] == "absent" and cnf["after"].startswith("sha256:")

    # The text summary says the same first.
    r = fipsboot("report", "--profile", str(profile), check=0)
    assert r.stdout.splitlines()[0] == "Verdict: FIPS mode"
    assert "WARN  CMVP status of the provider" in r.stdout

    # The page as a browser renders it.
    page = html.read_text()
    assert "<script" not in page and "<link" not in page and " src=" not in page
    dom, png = chromium(html, tmp_path, screenshot=True)
    assert dom.verdict.strip() == "Verdict: FIPS mode"
    # Every section of the JSON is rendered, in order (status / tls-check too, where present).
    assert dom.section_ids == [s["id"] for s in result["sections"]]
    assert [t for t in dom.h2 if t in TITLES] == TITLES
    assert dom.h2 == [s["title"] for s in result["sections"]]
    text = " ".join(dom.text)
    assert f"{version} is a FIPS-capable build, not a validated module" in text
    assert png.stat().st_size > 10_000
    if inst.version == "3.0" and os.environ.get("FIPSBOOT_README_SCREENSHOT"):
        shutil.copy(png, ROOT / "docs" / "report.png")  # the README's picture, this code path


def test_verify_warns_about_cmvp_and_strict_fails(installation30):
    profile = install(installation30)
    r = fipsboot("verify", "--profile", str(profile), "--json", check=0)
    result = json.loads(r.stdout)
    cm = [c for c in result["checks"] if c["name"] == "cmvp"]
    assert len(cm) == 1 and cm[0]["ok"] is False and cm[0]["severity"] == "warning", cm
    assert "3.0.22 is a FIPS-capable build, not a validated module" in cm[0]["reason"]
    assert all(c["ok"] for c in result["checks"] if c["name"] != "cmvp") and result["ok"] is True
    r = fipsboot("verify", "--profile", str(profile), check=0)
    assert any(line.startswith("WARN  cmvp") for line in r.stdout.splitlines()), r.stdout
    r = fipsboot("verify", "--profile", str(profile), "--strict", "--json", check=1)
    assert json.loads(r.stdout)["ok"] is False
    # The fast checks don't start openssl, so they don't know the version: no cmvp check.
    r = fipsboot("verify", "--profile", str(profile), "--fast", "--strict", "--json", check=0)
    assert "cmvp" not in [c["name"] for c in json.loads(r.stdout)["checks"]]


def test_operator_statement_of_the_vendor_certificate(installation, tmp_path):
    inst = installation
    profile = install(inst, 'cmvp-certificate = "5123"')
    html = tmp_path / "report.html"
    result, _ = report(profile, "--html", str(html), check=0)
    cm = sections(result)["cmvp"]
    statement = cm["data"]["operator_statement"]
    assert statement["certificate"] == "5123"
    assert "operator states" in statement["text"] and "not verified" in statement["text"]
    assert "not a validated module" in cm["summary"]  # the facts are still said
    if inst.version == "3.0":
        dom, _ = chromium(html, tmp_path)
        text = " ".join(dom.text)
        assert "Operator's statement:" in text and "certificate #5123" in text
        assert "fipsboot has not verified this statement" in text
    r = fipsboot("report", "--profile", str(profile), check=0)
    assert "certificate #5123" in r.stdout and "operator states" in r.stdout
    r = fipsboot("verify", "--profile", str(profile), "--strict", check=0)  # the operator's word
    assert "operator's statement: certificate #5123 (not verified)" in r.stdout


def test_bad_cmvp_certificate_is_a_profile_error(installation30):
    profile = installation30.write_profile('cmvp-certificate = "#4985; rm"')
    r = fipsboot("report", "--profile", str(profile), "--json", check=2)
    err = json.loads(r.stdout)
    assert err["exit_code"] == 2 and "cmvp-certificate" in err["error"]
    r = fipsboot("verify", "--profile", str(profile), check=2)
    assert "cmvp-certificate" in r.stderr


def test_report_of_a_missing_profile_is_a_usage_error(tmp_path):
    r = fipsboot("report", "--profile", str(tmp_path / "none.toml"), "--json", check=2)
    assert json.loads(r.stdout)["exit_code"] == 2
    assert not (tmp_path / "x.html").exists()


# --- evidence of a failure ---------------------------------------------------------------

def test_corrupted_module_fails_and_the_verdict_names_it(installation, tmp_path):
    inst = installation
    profile = install(inst)
    flip_rodata_byte(inst.module)
    html = tmp_path / "report.html"
    result, r = report(profile, "--html", str(html), check=1)
    v = result["verdict"]
    assert result["exit_code"] == 1 and v["ok"] is False
    assert v["text"].startswith("NOT in FIPS mode: failed ") and "module-mac" in v["text"]
    assert "module-mac" in v["failed"] and "providers" in v["failed"]
    by_id = sections(result)
    assert by_id["module-mac"]["ok"] is False and by_id["module-mac"]["data"]["match"] is False
    assert by_id["self-test"]["ok"] is False  # fipsinstall refuses the changed module
    r = fipsboot("report", "--profile", str(profile), check=1)
    assert r.stdout.splitlines()[0].startswith("Verdict: NOT in FIPS mode: failed ")
    if inst.version == "3.0":
        dom, _ = chromium(html, tmp_path)
        assert dom.verdict.strip().startswith("Verdict: NOT in FIPS mode: failed ")
        assert "module-mac" in dom.verdict


def test_after_reset_the_report_says_non_fips_mode(installation, tmp_path):
    inst = installation
    profile = install(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    html = tmp_path / "report.html"
    result, _ = report(profile, "--html", str(html), check=1)
    assert result["mode"] == "non-fips" and result["verdict"]["text"] == "non-FIPS mode"
    assert result["verdict"]["failed"] == []
    by_id = sections(result)
    assert by_id["verify"]["ok"] is True
    assert [c["command"] for c in by_id["journal"]["data"]["checkpoints"]] == ["install", "reset"]
    assert "non-FIPS" in by_id["cmvp"]["summary"]
    dom, _ = chromium(html, tmp_path)
    assert dom.verdict.strip() == "Verdict: non-FIPS mode"


# --- the HTML page itself ---------------------------------------------------------------

def test_html_escapes_everything_and_renders_unknown_sections_generically():
    hostile = "<script>alert(1)</script>&\"'"
    result = {
        "format": 1, "generated": "2026-11-26T00:00:00+00:00", "fipsboot_version": "x",
        "profile": hostile, "mode": "fips",
        "verdict": {"ok": False, "text": "NOT in FIPS mode: failed " + hostile, "detail": hostile,
                    "failed": [hostile], "warnings": []},
        "exit_code": 1,
        "sections": [{"id": "status", "title": hostile, "ok": False, "severity": "error",
                      "summary": hostile, "raw": [{"label": hostile, "command": hostile,
                                                   "exit_code": 1, "text": hostile}],
                      "data": {"processes": [{"pid": 1, "name": hostile}],
                               "checks": [{"name": hostile, "ok": False, "reason": hostile,
                                           "fix": hostile, "severity": "error"}]}}]}
    page = reporthtml.render(result)
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<th>pid</th>" in page and "<td>1</td>" in page  # a list of records: a table
    assert page.count("<details>") == 2  # the raw output and the section's JSON
