"""The adversarial review of the hardening (issues/review-hardening.md), findings 1 to 5, 11
and 13: each test replays the review's attack on the real test bed (a real second account
where one is involved) and fails on the tree the review was made on."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest
from helpers import fipsboot
from verifyhelpers import DEFAULT_BESIDE, failing, fast_result


def _installed(inst, targets=None) -> Path:
    profile = inst.write_profile(targets=targets)
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + "\n" + text)


def _give(path: Path, account) -> None:
    os.chown(path, account.pw_uid, account.pw_gid)


# --- 1. aliases OpenSSL accepts: prefix module names, skip_dot in provider keys ------------

def _evil_fips_section(inst, tmp_path) -> str:
    """A section loading a copy of fips.so from elsewhere, with the module's real values."""
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy2(inst.module, other / "fips.so")
    values = (inst.config_dir / "fipsmodule.cnf").read_text().split("[fips_sect]", 1)[1]
    return f"[evil_fips]\nx.module = {other / 'fips.so'}\n{values}"


def test_a_prefix_module_name_loading_another_fips_so_fails_verify_and_run(installation30,
                                                                           tmp_path):
    """The review's repro: `prov` is OpenSSL's `providers` module (prefix match) and
    `x.module` is `module` (skip_dot): another fips.so was loaded and every check passed."""
    inst = installation30
    profile = _installed(inst)
    fipsboot("run", "--profile", str(profile), "--", "true", check=0)  # a cached pass
    _append(inst.config_dir / "openssl.cnf",
            "[openssl_init]\nprov = evil_provs\n[evil_provs]\nfips = evil_fips\n"
            + _evil_fips_section(inst, tmp_path))
    bad = failing(fast_result(profile))
    assert "`prov`" in bad["openssl.cnf"]["reason"] and "x.module" in bad["openssl.cnf"]["reason"]
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "openssl.cnf" in r.stderr, r.stderr


@pytest.mark.parametrize("text, named", [
    ("[openssl_init]\ne = engine_sect\n[engine_sect]\n", "`e`"),  # `e` is `engines`
    ("[openssl_init]\nalg = other_alg\n[other_alg]\nfips_mode = no\n", "`alg`"),
    ("[base_sect]\nx.identity = default\n", "x.identity"),  # base would be `default`
    ("[algorithm_sect]\nfips_mode = no\n", "fips_mode"),
])
def test_every_alias_spelling_fails_openssl_cnf(installation30, text, named):
    inst = installation30
    profile = _installed(inst)
    _append(inst.config_dir / "openssl.cnf", text)
    result = fast_result(profile)
    assert result["_exit"] == 1 and named in failing(result)["openssl.cnf"]["reason"]


# --- 2. hidden includes: any spelling OpenSSL accepts, folders, pragmas ----------------------

@pytest.mark.parametrize("line", [
    ".includeX {hidden}",  # any name starting with .include followed by a space
    "default::.include {hidden}",  # a section:: prefix
    ".include={hidden}",
    ".include {folder}",  # a folder (OpenSSL reads B.CNF too: case-insensitive)
])
def test_a_hidden_include_fails_verify_and_never_serves_a_cached_verdict(installation30, line):
    inst = installation30
    profile = _installed(inst)
    fipsboot("run", "--profile", str(profile), "--", "true", check=0)  # a cached pass
    hidden = inst.root / "hidden.cnf"
    folder = inst.root / "hidden.d"
    folder.mkdir()
    hidden.write_text("")
    (folder / "B.CNF").write_text("")
    _append(inst.config_dir / "openssl.cnf", line.format(hidden=hidden, folder=folder) + "\n")
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "include" in r.stderr, r.stderr  # nothing cached for this
    hidden.write_text(DEFAULT_BESIDE)
    (folder / "B.CNF").write_text(DEFAULT_BESIDE)
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78, r.stderr
    bad = failing(fast_result(profile))
    assert "include" in bad["openssl.cnf"]["reason"]


def test_a_pragma_fails_openssl_cnf(installation30):
    inst = installation30
    profile = _installed(inst)
    cnf = inst.config_dir / "openssl.cnf"
    cnf.write_text(".pragma=dollarid:on\n" + cnf.read_text())
    assert "pragma" in failing(fast_result(profile))["openssl.cnf"]["reason"]


# --- 3. a drifted target another account can write never reaches a process root starts ------

