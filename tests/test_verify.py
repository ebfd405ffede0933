"""`fipsboot verify` end to end, against the real OpenSSL builds (3.0 and 3.5).

A clean install verifies; each fault a person or an upgrade can introduce makes verify exit 1
and fail the check that names it, with a reason that says what is wrong. Faults are made by
hand, the way they happen on a server: bytes of the module, lines of the config files, modes.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import pytest
from helpers import Installation, build, fipsboot, lay_out, sourced
from modulefaults import elf_section, flip_rodata_byte

from fipsboot import providers

FAST_CHECKS = ["files", "permissions", "fipsmodule.cnf", "module-mac", "openssl.cnf", "targets"]
ALL_CHECKS = FAST_CHECKS + ["providers", "negative-probe"]
CHECK_KEYS = {"name", "ok", "reason", "fix", "details", "severity"}


# --- helpers ----------------------------------------------------------------------------

def install(inst: Installation) -> Path:
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


def verify_json(profile: Path, *args: str, check: int | None = None) -> dict:
    r = fipsboot("verify", "--profile", str(profile), "--json", *args, check=check)
    try:
        result = json.loads(r.stdout)
    except ValueError:
        pytest.fail(f"verify --json printed no JSON (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
    result["_exit"] = r.returncode
    return result


def named(result: dict, name: str) -> List[dict]:
    return [c for c in result["checks"] if c["name"] == name]


def only(result: dict, name: str) -> dict:
    found = named(result, name)
    assert len(found) == 1, f"{len(found)} checks named {name!r}:\n{dump(result)}"
    return found[0]


def dump(result: dict) -> str:
    return "\n".join(f"{'PASS' if c['ok'] else 'FAIL'} {c['name']}: {c['reason']}"
                     for c in result["checks"])


def failing(profile: Path, *names: str) -> dict:
    """Run verify --json: it must exit 1, say ok=false, and fail each named check with a
    reason and a fix (a check named more than once must fail at least once)."""
    result = verify_json(profile)
    assert result["_exit"] == 1, dump(result)
    assert result["ok"] is False and result["mode"] == "fips"
    for c in result["checks"]:
        assert set(c) == CHECK_KEYS, c
    for name in names:
        bad = [c for c in named(result, name) if not c["ok"]]
        assert bad, f"check {name!r} did not fail:\n{dump(result)}"
        for c in bad:
            assert c["reason"].strip() and c["fix"], c
    return result


def failed_reason(result: dict, name: str) -> str:
    return " | ".join(c["reason"] for c in named(result, name) if not c["ok"])


def bare_providers(inst: Installation, env: Dict[str, str]) -> subprocess.CompletedProcess:
    """`openssl list -providers` with exactly `env` (what a server or an operator would get)."""
    return subprocess.run([str(inst.openssl), "list", "-providers"], capture_output=True,
                          text=True, env={"PATH": os.environ["PATH"], "LANG": "C", **env})


def loads_as_library(module: Path) -> bool:
    """dlopen the module in a separate process and find its provider entry point."""
    code = "import ctypes, sys; ctypes.CDLL(sys.argv[1]).OSSL_provider_init"
    return subprocess.run([sys.executable, "-c", code, str(module)],
                          capture_output=True).returncode == 0


def fips_listed(listing: str) -> bool:
    found = providers.parse(listing)
    return "fips" in found and found["fips"].active


@pytest.fixture
def installation35(testbed, tmp_path, state_dir) -> Installation:
    root = tmp_path / "server root"
    root.mkdir()
    return lay_out(build(testbed, "linux-3.5"), root, "3.5")


# --- a clean install verifies -----------------------------------------------------------

def test_clean_install_passes_every_check(installation, testbed):
    inst = installation
    profile = install(inst)
    result = verify_json(profile, check=0)
    assert result["ok"] is True and result["mode"] == "fips"
    assert set(result) == {"ok", "mode", "checks", "_exit"}
    # cmvp: the test bed's versions are FIPS-capable builds, not validated modules (a warning)
    assert [c["name"] for c in result["checks"]] == ALL_CHECKS + ["cmvp"]
    cmvp = result["checks"].pop()
    assert cmvp["ok"] is False and cmvp["severity"] == "warning" and cmvp["fix"], cmvp
    for c in result["checks"]:
        assert set(c) == CHECK_KEYS, c
        assert c["ok"] is True and c["fix"] is None and c["reason"].strip(), c
        assert isinstance(c["details"], dict)
    prov = only(result, "providers")
    expected = testbed[f"linux-{inst.version}"]["version"]
    assert expected.startswith(inst.version + ".")
    assert prov["details"]["fips_version"] == expected
    assert prov["details"]["libcrypto_version"] == expected
    assert expected in prov["reason"]
    assert prov["details"]["providers"]["fips"]["status"] == "active"
    assert prov["details"]["providers"]["base"]["status"] == "active"
    assert "default" not in prov["details"]["providers"]
    mac = only(result, "module-mac")["details"]["mac"]
    assert mac.replace(":", "") in \
        (inst.config_dir / "fipsmodule.cnf").read_text().replace(":", "")


def test_clean_install_text_output(installation30):
    profile = install(installation30)
    r = fipsboot("verify", "--profile", str(profile), check=0)
    lines = r.stdout.splitlines()
    for name in ALL_CHECKS:
        assert any(line.startswith("PASS") and f" {name} " in line for line in lines), r.stdout
    assert lines[-1] == "verify (fips): passed"


# --- faults -----------------------------------------------------------------------------

def test_corrupted_module_data_fails_mac_and_providers_while_bare_openssl_exits_0(installation):
    inst = installation
    profile = install(inst)
    flip_rodata_byte(inst.module)
    assert loads_as_library(inst.module), "the corrupted module must still load as a library"

    result = failing(profile, "module-mac", "providers")
    mac = only(result, "module-mac")
    assert "no longer matches" in mac["reason"] and str(inst.module) in mac["reason"]
    assert mac["details"]["recorded"] != mac["details"]["actual"]
    prov = only(result, "providers")
    assert "fips provider is not loaded" in prov["reason"]
    assert "fips" not in prov["details"]["providers"]
    assert only(result, "negative-probe")["ok"] is False  # no fips: MD5 is not refused
    # Why verify parses: the plain listing with the env file's environment exits 0.
    bare = bare_providers(inst, sourced(inst.envfile))
    assert bare.returncode == 0, bare.stderr
    assert not fips_listed(bare.stdout), bare.stdout
    assert "fips" not in providers.parse(bare.stdout)


def test_rodata_offset_agrees_with_readelf(installation30):
    readelf = shutil.which("readelf")
    if not readelf:
        pytest.skip("readelf is not installed")
    offset, size = elf_section(installation30.module, ".rodata")
    out = subprocess.run([readelf, "-S", "-W", str(installation30.module)], capture_output=True,
                         text=True, check=True).stdout
    line = next(line for line in out.splitlines() if " .rodata " in line)
    fields = line.split("]", 1)[1].split()  # name type address offset size ...
    assert (int(fields[3], 16), int(fields[4], 16)) == (offset, size)


def test_module_of_the_other_version_fails_module_mac(installation, testbed):
    inst = installation
    profile = install(inst)
    other = "3.5" if inst.version == "3.0" else "3.0"
    shutil.copy2(build(testbed, f"linux-{other}") / "fips" / "fips.so", inst.module)
    result = failing(profile, "module-mac", "providers")
    assert "no longer matches" in failed_reason(result, "module-mac")
    assert str(inst.module) in failed_reason(result, "module-mac")


def test_edited_module_mac_in_fipsmodule_cnf(installation):
    inst = installation
    profile = install(inst)
    cnf = inst.config_dir / "fipsmodule.cnf"
    text = cnf.read_text()
    start = text.index("module-mac = ") + len("module-mac = ")
    digit = text[start]
    text = text[:start] + ("0" if digit != "0" else "1") + text[start + 1:]
    cnf.write_text(text)
    result = failing(profile, "module-mac", "providers")
    assert "no longer matches" in failed_reason(result, "module-mac")
    assert only(result, "fipsmodule.cnf")["ok"] is True  # still well-formed
    assert "fips provider is not loaded" in failed_reason(result, "providers")


def test_openssl_modules_of_a_target_naming_an_empty_folder(installation):
    inst = installation
    profile = install(inst)
    empty = inst.root / "empty modules"
    empty.mkdir()
    text = inst.envfile.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("OPENSSL_MODULES="))
    inst.envfile.write_text(text.replace(line, f'OPENSSL_MODULES="{empty}"'))
    assert sourced(inst.envfile)["OPENSSL_MODULES"] == str(empty)

    result = failing(profile, "targets", "providers")
    spec = f"envfile:{inst.envfile}"
    targets = only(result, "targets")["reason"]
    assert spec in targets and "OPENSSL_MODULES" in targets and str(empty) in targets
    provs = named(result, "providers")
    launch = [c for c in provs if "environment of" not in c["reason"]]
    drifted = [c for c in provs if f"environment of {spec}" in c["reason"]]
    assert len(launch) == 1 and launch[0]["ok"], dump(result)  # the profile's own values work
    assert len(drifted) == 1 and not drifted[0]["ok"], dump(result)
    assert "fips provider is not loaded" in drifted[0]["reason"]
    # Only the env file drifted: no providers check for the other targets.
    assert len(provs) == 2


def test_missing_include_with_diagnostics_off_falls_back_to_default(installation):
    inst = installation
    profile = install(inst)
    cnf = inst.config_dir / "openssl.cnf"
    nowhere = inst.config_dir / "no such" / "fipsmodule.cnf"
    cnf.write_text(
        "config_diagnostics = 0\n"
        "openssl_conf = openssl_init\n"
        f".include {nowhere}\n"
        "[openssl_init]\nproviders = provider_sect\nalg_section = algorithm_sect\n"
        "[provider_sect]\nfips = fips_sect\nbase = base_sect\n"
        "[base_sect]\nactivate = 1\n"
        "[algorithm_sect]\ndefault_properties = fips=yes\n")
    result = failing(profile, "openssl.cnf", "providers")
    reason = failed_reason(result, "openssl.cnf")
    assert "config_diagnostics = 1" in reason
    assert str(inst.config_dir / "fipsmodule.cnf") in reason and str(nowhere) in reason
    # Root starts no openssl on a configuration that fails its check (review finding 4): the
    # live checks are reported as not run, failing.
    prov = only(result, "providers")
    assert prov["reason"].startswith("not run") and "openssl.cnf" in prov["reason"]
    # And that is what a server would get: default, exit 0, no fips.
    bare = bare_providers(inst, sourced(inst.envfile))
    assert bare.returncode == 0 and "default" in providers.parse(bare.stdout)
    assert not fips_listed(bare.stdout)


def test_base_not_activated(installation):
    inst = installation
    profile = install(inst)
    cnf = inst.config_dir / "openssl.cnf"
    text = cnf.read_text()
    assert "[base_sect]\nactivate = 1\n" in text
    cnf.write_text(text.replace("[base_sect]\nactivate = 1\n", "[base_sect]\n"))
    result = failing(profile, "openssl.cnf")
    assert "base provider is not activated" in failed_reason(result, "openssl.cnf")
    prov = only(result, "providers")  # not run on a failing openssl.cnf (review finding 4)
    assert prov["ok"] is False and prov["reason"].startswith("not run")


@pytest.mark.parametrize("key", ["hmac-key-check", "tls1-prf-ems-check", "tdes-encrypt-disabled",
                                 "no-short-mac", "security-checks"])
def test_35_check_key_set_to_yes_fails_fipsmodule_cnf_and_providers(installation35, key):
    """3.5 reads each of these keys as a strict 0/1 flag (`security-checks` too: seen here,
    `security-checks = yes` makes the 3.5 provider fail to load, silently)."""
    inst = installation35
    profile = install(inst)
    cnf = inst.config_dir / "fipsmodule.cnf"
    text = cnf.read_text()
    edited, count = re.subn(rf"^{re.escape(key)} = [01]$", f"{key} = yes", text, flags=re.M)
    assert count == 1, text
    cnf.write_text(edited)
    result = failing(profile, "fipsmodule.cnf", "providers")
    reason = failed_reason(result, "fipsmodule.cnf")
    assert key in reason and "'yes'" in reason and "0 or 1" in reason
    assert only(result, "module-mac")["ok"] is True  # the module itself is intact
    assert "fips provider is not loaded" in failed_reason(result, "providers")
    # Silent: the plain listing exits 0 without fips.
    bare = bare_providers(inst, sourced(inst.envfile))
    assert bare.returncode == 0 and not fips_listed(bare.stdout)


@pytest.mark.parametrize("value", ["0", "2"])
def test_35_activate_not_1_fails_fipsmodule_cnf(installation35, value):
    """3.0 to 3.2 only look for the key; 3.5 reads its value: `activate = 0` leaves the provider
    unloaded (and `2` makes it fail), so the fast check must not accept it."""
    inst = installation35
    profile = install(inst)
    cnf = inst.config_dir / "fipsmodule.cnf"
    text = cnf.read_text()
    assert "\nactivate = 1\n" in text
    cnf.write_text(text.replace("\nactivate = 1\n", f"\nactivate = {value}\n"))
    result = failing(profile, "fipsmodule.cnf", "providers")
    assert "activate" in failed_reason(result, "fipsmodule.cnf")
    # 0: fips silently absent; 2: openssl refuses to start. Either way providers fails.
    assert failed_reason(result, "providers")


def test_group_writable_config_folder_fails_permissions(installation):
    inst = installation
    profile = install(inst)
    inst.config_dir.chmod(inst.config_dir.stat().st_mode | 0o020)
    result = failing(profile, "permissions")
    reason = failed_reason(result, "permissions")
    assert str(inst.config_dir) in reason and "writable by group" in reason
    # Everything else still holds; root starts no openssl while permissions fail (review
    # finding 4): the live checks are reported as not run.
    bad = [c for c in result["checks"] if not c["ok"]]
    assert [c["name"] for c in bad] == ["permissions", "providers", "negative-probe"]
    assert all(c["reason"].startswith("not run") for c in bad[1:])


def test_env_file_openssl_conf_edited_by_hand(installation):
    inst = installation
    profile = install(inst)
    elsewhere = inst.root / "elsewhere" / "openssl.cnf"
    elsewhere.parent.mkdir()
    elsewhere.write_text("# someone else's config\n")
    text = inst.envfile.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("OPENSSL_CONF="))
    inst.envfile.write_text(text.replace(line, f'OPENSSL_CONF="{elsewhere}"'))
    result = failing(profile, "targets")
    reason = failed_reason(result, "targets")
    assert f"envfile:{inst.envfile}" in reason and "OPENSSL_CONF" in reason
    assert str(elsewhere) in reason and str(inst.config_dir / "openssl.cnf") in reason
    assert "systemd:" not in reason and "profile-file:" not in reason
    # The server started from that env file would not be in FIPS mode.
    drifted = [c for c in named(result, "providers") if "environment of envfile:" in c["reason"]]
    assert len(drifted) == 1 and not drifted[0]["ok"], dump(result)


def replace_include(inst: Installation, include: str) -> None:
    """Write `include` over openssl.cnf's .include line, as a person editing it would."""
    cnf = inst.config_dir / "openssl.cnf"
    text = cnf.read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith(".include "))
    cnf.write_text(text.replace(line, include))


