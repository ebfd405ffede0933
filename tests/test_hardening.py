"""Hardening (issue 11, issue 17 items 1 and 8): root is never steered by what another account
controls, and verify/run judge everything OpenSSL reads. Each test replays an attack or an
unlucky operator's step on the real test bed, with a real second account where one is
involved."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import WINE_PROFILE, fipsboot
from systemdstandin import RUNTIME_VAR
from verifyhelpers import DEFAULT_BESIDE, failing, fast_result, targets_check, verify_result


def _journal(state_dir: Path) -> Path:
    (journal,) = state_dir.glob("*/journal.json")
    return journal


# --- 1. file operations act on what they checked ------------------------------------------

def test_restore_never_chmods_through_a_link_the_account_planted(installation30, login_account,
                                                                 tmp_path):
    """The account owning ~/.profile makes it a link to a root-owned file whose bytes equal
    the backup, with the mode it wants restored (0777): neither rollback nor rollback --force
    may touch that file."""
    inst = installation30
    home = Path(login_account.pw_dir)
    secret = tmp_path / "root-only"
    secret.write_text("PATH=/usr/bin\n")
    secret.chmod(0o600)
    dotprofile = home / ".profile"
    dotprofile.write_text("PATH=/usr/bin\n")
    os.chown(dotprofile, login_account.pw_uid, login_account.pw_gid)
    dotprofile.chmod(0o777)
    profile = inst.write_profile(targets=[f"profile:{login_account.pw_name}"])
    fipsboot("install", "--profile", str(profile), check=0)
    dotprofile.unlink()  # what the account can do in its own home
    dotprofile.symlink_to(secret)
    os.lchown(dotprofile, login_account.pw_uid, login_account.pw_gid)
    for extra in ([], ["--force"]):
        r = fipsboot("rollback", "--profile", str(profile), *extra)
        assert r.returncode == 1, r.stderr
        assert "symbolic link" in r.stderr and "Traceback" not in r.stderr
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.read_text() == "PATH=/usr/bin\n"


def test_a_fifo_target_is_refused_not_waited_on(installation30):
    inst = installation30
    os.mkfifo(inst.envfile)
    profile = inst.write_profile()
    r = fipsboot("install", "--profile", str(profile), timeout=60)
    assert r.returncode == 1 and "FIFO" in r.stderr, r.stderr
    r = fipsboot("verify", "--profile", str(profile), "--fast", timeout=60)
    assert r.returncode == 1 and "FIFO" in r.stdout + r.stderr


def test_a_killed_write_leaves_no_temp_file_and_rollback_removes_its_folder(installation30):
    """Item 11: a kill inside the atomic write of the drop-in leaves `.50-fipsboot.conf.*`;
    the next command sweeps it, so the folder fipsboot created can go again."""
    inst = installation30
    profile = inst.write_profile(targets=["systemd:gctilca"])
    for step in range(1, 40):
        # kill inside the write: the temp file exists, the rename hasn't happened
        r = fipsboot("install", "--profile", str(profile),
                     env={"FIPSBOOT_TEST_KILL_AT": str(step), "FIPSBOOT_TEST_KILL_IN_WRITE": "1"})
        if r.returncode != -9:
            break
        folder = inst.systemd_dir / "gctilca.service.d"
        if folder.is_dir():  # as a kill inside an earlier write of the same file leaves it
            (folder / ".50-fipsboot.conf.0a1b2c3d.fipsboot-tmp").write_text("half")
        fipsboot("rollback", "--profile", str(profile))
        assert not list(inst.systemd_dir.rglob("*.fipsboot-tmp"))
        assert not (inst.systemd_dir / "gctilca.service.d").exists()
    assert step > 1


# --- 3. the state folder --------------------------------------------------------------------

def _umask0(*args):
    return subprocess.run(["sh", "-c", 'umask 000; exec "$@"', "sh", sys.executable, "-m",
                           "fipsboot", *args], capture_output=True, text=True)


def test_state_folder_has_fixed_modes_whatever_the_umask(installation30, state_dir):
    inst = installation30
    inst.envfile.write_text("A=1\n")
    profile = inst.write_profile()
    r = _umask0("install", "--profile", str(profile))
    assert r.returncode == 0, r.stderr
    folder = _journal(state_dir).parent

    def mode(p):
        return stat.S_IMODE(p.stat().st_mode)
    assert mode(state_dir) == 0o755 and mode(folder) == 0o755
    assert mode(folder / "journal.json") == 0o644 and mode(folder / "lock") == 0o600
    assert mode(folder / "backups") == 0o700
    backups = [p for p in (folder / "backups").rglob("*")]
    assert backups and all(mode(p) == (0o700 if p.is_dir() else 0o600) for p in backups)


def test_a_state_folder_others_can_change_is_refused(installation30, state_dir, login_account):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    folder = _journal(state_dir).parent
    folder.chmod(0o777)
    for command in ("install", "verify", "reset", "rollback"):
        r = fipsboot(command, "--profile", str(profile))
        assert r.returncode == 1 and "writable by group or others" in r.stderr, (command, r.stderr)
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "writable by group or others" in r.stderr
    folder.chmod(0o755)
    os.chown(_journal(state_dir), login_account.pw_uid, login_account.pw_gid)
    r = fipsboot("reset", "--profile", str(profile))
    assert r.returncode == 1 and "belongs to uid" in r.stderr
    os.chown(_journal(state_dir), 0, 0)
    fipsboot("reset", "--profile", str(profile), check=0)


def test_a_planted_lock_link_is_not_followed(installation30, state_dir, tmp_path):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    lock = _journal(state_dir).parent / "lock"
    lock.unlink()
    lock.symlink_to(victim)
    r = fipsboot("reset", "--profile", str(profile))
    assert r.returncode == 1 and "symbolic link" in r.stderr
    assert victim.read_text() == "precious\n"


@pytest.mark.parametrize("entry, why", [
    ({"kind": "file", "key": "/bin/sh-copy", "backup": "../../../../bin/sh", "mode": 0o755},
     "backup"),
    ({"kind": "file", "key": "/tmp/x", "backup": None, "mode": 0o4755}, "set-id"),
    ({"kind": "file", "key": "relative/x", "backup": None, "mode": None}, "absolute"),
    ({"kind": "../x", "key": "k"}, "entry"),
])
def test_every_journal_entry_is_validated_before_use(installation30, state_dir, entry, why):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    journal = _journal(state_dir)
    data = json.loads(journal.read_text())
    data["checkpoints"].append({"id": 9, "command": "install", "status": "pending",
                                "entries": [entry], "before": {}})
    journal.write_text(json.dumps(data))
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and "damaged" in r.stderr and why in r.stderr, r.stderr
    assert not Path("/bin/sh-copy").exists()


def test_a_planted_mode_is_refused(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    journal = _journal(state_dir)
    data = json.loads(journal.read_text())
    data["mode"] = "nonfips"
    journal.write_text(json.dumps(data))
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "damaged" in r.stderr


# --- 4, 5, 6 and issue 17 item 1: everything OpenSSL reads ------------------------------

def test_run_cache_covers_every_included_file(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    extra = inst.config_dir / "extra.cnf"
    extra.write_text("")
    cnf = inst.config_dir / "openssl.cnf"
    fipsboot("run", "--profile", str(profile), "--", "true", check=0)  # cached pass
    cnf.write_text(cnf.read_text() + f"\n.include {extra}\n")
    # Only fipsboot's own fipsmodule.cnf may be included (review finding 2): refused at once,
    # never served from the cache, whatever the included file holds.
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and str(extra) in r.stderr, r.stderr
    extra.write_text(DEFAULT_BESIDE)
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78, r.stderr


def test_a_module_key_loading_another_fips_so_fails_verify_and_run(installation30, tmp_path):
    """A second fips.so (here a byte-identical copy, so OpenSSL loads it happily) named by a
    `module` key in openssl.cnf: not this installation's module."""
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("run", "--profile", str(profile), "--", "true", check=0)  # cached pass
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(inst.module, elsewhere / "fips.so")
    cnf = inst.config_dir / "openssl.cnf"
    cnf.write_text(cnf.read_text() + f"\n[fips_sect]\nmodule = {elsewhere / 'fips.so'}\n")
    result = verify_result(profile)
    assert result["_exit"] == 1
    assert "module" in failing(result)["openssl.cnf"]["reason"]
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "module" in r.stderr


