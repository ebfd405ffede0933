"""Text output can't be driven by untrusted strings (review finding 3), and errors stay
JSON under --json, each with a fix (finding 12): units on the renderers, and the real command
line for click's own usage errors and profile errors."""
from __future__ import annotations

import json

import pytest
from helpers import fipsboot

from fipsboot import output, report, textviews
from fipsboot.printable import printable
from fipsboot.tlspeer import parse_peer, valid_host

FORGED = "srv\x1b]0;pwned\x07\nPASS  tls-peer   all good\r"


def test_printable_escapes_every_control_and_keeps_ordinary_text():
    assert printable(FORGED) == "srv\\x1b]0;pwned\\x07\\nPASS  tls-peer   all good\\r"
    assert printable("a\tb\x9bc\u202ed") == "a\\tb\\x9bc\\u202ed"  # C1 CSI, right-to-left
    assert printable(r"C:\GCTI\ORS 8.1\fips.dll") == r"C:\GCTI\ORS 8.1\fips.dll"
    assert printable("Zürich CN=é") == "Zürich CN=é"
    assert printable("a\\b\n") == "a\\\\b\\n"  # unambiguous once something is escaped


def no_control(text: str) -> None:
    assert not any(ord(ch) < 0x20 and ch != "\n" for ch in text), repr(text)
    assert not any(line.startswith("PASS  tls-peer") for line in text.splitlines()), text


def test_status_text_escapes_process_names_command_lines_and_environment(capsys):
    p = {"ok": False, "pid": 42, "name": FORGED, "user": "nobody\x1b[2J", "started": "now",
         "found_by": ["process-names"], "cmdline": ["/srv/bin/x", FORGED],
         "fips_module": {"state": "missing", "paths": [FORGED], "reason": FORGED},
         "libraries": [FORGED],
         "environment": {"readable": True, "OPENSSL_CONF": FORGED, "OPENSSL_MODULES": None,
                         "LD_LIBRARY_PATH": "/x\r"},
         "problems": [{"reason": FORGED, "fix": FORGED}]}
    r = {"mode": "fips", "last_change": {"command": "install", "time": None}, "processes": [p],
         "checks": [{"name": "x", "ok": False, "reason": FORGED, "fix": FORGED}],
         "notes": [FORGED], "summary": FORGED, "exit_code": 1}
    output.result(r, False, textviews.status)
    out = capsys.readouterr().out
    no_control(out)
    assert "FAIL PID 42 srv\\x1b]0;pwned\\x07\\nPASS  tls-peer   all good\\r  user nobody\\x1b[2J" in out
    assert "     fix: srv\\x1b" in out  # the check's fix is still its own line


def test_report_text_lines_escape_every_value():
    rep = {"verdict": {"text": "FIPS mode", "detail": "d", "warnings": []}, "sections": [
        {"id": "tls-check", "title": "TLS (tls-check)", "ok": True, "severity": "error",
         "summary": FORGED, "data": {"checks": [{"name": "tls-peer", "ok": True,
                                                 "reason": FORGED}]}},
        {"id": "journal", "title": "Journal", "ok": None, "severity": "error", "summary": "s",
         "data": {"checkpoints": [{"id": 1, "time": "t", "command": "install",
                                   "user": "root\x1b]2;x\x07", "changes": [], "status": "done"}]}}]}
    lines = report.text_lines(rep)
    no_control("\n".join(lines))
    assert "PASS  TLS (tls-check): srv\\x1b]0;pwned\\x07\\nPASS  tls-peer   all good\\r" in lines


def test_a_broken_optional_section_does_not_sink_the_report():
    def broken(_module):
        raise RuntimeError("boom")

    s = report.optional_section("tls-check", "TLS (tls-check)", "tlscheck", broken,
                                lambda r: True)
    assert s["ok"] is False and "could not run: RuntimeError: boom" in s["summary"]
    assert "other sections are unaffected" in s["summary"]


@pytest.mark.parametrize("spec", ["example.com:443\n", "a:\u0664\u0664\u0663", "a:443 ",
                                  "[::1]:443\n", "\u0661.2.3.4:443"])
def test_peer_specs_are_matched_whole_and_ascii(spec):
    with pytest.raises(ValueError):
        parse_peer(spec)


def test_valid_host_refuses_a_trailing_newline():
    assert valid_host("example.com") and not valid_host("example.com\n")
    assert valid_host("::1") and not valid_host("1.2.3.4\n")


@pytest.mark.parametrize("args, words", [
    (("verify", "--json"), "Missing option '--profile'"),
    (("tls-check", "--json", "--profile", "p.toml", "--bogus"), "No such option '--bogus'"),
    (("report", "--json", "--profile", "p.toml", "--html"), "requires an argument"),
])
def test_click_usage_errors_are_json_under_json(args, words):
    r = fipsboot(*args, check=2)
    err = json.loads(r.stdout)
    assert err["exit_code"] == 2 and words in err["error"] and "--help" in err["fix"]
    r = fipsboot(*[a for a in args if a != "--json"], check=2)  # text as before, for people
    assert words in r.stderr and not r.stdout


@pytest.mark.parametrize("text, words", [("[server\n", "not valid TOML"),
                                         ("[other]\n", "unknown table [other]"),
                                         ("[server]\nbogus = 1\n", "unknown key")])
def test_profile_errors_carry_a_fix(tmp_path, text, words):
    profile = tmp_path / "p.toml"
    profile.write_text(text)
    err = json.loads(fipsboot("verify", "--profile", str(profile), "--json", check=2).stdout)
    assert words in err["error"] and err["fix"] and err["exit_code"] == 2
    err = json.loads(fipsboot("verify", "--profile", str(tmp_path / "none.toml"), "--json",
                              check=2).stdout)
    assert "profile not found" in err["error"] and "--profile" in err["fix"]


def test_run_usage_errors_are_json_under_json_too():
    """`run` parses its own options (no click on the start-up path): the same contract."""
    r = fipsboot("run", "--json", "--bogus", "--", "/bin/true", check=2)
    err = json.loads(r.stdout)
    assert err["exit_code"] == 2 and "no such option: --bogus" in err["error"] and err["fix"]
    err = json.loads(fipsboot("run", "--json", "--", "/bin/true", check=2).stdout)
    assert "--profile is required" in err["error"] and "--profile PROFILE" in err["fix"]