def test_windows_style_backslash_include(installation):
    inst = installation
    profile = install(inst)
    backslashed = str(inst.config_dir / "fipsmodule.cnf").replace("/", "\\")
    replace_include(inst, f".include {backslashed}")
    result = failing(profile, "openssl.cnf", "providers")
    assert "backslash" in failed_reason(result, "openssl.cnf")


def test_windows_drive_backslash_include(installation30):
    inst = installation30
    profile = install(inst)
    replace_include(inst, ".include C:\\GCTI\\ORS_FIPS_CFG\\fipsmodule.cnf")
    result = failing(profile, "openssl.cnf")
    assert "backslash" in failed_reason(result, "openssl.cnf")


@pytest.mark.parametrize("form", ["quoted", "trailing comment", "equals sign"])
def test_equivalent_hand_written_include_forms_pass(installation, form):
    """Forms OpenSSL reads as the same include (FIPS-NOTES: spaces in the include path work,
    quoted or not; comments are stripped before a line is parsed): the provider loads, so the
    openssl.cnf check must not fail them."""
    inst = installation
    profile = install(inst)
    path = inst.config_dir / "fipsmodule.cnf"
    replace_include(inst, {"quoted": f'.include "{path}"',
                           "trailing comment": f".include {path} # fipsboot",
                           "equals sign": f".include = {path}"}[form])
    result = verify_json(profile)
    assert only(result, "providers")["ok"] is True  # OpenSSL itself reads the include
    assert only(result, "openssl.cnf")["ok"] is True, dump(result)
    assert result["_exit"] == 0 and result["ok"] is True