def test_only_fips_and_base_in_the_section_openssl_conf_names(installation30):
    """`openssl_conf` names another section that also activates `legacy`: verify judges that
    section (not [openssl_init]) and fails."""
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    cnf = inst.config_dir / "openssl.cnf"
    text = cnf.read_text().replace("openssl_conf = openssl_init", "openssl_conf = other_init")
    text += ("\n[other_init]\nproviders = other_prov\nalg_section = algorithm_sect\n"
             "[other_prov]\nfips = fips_sect\nbase = base_sect\nlegacy = legacy_sect\n"
             "[legacy_sect]\nactivate = 1\n")
    cnf.write_text(text)
    result = fast_result(profile)
    assert result["_exit"] == 1
    assert "legacy" in failing(result)["openssl.cnf"]["reason"]


# --- 9. a rerun finishes only the interrupted rollback -----------------------------------

def test_kill_9_at_every_step_of_rollback_then_rollback_again_undoes_one_checkpoint(
        installation30, state_dir):
    """install → reset → rollback killed at step N (including after its last journal save,
    during the follow-up) → rollback again: FIPS mode with the install's checkpoint, never
    one undo more."""
    inst = installation30
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}", "systemd:gctilca"])
    fipsboot("install", "--profile", str(profile), check=0)
    killed = 0
    for step in range(1, 60):
        fipsboot("reset", "--profile", str(profile), check=0)
        r = fipsboot("rollback", "--profile", str(profile),
                     env={"FIPSBOOT_TEST_KILL_AT": str(step)})
        if r.returncode != -9:
            assert r.returncode == 0, r.stderr
            break
        killed += 1
        fipsboot("rollback", "--profile", str(profile), check=0)
        data = json.loads(_journal(state_dir).read_text())
        assert data["mode"] == "fips", step
        assert [c["command"] for c in data["checkpoints"]] == ["install"], step
        assert "OPENSSL_CONF" in inst.envfile.read_text()
    assert killed >= 3


