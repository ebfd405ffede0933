"""The Windows backend end to end: the test bed's Windows OpenSSL (openssl.exe, fips.dll) under
Wine, in C:\\GCTI\\ORS 8.1.401.11 with the configs in C:\\GCTI\\ORS_FIPS_CFG."""
from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
from helpers import WINE_PROFILE, fipsboot

from fipsboot import providers

pytestmark = pytest.mark.wine

ENV = {"OPENSSL_CONF": r"C:\GCTI\ORS_FIPS_CFG\openssl.cnf",
       "OPENSSL_MODULES": r"C:\GCTI\ORS 8.1.401.11\fips"}


@pytest.fixture
def installed(wine_install, tmp_path, state_dir):
    profile = tmp_path / "windows.toml"
    profile.write_text(WINE_PROFILE)
    r = fipsboot("install", "--profile", str(profile), "--json", check=0)
    result = json.loads(r.stdout)
    assert result["status"] == "installed"
    assert any(t["name"].startswith("SHA2") for t in result["self_tests"])
    return {**wine_install, "profile": profile, "cfg": os.path.join(wine_install["gcti"],
                                                                     "ORS_FIPS_CFG")}


def verify(w) -> dict:
    r = fipsboot("verify", "--profile", str(w["profile"]), "--json")
    out = json.loads(r.stdout)
    assert r.returncode == (0 if out["ok"] else 1)
    return {c["name"]: c for c in out["checks"]}


def wine_openssl(w, *args, stdin=b""):
    return subprocess.run([w["wine"], w["openssl"], *args], capture_output=True, input=stdin,
                          env={**os.environ, **ENV}, timeout=120)


def test_install_and_verify_under_wine(installed):
    w = installed
    cnf = open(os.path.join(w["cfg"], "openssl.cnf")).read()
    assert ".include C:/GCTI/ORS_FIPS_CFG/fipsmodule.cnf" in cnf
    checks = verify(w)
    # cmvp: a FIPS-capable build, not a validated module: a warning, verify still passes
    cmvp = checks.pop("cmvp")
    assert cmvp["ok"] is False and cmvp["severity"] == "warning", cmvp
    assert all(c["ok"] for c in checks.values()), checks
    assert checks["providers"]["details"]["fips_version"].startswith("3.0.")
    # openssl.exe started with the vendor guide's variables: fips active, MD5 refused.
    listing = wine_openssl(w, "list", "-providers").stdout.decode().replace("\r\n", "\n")
    assert providers.parse(listing)["fips"].active
    assert wine_openssl(w, "dgst", "-md5", stdin=b"x").returncode != 0
    assert wine_openssl(w, "dgst", "-sha256", stdin=b"x").returncode == 0
    # Second run: nothing to do.
    again = json.loads(fipsboot("install", "--profile", str(w["profile"]), "--json",
                                check=0).stdout)
    assert again["status"] == "unchanged"


def test_backslash_include_is_caught(installed):
    w = installed
    path = os.path.join(w["cfg"], "openssl.cnf")
    text = open(path).read().replace("C:/GCTI/ORS_FIPS_CFG/fipsmodule.cnf",
                                     "C:\\GCTI\\ORS_FIPS_CFG\\fipsmodule.cnf")
    open(path, "w").write(text)
    checks = verify(installed)
    assert not checks["openssl.cnf"]["ok"] and "backslash" in checks["openssl.cnf"]["reason"]
    assert not checks["providers"]["ok"]  # and shown failing under Wine