def test_a_target_the_account_owns_is_not_probed_with_its_values(installation30, login_account):
    """profile:USER: the user points OPENSSL_CONF at a config of theirs. verify judges that
    statically and starts no openssl with the user's values."""
    inst = installation30
    home = Path(login_account.pw_dir)
    profile = _installed(inst, [f"profile:{login_account.pw_name}"])
    evil = home / "evil.cnf"
    evil.write_text("openssl_conf = init\n[init]\nevil_module = evil_sect\n[evil_sect]\n")
    _give(evil, login_account)
    dotprofile = home / ".profile"
    text = re.sub(r"export OPENSSL_CONF=.*", f'export OPENSSL_CONF="{evil}"',
                  dotprofile.read_text())
    dotprofile.write_text(text)  # as the user can: the file is theirs
    _give(dotprofile, login_account)
    r = fipsboot("verify", "--profile", str(profile), "--json")
    assert r.returncode == 1
    checks = json.loads(r.stdout)["checks"]
    spec = f"profile:{login_account.pw_name}"
    assert spec in next(c for c in checks if c["name"] == "targets")["reason"]
    drifted = [c for c in checks if c["name"] == "providers" and spec in c["reason"]]
    assert len(drifted) == 1 and drifted[0]["reason"].startswith("not run"), drifted
    assert "belongs to" in drifted[0]["reason"]


# --- 4. no openssl is started after the permissions check fails ---------------------------

def test_an_openssl_another_account_replaced_never_runs(installation30, login_account, tmp_path):
    inst = installation30
    profile = _installed(inst)
    marker = tmp_path / "ran-as-root"
    _give(inst.openssl, login_account)
    inst.openssl.write_text(f"#!/bin/sh\nid -u > '{marker}'\nexit 1\n")  # as the owner can
    _give(inst.openssl, login_account)
    r = fipsboot("verify", "--profile", str(profile), "--json")
    bad = failing(json.loads(r.stdout))
    assert r.returncode == 1 and "belongs to" in bad["permissions"]["reason"]
    assert bad["providers"]["reason"].startswith("not run")
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78
    for command in ("tls-check", "report", "status", "reset", "install"):
        fipsboot(command, "--profile", str(profile))
    assert not marker.exists(), "the other account's openssl ran as root"


# --- 5. openssl.cnf and fipsmodule.cnf belong to root ----------------------------------------

@pytest.mark.parametrize("name", ["openssl.cnf", "fipsmodule.cnf"])
def test_config_files_owned_by_another_account_fail_verify_and_install(installation30,
                                                                       login_account, name):
    inst = installation30
    profile = _installed(inst)
    path = inst.config_dir / name
    before = path.read_bytes()
    _give(path, login_account)
    bad = failing(fast_result(profile))
    assert f"belongs to {login_account.pw_name}" in bad["permissions"]["reason"]
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and f"belongs to {login_account.pw_name}" in r.stderr, r.stderr
    assert path.read_bytes() == before and path.stat().st_uid == login_account.pw_uid
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78


def test_a_folder_above_owned_by_another_account_is_refused(installation30, login_account):
    inst = installation30
    profile = _installed(inst)
    _give(inst.root / "GCTI", login_account)
    bad = failing(fast_result(profile))
    assert "folder on the way" in bad["permissions"]["reason"]
    assert "belongs to" in bad["permissions"]["reason"]


# --- 11. a group-writable folder above the installation ---------------------------------------

def test_a_group_writable_folder_on_the_way_is_refused_unless_sticky(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    (inst.root / "GCTI").chmod(0o775)
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and "folder on the way" in r.stderr and "group" in r.stderr
    assert not (inst.config_dir / "openssl.cnf").exists()
    (inst.root / "GCTI").chmod(0o1775)
    fipsboot("install", "--profile", str(profile), check=0)


# --- 13. [default] holds only openssl_conf and config_diagnostics ---------------------------

def test_another_app_name_in_default_fails_openssl_cnf(installation30):
    """A server that loads its config under its own app name (`ors`) would read [default]'s
    `ors = ...`, not `openssl_conf`."""
    inst = installation30
    profile = _installed(inst)
    cnf = inst.config_dir / "openssl.cnf"
    cnf.write_text("ors = other_init\n" + cnf.read_text()
                   + "\n[other_init]\nalg_section = other_alg\n[other_alg]\n"
                   "default_properties = -fips\n")
    result = fast_result(profile)
    assert result["_exit"] == 1 and "`ors`" in failing(result)["openssl.cnf"]["reason"]