# --- 17. the Ctrl-C test under an ignored SIGINT ----------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_ctrl_c_forwarding_test_passes_when_the_suite_ignores_sigint():
    """A suite started as a background job or under nohup inherits SIGINT ignored."""
    import signal

    root = Path(__file__).resolve().parent.parent
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         str(root / "tests" / "test_windows_backend.py"), "-k", "forwards_ctrl_c"],
        capture_output=True, text=True, cwd=root, timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert r.returncode == 0 and "1 passed" in r.stdout, r.stdout[-2000:]


# --- 12 to 16: inputs ------------------------------------------------------------------------

def test_a_wrong_fips_key_is_refused_at_install_naming_fips_key(installation30):
    inst = installation30
    profile = inst.write_profile(f'fips-key = "{"00" * 32}"')
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and "fips-key" in r.stderr, r.stderr
    assert not (inst.config_dir / "openssl.cnf").exists()


@pytest.mark.parametrize("extra, key", [
    ('lib-dirs = ["lib64", "/usr/lib:/tmp"]', "lib-dirs"),
    ('fips-module = "/opt/a:b/fips.so"', "fips-module"),
    ('fipsinstall-options = ["-out=/etc/evil"]', "fipsinstall-options"),
    ('fipsinstall-options = ["--out", "/etc/evil"]', "fipsinstall-options"),
    ('fipsinstall-options = ["-macopt", "hexkey:00"]', "fipsinstall-options"),
    ('fipsinstall-options = ["-corrupt_desc", "-out", "/etc/evil"]', "fipsinstall-options"),
    ('fipsinstall-options = ["-section_name", "x"]', "fipsinstall-options"),
])
def test_inputs_that_would_escape_are_profile_errors(installation30, state_dir, extra, key):
    inst = installation30
    profile = inst.write_profile(extra)
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert key in r.stderr
    assert not state_dir.exists() and not (inst.config_dir / "fipsmodule.cnf").exists()