# --- --fast and usage -------------------------------------------------------------------

SENTINEL = """#!/bin/sh
echo "$0 $*" >> "{calls}"
exit 1
"""


def test_fast_starts_no_openssl_process(installation, tmp_path):
    """The installation's openssl and any `openssl` on PATH are replaced by a sentinel that
    records each start: --fast passes and records none; a live verify records them."""
    inst = installation
    profile = install(inst)
    calls = tmp_path / "openssl calls"
    decoy = tmp_path / "decoy bin"
    decoy.mkdir()
    for path in (inst.openssl, decoy / "openssl"):
        path.write_text(SENTINEL.format(calls=calls))
        path.chmod(0o755)
    path_env = {"PATH": f"{decoy}:{os.environ['PATH']}"}

    r = fipsboot("verify", "--profile", str(profile), "--fast", "--json", env=path_env, check=0)
    result = json.loads(r.stdout)
    assert result["ok"] is True and result["mode"] == "fips"
    assert [c["name"] for c in result["checks"]] == FAST_CHECKS
    assert all(c["ok"] for c in result["checks"])
    assert not calls.exists(), calls.read_text()

    # The sentinel is sound: without --fast, the same run starts it and fails.
    r = fipsboot("verify", "--profile", str(profile), "--json", env=path_env, check=1)
    assert calls.exists() and str(inst.openssl) in calls.read_text()
    assert only(json.loads(r.stdout), "providers")["ok"] is False


def test_fast_still_sees_the_file_faults(installation30):
    inst = installation30
    profile = install(inst)
    flip_rodata_byte(inst.module)
    result = verify_json(profile, "--fast", check=1)
    assert [c["name"] for c in result["checks"]] == FAST_CHECKS
    assert [c["name"] for c in result["checks"] if not c["ok"]] == ["module-mac"]


def test_missing_profile_is_exit_2(tmp_path, state_dir):
    missing = tmp_path / "nope.toml"
    r = fipsboot("verify", "--profile", str(missing), check=2)
    assert str(missing) in r.stderr
    r = fipsboot("verify", "--profile", str(missing), "--json", check=2)
    out = json.loads(r.stdout)
    assert "not found" in out["error"] and out["exit_code"] == 2
    assert not state_dir.exists()


def test_verify_before_install_fails_files(installation30):
    inst = installation30
    profile = inst.write_profile()
    result = failing(profile, "files")
    assert str(inst.config_dir / "openssl.cnf") in failed_reason(result, "files")