def test_corrupted_dll_fails(installed):
    w = installed
    dll = os.path.join(w["gcti"], "ORS 8.1.401.11", "fips", "fips.dll")
    data = bytearray(open(dll, "rb").read())
    data[len(data) // 2] ^= 0x01
    open(dll, "wb").write(data)
    checks = verify(w)
    assert not checks["module-mac"]["ok"]
    assert not checks["providers"]["ok"]


def test_stale_module_mac_fails(installed):
    w = installed
    path = os.path.join(w["cfg"], "fipsmodule.cnf")
    text = open(path).read()
    mac_line = next(line for line in text.splitlines() if line.startswith("module-mac"))
    flipped = mac_line[:-1] + ("0" if mac_line[-1] != "0" else "1")
    open(path, "w").write(text.replace(mac_line, flipped))
    checks = verify(w)
    assert not checks["module-mac"]["ok"] and "no longer matches" in checks["module-mac"]["reason"]
    assert not checks["providers"]["ok"]


def test_default_provider_fallback_fails(installed):
    w = installed
    path = os.path.join(w["cfg"], "openssl.cnf")
    text = open(path).read().replace("config_diagnostics = 1", "config_diagnostics = 0")
    text = text.replace("ORS_FIPS_CFG/fipsmodule.cnf", "ORS_FIPS_CFG/missing.cnf")
    open(path, "w").write(text)
    checks = verify(w)
    assert not checks["openssl.cnf"]["ok"]
    # Root starts no openssl on a failing openssl.cnf (review finding 4): not run, failing.
    assert not checks["providers"]["ok"] and checks["providers"]["reason"].startswith("not run")


def test_reset_and_rollback_under_wine(installed):
    w = installed
    fipsboot("reset", "--profile", str(w["profile"]), check=0)
    checks = verify(w)
    assert checks["providers"]["ok"] and "non-FIPS" in checks["providers"]["reason"]
    fipsboot("rollback", "--profile", str(w["profile"]), check=0)
    fipsboot("rollback", "--profile", str(w["profile"]), check=0)
    assert not os.path.exists(os.path.join(w["cfg"], "openssl.cnf"))


def test_run_starts_the_windows_server_with_the_fips_environment(installed):
    """`fipsboot run` with the Windows backend: verify (through Wine), start the server as a
    child with the Windows-form variables, and exit with its code."""
    w = installed
    r = fipsboot("run", "--profile", str(w["profile"]), "--", w["wine"], w["openssl"],
                 "list", "-providers", env={"OPENSSL_CONF": "/etc/elsewhere.cnf"}, timeout=300)
    assert r.returncode == 0, r.stderr
    assert providers.parse(r.stdout.replace("\r\n", "\n"))["fips"].active
    r = fipsboot("run", "--profile", str(w["profile"]), "--", w["wine"], "cmd", "/c", "exit 3",
                 timeout=300)
    assert r.returncode == 3, r.stderr
    # A corrupted fips.dll: the server is not started, exit 78.
    dll = os.path.join(w["gcti"], "ORS 8.1.401.11", "fips", "fips.dll")
    data = bytearray(open(dll, "rb").read())
    data[len(data) // 3] ^= 0x01
    open(dll, "wb").write(data)
    r = fipsboot("run", "--profile", str(w["profile"]), "--", w["wine"], "cmd", "/c", "exit 0",
                 timeout=300)
    assert r.returncode == 78 and "module-mac" in r.stderr


SERVICE_KEY = r"HKLM\System\CurrentControlSet\Services\GctiLca"
MACHINE_KEY = r"HKLM\System\CurrentControlSet\Control\Session Manager\Environment"


def reg(w, *args) -> str:
    r = subprocess.run([w["wine"], "reg", *args], capture_output=True, timeout=120)
    return r.stdout.decode("utf-8", "replace").replace("\r\n", "\n") if r.returncode == 0 else ""


@pytest.fixture
def registry_targets(wine_install, tmp_path, state_dir):
    """The registry targets against Wine's real registry: a service whose Environment holds
    another variable, the machine and the current account (Wine reads both Environment keys
    when it starts a process, as Windows does)."""
    w = wine_install
    # A service key of our own (the LCA's), so that nothing of Wine's own set-up touches it.
    reg(w, "add", SERVICE_KEY, "/v", "Environment", "/t", "REG_MULTI_SZ", "/d", "TZ=UTC", "/f")
    for _ in range(20):
        if "TZ=UTC" in reg(w, "query", SERVICE_KEY, "/v", "Environment"):
            break
        time.sleep(0.5)
    else:
        pytest.fail("could not prepare the service key in Wine's registry")
    profile = tmp_path / "windows-targets.toml"
    user = __import__("getpass").getuser()
    profile.write_text(WINE_PROFILE + f'[account]\ntargets = ["machine", "service:GctiLca", '
                                 f'"user:{user}"]\n')
    yield {**w, "profile": profile}
    reg(w, "delete", SERVICE_KEY, "/f")
    for key in (MACHINE_KEY, r"HKCU\Environment"):
        for name in ("OPENSSL_CONF", "OPENSSL_MODULES"):
            reg(w, "delete", key, "/v", name, "/f")


def test_registry_targets_under_wine(registry_targets):
    w = registry_targets
    fipsboot("install", "--profile", str(w["profile"]), check=0)
    service = reg(w, "query", SERVICE_KEY, "/v", "Environment")
    assert ("TZ=UTC\\0OPENSSL_CONF=C:\\GCTI\\ORS_FIPS_CFG\\openssl.cnf\\0"
            "OPENSSL_MODULES=C:\\GCTI\\ORS 8.1.401.11\\fips") in service
    assert "C:\\GCTI\\ORS_FIPS_CFG\\openssl.cnf" in reg(w, "query", MACHINE_KEY, "/v",
                                                       "OPENSSL_CONF")
    # openssl.exe started with no FIPS variable of ours: Wine gives it the registry's.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSSL")}
    listing = subprocess.run([w["wine"], w["openssl"], "list", "-providers"], env=env,
                             capture_output=True, timeout=120).stdout.decode()
    assert providers.parse(listing.replace("\r\n", "\n"))["fips"].active
    assert verify(w)["targets"]["ok"]

    fipsboot("reset", "--profile", str(w["profile"]), check=0)
    assert "OPENSSL" not in reg(w, "query", SERVICE_KEY, "/v", "Environment")
    assert "TZ=UTC" in reg(w, "query", SERVICE_KEY, "/v", "Environment")
    assert reg(w, "query", MACHINE_KEY, "/v", "OPENSSL_CONF") == ""
    assert verify(w)["environment"]["ok"]

    # A hand edit of the service's value stops the rollback; --force keeps it in the journal.
    reg(w, "add", SERVICE_KEY, "/v", "Environment", "/t", "REG_MULTI_SZ", "/d",
        "TZ=CET", "/f")
    r = fipsboot("rollback", "--profile", str(w["profile"]), check=3)
    assert "service:GctiLca" in r.stderr
    fipsboot("rollback", "--profile", str(w["profile"]), "--force", check=0)
    fipsboot("rollback", "--profile", str(w["profile"]), check=0)
    assert reg(w, "query", SERVICE_KEY, "/v", "Environment").strip().endswith("TZ=UTC")
    assert reg(w, "query", MACHINE_KEY, "/v", "OPENSSL_CONF") == ""
    assert reg(w, "query", r"HKCU\Environment", "/v", "OPENSSL_MODULES") == ""


def test_report_under_wine(installed, tmp_path):
    """The report of a Windows installation: openssl.exe's provider, a fresh fipsinstall of
    fips.dll into a private folder beside the config (a path openssl.exe can see), the CMVP
    warning of the 3.0 build."""
    w = installed
    html = tmp_path / "report.html"
    r = fipsboot("report", "--profile", str(w["profile"]), "--json", "--html", str(html), check=0)
    result = json.loads(r.stdout)
    assert result["verdict"]["text"] == "FIPS mode" and result["verdict"]["warnings"] == ["cmvp"]
    by_id = {s["id"]: s for s in result["sections"]}
    assert by_id["provider"]["data"]["fips"]["version"].startswith("3.0.")
    st = by_id["self-test"]["data"]
    assert st["passed"] and st["matches_installed_fipsmodule_cnf"] and len(st["self_tests"]) >= 5
    assert "not a validated module" in by_id["cmvp"]["summary"]
    assert not [n for n in os.listdir(w["cfg"]) if n.startswith(".fipsboot-report-")]
    assert "Verdict: FIPS mode" in html.read_text()