def test_a_colon_in_install_dir_is_a_profile_error(tmp_path, state_dir):
    profile = tmp_path / "p.toml"
    profile.write_text('[server]\ninstall-dir = "/opt/ors:/usr/lib"\n')
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert "install-dir" in r.stderr and "LD_LIBRARY_PATH" in r.stderr


@pytest.mark.parametrize("target", ["systemd:a/b", "systemd:../x", "profile:nosuchuser-fb"])
def test_bad_targets_are_profile_errors_before_anything_runs(installation30, state_dir, target):
    inst = installation30
    profile = inst.write_profile(targets=[target])
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert "targets" in r.stderr and target.split(":")[1] in r.stderr
    assert not (inst.config_dir / "fipsmodule.cnf").exists() and not state_dir.exists()


def test_a_backtick_in_the_config_folder_is_escaped(installation30, tmp_path):
    """OpenSSL's parser reads ` as a quote (issue 11 item 15, issue 17 item 8)."""
    inst = installation30
    odd = inst.root / "GCTI" / "CFG `x` 1"
    odd.mkdir()
    profile = inst.write_profile().read_text().replace(str(inst.config_dir), str(odd))
    path = tmp_path / "tick.toml"
    path.write_text(profile)
    fipsboot("install", "--profile", str(path), check=0)
    assert "\\`x\\`" in (odd / "openssl.cnf").read_text()
    fipsboot("verify", "--profile", str(path), check=0)
    fipsboot("run", "--profile", str(path), "--", "true", check=0)


def test_run_json_errors_are_json(installation30):
    inst = installation30
    profile = inst.write_profile()
    r = fipsboot("run", "--profile", str(profile), "--json", "--", "true")
    assert r.returncode == 2
    out = json.loads(r.stdout)
    assert set(out) == {"error", "fix", "exit_code"} and out["exit_code"] == 2
    fipsboot("install", "--profile", str(profile), check=0)
    (inst.config_dir / "fipsmodule.cnf").write_text("broken\n")
    r = fipsboot("run", "--profile", str(profile), "--json", "--", "true")
    assert r.returncode == 78 and json.loads(r.stdout)["exit_code"] == 78


