"""`fipsboot install` end to end, against the real OpenSSL builds (3.0 and 3.5)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess

import pytest
from helpers import contents, fipsboot, providers_with_env, sourced, tree_snapshot

from fipsboot import fsutil, providers
from fipsboot.journal import Journal

USER_ENVFILE = "# LCA settings\nGCTI_HOME=/opt/genesys\nLD_LIBRARY_PATH=/opt/other/lib\n"
USER_PROFILE = "# root's profile\nexport PATH=$PATH:/opt/genesys/bin\n"


def fips_active(listing: str) -> bool:
    found = providers.parse(listing)
    return "fips" in found and found["fips"].active


def md5_refused(openssl, env) -> bool:
    r = subprocess.run([str(openssl), "dgst", "-md5"], input=b"x", capture_output=True,
                       env={"PATH": os.environ["PATH"], **env})
    return r.returncode != 0 and b"unsupported" in r.stderr.lower()


def with_user_content(inst):
    inst.envfile.write_text(USER_ENVFILE)
    inst.shell_profile.write_text(USER_PROFILE)


def test_install_configures_every_target_for_real(installation):
    inst = installation
    with_user_content(inst)
    profile = inst.write_profile()
    r = fipsboot("install", "--profile", str(profile), check=0)
    assert "installed" in r.stdout

    env = sourced(inst.envfile)
    assert env == {
        "OPENSSL_CONF": str(inst.config_dir / "openssl.cnf"),
        "OPENSSL_MODULES": str(inst.module.parent),
        "LD_LIBRARY_PATH": f"{inst.module.parent}:{inst.lib64}:/opt/other/lib",
    }
    # The installation's openssl and the system's, with exactly the env file's values.
    for openssl in (inst.openssl, shutil.which("openssl")):
        listing = providers_with_env(openssl, env)
        assert fips_active(listing), f"{openssl}:\n{listing}"
        assert "  default\n" not in listing
        assert md5_refused(openssl, env)
    # The user's lines stay, byte for byte.
    assert inst.envfile.read_text().startswith("# LCA settings\nGCTI_HOME=/opt/genesys\n")
    # The drop-in and the profile block hold the same values (each keeps its own extra
    # library folders: only the env file had one).
    own = {**env, "LD_LIBRARY_PATH": f"{inst.module.parent}:{inst.lib64}"}
    dropin = inst.dropin.read_text()
    for key, value in own.items():
        assert f'Environment="{key}={value}"' in dropin
    assert sourced(inst.shell_profile) == own
    assert inst.shell_profile.read_text().startswith(USER_PROFILE)
    # Files written are 0644, and the include is absolute, forward slashes.
    for f in (inst.config_dir / "openssl.cnf", inst.config_dir / "fipsmodule.cnf", inst.dropin):
        assert f.stat().st_mode & 0o777 == 0o644
    assert f".include {inst.config_dir}/fipsmodule.cnf" in \
        (inst.config_dir / "openssl.cnf").read_text()
    assert fipsboot("verify", "--profile", str(profile)).returncode == 0


def test_self_test_failure_names_the_test_and_changes_nothing(installation):
    inst = installation
    with_user_content(inst)
    (inst.config_dir / "openssl.cnf").write_text("# the operator's own\n")
    profile = inst.write_profile(
        'fipsinstall-options = ["-corrupt_desc", "SHA2", "-corrupt_type", "KAT_Digest"]')
    before = tree_snapshot(inst.root)
    r = fipsboot("install", "--profile", str(profile), check=1)
    assert "fipsinstall failed" in r.stderr and "SHA2" in r.stderr and "KAT_Digest" in r.stderr
    assert tree_snapshot(inst.root) == before
    assert not list(inst.config_dir.glob(".fipsboot-*"))


def test_second_run_is_unchanged_and_writes_nothing(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    before = tree_snapshot(inst.root)
    r = fipsboot("install", "--profile", str(profile), "--json", check=0)
    assert json.loads(r.stdout)["status"] == "unchanged"
    assert tree_snapshot(inst.root) == before  # bytes, modes and mtimes


def test_dry_run_prints_the_plan_and_touches_nothing(installation30, state_dir):
    inst = installation30
    with_user_content(inst)
    profile = inst.write_profile()
    before = tree_snapshot(inst.root)
    r = fipsboot("install", "--profile", str(profile), "--dry-run", "--json", check=0)
    result = json.loads(r.stdout)
    assert result["status"] == "dry-run"
    by_target = {c["target"]: c for c in result["plan"]}
    env_change = by_target[f"envfile:{inst.envfile}"]
    assert env_change["action"] == "update"
    assert env_change["variables"]["LD_LIBRARY_PATH"] == {
        "old": "/opt/other/lib", "new": f"{inst.module.parent}:{inst.lib64}:/opt/other/lib"}
    assert by_target["openssl.cnf"]["action"] == "create"
    assert tree_snapshot(inst.root) == before
    assert not state_dir.exists() or not list(state_dir.rglob("journal.json"))


def test_a_second_install_waits_for_the_lock(installation30):
    inst = installation30
    profile = inst.write_profile()
    journal = Journal.for_installation(str(inst.install_dir))
    with journal.lock():
        r = fipsboot("install", "--profile", str(profile), check=4)
    assert "another fipsboot" in r.stderr
    assert not (inst.config_dir / "openssl.cnf").exists()


@pytest.mark.parametrize("mode", ["kill", "fail"])
def test_interrupted_install_leaves_files_whole_and_the_next_run_finishes(installation30, mode):
    inst = installation30
    with_user_content(inst)
    profile = inst.write_profile()
    files = [inst.envfile, inst.shell_profile, inst.dropin, inst.config_dir / "openssl.cnf",
             inst.config_dir / "fipsmodule.cnf"]
    old = {p: fsutil.read(p) for p in files}
    clean_root = tree_snapshot(inst.root)
    # What a clean install writes, to compare against.
    fipsboot("install", "--profile", str(profile), check=0)
    new = {p: fsutil.read(p) for p in files}
    fipsboot("rollback", "--profile", str(profile), check=0)
    step, seen_success = 1, False
    while not seen_success:
        var = "FIPSBOOT_TEST_KILL_AT" if mode == "kill" else "FIPSBOOT_TEST_FAIL_AT"
        r = fipsboot("install", "--profile", str(profile), env={var: str(step)})
        if r.returncode == 0:
            seen_success = True
            break
        if mode == "kill":
            assert r.returncode == -signal.SIGKILL, r.stderr
        else:
            assert r.returncode == 1 and "injected failure" in r.stderr, r.stderr
            assert contents(tree_snapshot(inst.root)) == contents(clean_root)  # rolled back
        for p in files:  # each file wholly old or wholly new, never half-written
            assert fsutil.read(p) in (old[p], new[p]), p
        # The next plain run recovers and completes.
        fipsboot("install", "--profile", str(profile), check=0)
        assert fipsboot("verify", "--profile", str(profile)).returncode == 0
        assert inst.envfile.read_text().startswith("# LCA settings\nGCTI_HOME=/opt/genesys\n")
        # Back to the start for the next kill point.
        fipsboot("rollback", "--profile", str(profile), "--to", "1", check=0)
        assert contents(tree_snapshot(inst.root)) == contents(clean_root)
        step += 1
    assert step > 8  # the kill points covered every backup, record and write


@pytest.mark.parametrize("body, key", [
    ('[server]\nconfig-dir = "/tmp"\n', "install-dir"),
    ('[server]\ninstall-dir = "relative/ors"\n', "install-dir"),
    ('[server]\ninstall-dir = "/opt/ors"\nlib-dirs = "lib64"\n', "lib-dirs"),
    ('[server]\ninstall-dir = "/opt/ors"\nfips-modul = "x"\n', "fips-modul"),
    ('[server]\ninstall-dir = "/opt/ors"\n[account]\ntargets = ["nosuch:x"]\n', "targets"),
    ('[server]\ninstall-dir = "/opt/ors"\n[account]\ntargets = ["envfile:rel"]\n', "targets"),
    ('[server\ninstall-dir = 1', "TOML"),
])
def test_bad_profile_is_a_usage_error_naming_the_key(tmp_path, state_dir, body, key):
    profile = tmp_path / "bad.toml"
    profile.write_text(body)
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert key in r.stderr and str(profile) in r.stderr
    assert not state_dir.exists()


def test_missing_profile_and_json_error(tmp_path):
    r = fipsboot("install", "--profile", str(tmp_path / "nope.toml"), "--json", check=2)
    assert "not found" in json.loads(r.stdout)["error"]


def test_hand_edit_stops_install_and_force_keeps_the_edit_in_the_journal(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    cnf = inst.config_dir / "openssl.cnf"
    edited = cnf.read_text().replace("config_diagnostics = 1", "config_diagnostics = 0")
    cnf.write_text(edited)
    r = fipsboot("install", "--profile", str(profile), check=3)
    assert "openssl.cnf" in r.stderr and "edited" in r.stderr and "--force" in r.stderr
    assert cnf.read_text() == edited
    fipsboot("install", "--profile", str(profile), "--force", check=0)
    assert "config_diagnostics = 1" in cnf.read_text()
    fipsboot("rollback", "--profile", str(profile), check=0)  # the edited copy comes back
    assert cnf.read_text() == edited


def test_group_writable_config_dir_is_refused(installation30):
    inst = installation30
    profile = inst.write_profile()
    inst.config_dir.chmod(0o775)
    before = tree_snapshot(inst.root)
    r = fipsboot("install", "--profile", str(profile), check=1)
    assert "writable by group" in r.stderr and str(inst.config_dir) in r.stderr
    assert tree_snapshot(inst.root) == before


def test_symlinked_target_is_not_followed(installation30, tmp_path):
    inst = installation30
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "real").write_text("A=1\n")
    inst.envfile.symlink_to(elsewhere / "real")
    profile = inst.write_profile()
    r = fipsboot("install", "--profile", str(profile), check=1)
    assert "symbolic link" in r.stderr
    assert (elsewhere / "real").read_text() == "A=1\n"
    assert not (inst.config_dir / "openssl.cnf").exists()


def test_config_dir_with_openssl_special_characters(installation30, tmp_path):
    """`$`, `#`, quotes and spaces in the path: escaped so OpenSSL reads the real path."""
    inst = installation30
    odd = inst.root / "cfg $HOME #1 'q'"
    odd.mkdir()
    profile = inst.write_profile(name="p.toml")
    profile.write_text(profile.read_text().replace(
        json.dumps(str(inst.config_dir)), json.dumps(str(odd))))
    fipsboot("install", "--profile", str(profile), check=0)
    assert fipsboot("verify", "--profile", str(profile)).returncode == 0
    env = sourced(inst.envfile)
    assert env["OPENSSL_CONF"] == f"{odd}/openssl.cnf"
    assert fips_active(providers_with_env(inst.openssl, env))


def test_control_character_in_config_dir_is_refused(installation30):
    inst = installation30
    profile = inst.write_profile(name="p.toml")
    profile.write_text(profile.read_text().replace(
        json.dumps(str(inst.config_dir)), json.dumps(str(inst.root / "a\tb"))))
    (inst.root / "a\tb").mkdir()
    r = fipsboot("install", "--profile", str(profile), check=1)
    assert "control character" in r.stderr


def test_stale_fips_folder_of_an_earlier_install_is_dropped(installation30):
    inst = installation30
    old_fips = inst.root / "old ors" / "fips"
    old_fips.mkdir(parents=True)
    shutil.copy2(inst.module, old_fips / "fips.so")
    inst.envfile.write_text(f'LD_LIBRARY_PATH="{old_fips}:/opt/keep"\n')
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    assert sourced(inst.envfile)["LD_LIBRARY_PATH"] == \
        f"{inst.module.parent}:{inst.lib64}:/opt/keep"