def test_nonfips_run_strips_an_inherited_openssl_conf_include(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("reset", "--profile", str(profile), check=0)
    r = fipsboot("run", "--profile", str(profile), "--", "sh", "-c",
                 'printf "%s" "${OPENSSL_CONF_INCLUDE-unset}"',
                 env={"OPENSSL_CONF_INCLUDE": "/tmp/evil"}, check=0)
    assert r.stdout == "unset"


# --- 2. ownership -----------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["lib64", "tools/openssl", "fips", "config"])
def test_code_owned_by_another_account_is_refused(installation30, login_account, state_dir, what):
    inst = installation30
    profile = inst.write_profile()
    path = inst.config_dir if what == "config" else inst.install_dir / what
    os.chown(path, login_account.pw_uid, login_account.pw_gid)
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and f"belongs to {login_account.pw_name}" in r.stderr, r.stderr
    assert not list(state_dir.glob("*/journal.json"))  # nothing changed
    assert not (inst.config_dir / "fipsmodule.cnf").exists()
    os.chown(path, 0, 0)
    fipsboot("install", "--profile", str(profile), check=0)
    os.chown(path, login_account.pw_uid, login_account.pw_gid)
    result = fast_result(profile)
    assert result["_exit"] == 1 and "belongs to" in failing(result)["permissions"]["reason"]


def test_a_folder_on_the_way_writable_by_others_is_refused(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    (inst.root / "GCTI").chmod(0o777)
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and "folder on the way" in r.stderr
    (inst.root / "GCTI").chmod(0o1777)  # sticky: nobody can replace what root put there
    fipsboot("install", "--profile", str(profile), check=0)


# --- 10. an undo goes on past what needs no restoring ------------------------------------------

def test_a_failed_purge_is_undone_completely_on_a_read_only_config_folder(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    before = inst.envfile.read_bytes()
    folder = str(inst.config_dir)
    if subprocess.run(["mount", "--bind", folder, folder]).returncode != 0:
        pytest.skip("needs mount --bind (root with CAP_SYS_ADMIN)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", folder], check=True)
        r = fipsboot("reset", "--profile", str(profile), "--purge")
        assert r.returncode == 1 and "Read-only" in r.stderr, r.stderr
    finally:
        subprocess.run(["umount", folder], check=True)
    assert inst.envfile.read_bytes() == before  # back in FIPS form
    data = json.loads(_journal(state_dir).read_text())
    assert data["mode"] == "fips" and [c["status"] for c in data["checkpoints"]] == ["done"]
    fipsboot("verify", "--profile", str(profile), check=0)


# --- 7, 8. targets judged by what the service or shell ends up with; `export` kept ---------

def test_an_override_drop_in_read_after_fipsboots_is_judged(installation30):
    """`systemctl edit` writes override.conf, read after 50-fipsboot.conf."""
    inst = installation30
    profile = inst.write_profile(targets=["systemd:gctilca"])
    fipsboot("install", "--profile", str(profile), check=0)
    assert targets_check(profile)[0] == 0
    override = inst.dropin.parent / "override.conf"
    override.write_text("[Service]\nEnvironment=LD_LIBRARY_PATH=/usr/lib\n")
    code, check = targets_check(profile)
    assert code == 1 and "LD_LIBRARY_PATH" in check["reason"]
    override.write_text("[Service]\nUnsetEnvironment=OPENSSL_CONF\n")
    code, check = targets_check(profile)
    assert code == 1 and "OPENSSL_CONF" in check["reason"]
    override.unlink()
    early = inst.dropin.parent / "10-early.conf"  # read before fipsboot's: overridden by it
    early.write_text("[Service]\nEnvironment=OPENSSL_CONF=/elsewhere.cnf\n")
    assert targets_check(profile)[0] == 0


def test_a_later_unset_in_the_env_file_is_judged_and_install_takes_it_out(installation30):
    inst = installation30
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}"])
    fipsboot("install", "--profile", str(profile), check=0)
    with inst.envfile.open("a") as f:
        f.write("unset OPENSSL_CONF TZ\n")
    code, check = targets_check(profile)
    assert code == 1 and "OPENSSL_CONF" in check["reason"]
    fipsboot("install", "--profile", str(profile), check=0)
    assert "unset TZ\n" in inst.envfile.read_text()
    assert targets_check(profile)[0] == 0
    with inst.envfile.open("a") as f:
        f.write('eval "OPENSSL_CONF=/x"\n')
    code, check = targets_check(profile)
    assert code == 1 and "can't judge" in check["reason"]


def test_export_lines_keep_their_export(installation30):
    inst = installation30
    inst.envfile.write_text('export OPENSSL_CONF="/old.cnf"\nexport TZ=UTC\nLD_LIBRARY_PATH=/a\n')
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}"])
    fipsboot("install", "--profile", str(profile), check=0)
    text = inst.envfile.read_text()
    assert f'export OPENSSL_CONF="{inst.config_dir}/openssl.cnf"\n' in text
    assert "export TZ=UTC\n" in text and "\nLD_LIBRARY_PATH=" in "\n" + text
    out = subprocess.run(["sh", "-c", '. "$1"; sh -c \'printf %s "$OPENSSL_CONF"\'', "sh",
                          str(inst.envfile)], capture_output=True, text=True, check=True).stdout
    assert out == f"{inst.config_dir}/openssl.cnf"  # a child of the sourcing shell gets it


# --- issue 17 items 1 and 8 under Wine: the same proof and escaping on Windows -----------------

@pytest.mark.wine
def test_windows_openssl_cnf_loading_another_fips_dll_fails_verify_and_run(wine_install, tmp_path,
                                                                            state_dir):
    """A second [fips_sect] with `module = C:/other/fips.dll` (a copy: its module-mac matches)."""
    profile = tmp_path / "windows.toml"
    profile.write_text(WINE_PROFILE)
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("run", "--profile", str(profile), "--", "true", timeout=300, check=0)  # cached
    other = Path(wine_install["gcti"]).parent / "other"
    other.mkdir(exist_ok=True)
    try:
        shutil.copy2(Path(wine_install["gcti"]) / "ORS 8.1.401.11" / "fips" / "fips.dll", other)
        cnf = Path(wine_install["gcti"]) / "ORS_FIPS_CFG" / "openssl.cnf"
        cnf.write_text(cnf.read_text() + "\n[fips_sect]\nmodule = C:/other/fips.dll\n")
        result = fast_result(profile)
        assert result["_exit"] == 1 and "module" in failing(result)["openssl.cnf"]["reason"]
        r = fipsboot("run", "--profile", str(profile), "--", "true", timeout=300)
        assert r.returncode == 78 and "module" in r.stderr
    finally:
        shutil.rmtree(other, ignore_errors=True)


@pytest.mark.wine
def test_windows_backtick_in_the_config_folder_is_escaped(wine_install, tmp_path, state_dir):
    cfg = Path(wine_install["gcti"]) / "CFG `x`"
    cfg.mkdir()
    profile = tmp_path / "windows.toml"
    profile.write_text(WINE_PROFILE.replace("ORS_FIPS_CFG", "CFG `x`"))
    fipsboot("install", "--profile", str(profile), check=0)
    assert ".include C:/GCTI/CFG \\`x\\`/fipsmodule.cnf" in (cfg / "openssl.cnf").read_text()
    fipsboot("verify", "--profile", str(profile), check=0)


def test_rollback_killed_during_a_slow_daemon_reload_then_rerun_undoes_one_checkpoint(
        installation30, state_dir, tmp_path):
    """The kill lands after rollback's last journal save, while systemctl daemon-reload runs
    (a stand-in systemctl kills its caller, as an operator's kill -9 would)."""
    inst = installation30
    runtime, bin_dir = tmp_path / "run-systemd", tmp_path / "bin"
    runtime.mkdir()
    bin_dir.mkdir()
    armed = tmp_path / "armed"
    (bin_dir / "systemctl").write_text(
        f'#!/bin/sh\nif [ -e "{armed}" ]; then rm "{armed}"; kill -9 $PPID; sleep 5; fi\n')
    (bin_dir / "systemctl").chmod(0o755)
    env = {RUNTIME_VAR: str(runtime), "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}", "systemd:gctilca"])
    fipsboot("install", "--profile", str(profile), env=env, check=0)
    fipsboot("reset", "--profile", str(profile), env=env, check=0)
    armed.write_text("")
    r = fipsboot("rollback", "--profile", str(profile), env=env)
    assert r.returncode == -9 and not armed.exists()
    fipsboot("rollback", "--profile", str(profile), env=env, check=0)  # the documented recovery
    data = json.loads(_journal(state_dir).read_text())
    assert data["mode"] == "fips" and [c["command"] for c in data["checkpoints"]] == ["install"]
    assert "OPENSSL_CONF" in inst.envfile.read_text()
    fipsboot("rollback", "--profile", str(profile), env=env, check=0)  # a new rollback: install
    assert not json.loads(_journal(state_dir).read_text())["checkpoints"]
