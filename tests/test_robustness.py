"""Odd inputs and hostile edits: a clear message and exit code, nothing lost, nothing fooled."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from fakeregistry import FakeRegistry
from helpers import contents, fipsboot, sourced, tree_snapshot
from systemdstandin import stand_in_systemctl

from fipsboot.journal import Journal
from fipsboot.platforms import regseam
from fipsboot.platforms.windows import WindowsBackend
from fipsboot.profile import parse


def test_private_files_keep_their_mode(installation30):
    inst = installation30
    inst.envfile.write_text("DB_PASSWORD=s3cret\n")
    inst.envfile.chmod(0o600)
    inst.shell_profile.write_text("export SECRET=1\n")
    inst.shell_profile.chmod(0o600)
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    assert inst.envfile.stat().st_mode & 0o777 == 0o600
    assert inst.shell_profile.stat().st_mode & 0o777 == 0o600
    assert (inst.config_dir / "openssl.cnf").stat().st_mode & 0o777 == 0o644  # new file


def test_two_targets_in_one_file_are_refused(installation30):
    inst = installation30
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}",
                                          f"profile-file:{inst.envfile}"])
    before = tree_snapshot(inst.root)
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert "both name" in r.stderr
    assert tree_snapshot(inst.root) == before


def test_missing_config_dir_is_a_clear_error_and_nothing_is_created(installation30):
    inst = installation30
    shutil.rmtree(inst.config_dir)
    profile = inst.write_profile()
    r = fipsboot("install", "--profile", str(profile), check=1)
    assert "does not exist" in r.stderr and "mkdir" in r.stderr
    assert not inst.config_dir.exists()


def test_a_leftover_staging_folder_is_cleared(installation30):
    inst = installation30
    leftover = inst.config_dir / ".fipsboot-staging"
    leftover.mkdir()
    (leftover / "fipsmodule.cnf").write_text("from a killed run\n")
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    assert not leftover.exists()


def test_a_non_fips_module_loaded_as_fips_is_caught(installation30):
    """`module = legacy.so` in [fips_sect] loads the legacy provider under the name fips."""
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("run", "--profile", str(profile), "--", "true", check=0)  # warm cache
    legacy = Path(inst.build) / "lib64" / "ossl-modules" / "legacy.so"
    system_legacy = Path("/usr/lib/x86_64-linux-gnu/ossl-modules/legacy.so")
    target = legacy if legacy.exists() else system_legacy
    cnf = inst.config_dir / "fipsmodule.cnf"
    cnf.write_text(cnf.read_text().replace("[fips_sect]\n", f"[fips_sect]\nmodule = {target}\n"))
    r = fipsboot("verify", "--profile", str(profile), "--json", check=1)
    failed = {c["name"] for c in json.loads(r.stdout)["checks"] if not c["ok"]}
    assert "fipsmodule.cnf" in failed
    r = fipsboot("run", "--profile", str(profile), "--", "true", check=78)
    assert "fipsmodule.cnf" in r.stderr


def test_fips_module_must_be_named_as_openssl_loads_it(tmp_path, state_dir):
    profile = tmp_path / "p.toml"
    profile.write_text('[server]\ninstall-dir = "/opt/ors"\nfips-module = "fips/fips-3.0.so"\n')
    r = fipsboot("install", "--profile", str(profile), check=2)
    assert "fips-module" in r.stderr and "fips.so" in r.stderr


def test_an_edit_elsewhere_in_the_servers_options_file_is_no_conflict(installation30):
    inst = installation30
    options = inst.root / "ors.cfg"
    options.write_bytes(b"[scxml]\nfips-enabled = false\n[log]\nverbose = \xe9t\xe9\n")
    profile = inst.write_profile(
        f'fips-switch = {{ file = "{options}", section = "scxml", key = "fips-enabled" }}')
    fipsboot("install", "--profile", str(profile), check=0)
    assert options.read_bytes() == b"[scxml]\nfips-enabled = true\n[log]\nverbose = \xe9t\xe9\n"
    options.write_bytes(options.read_bytes().replace(b"verbose", b"verbose2"))
    fipsboot("reset", "--profile", str(profile), check=0)
    assert options.read_bytes() == b"[scxml]\nfips-enabled = false\n[log]\nverbose2 = \xe9t\xe9\n"


def test_backslash_in_a_linux_config_dir(installation30):
    inst = installation30
    odd = inst.root / "cfg\\x"
    odd.mkdir()
    profile = inst.write_profile(name="p.toml")
    profile.write_text(profile.read_text().replace(json.dumps(str(inst.config_dir)),
                                                   json.dumps(str(odd))))
    fipsboot("install", "--profile", str(profile), check=0)
    assert fipsboot("verify", "--profile", str(profile)).returncode == 0
    assert sourced(inst.envfile)["OPENSSL_CONF"] == f"{odd}/openssl.cnf"


def test_odd_inputs_give_messages_not_tracebacks(installation30, tmp_path):
    inst = installation30
    bad = tmp_path / "bad.toml"
    bad.write_text('account = 5\n[server]\ninstall-dir = "/opt/ors"\n')
    r = fipsboot("install", "--profile", str(bad), check=2)
    assert "Traceback" not in r.stderr and "[account]" in r.stderr
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    inst.envfile.write_text("OPENSSL_CONF='unterminated\n")
    r = fipsboot("verify", "--profile", str(profile))
    assert r.returncode == 1 and "Traceback" not in r.stderr
    blocker = inst.root / "a file"
    blocker.write_text("x")
    profile2 = inst.write_profile(targets=[f"envfile:{blocker}/env"], name="p2.toml")
    before = contents(tree_snapshot(inst.root))
    r = fipsboot("install", "--profile", str(profile2))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert contents(tree_snapshot(inst.root)) == before


def test_dry_runs_create_no_state(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), "--dry-run", check=0)
    fipsboot("reset", "--profile", str(profile), "--dry-run", check=0)
    assert not state_dir.exists()
    fipsboot("install", "--profile", str(profile), check=0)
    r = fipsboot("rollback", "--profile", str(profile), "--to", "99", "--dry-run")
    assert r.returncode == 1 and "no checkpoint 99" in r.stderr


def test_forced_rollbacks_keep_every_edited_copy(installation30):
    inst = installation30
    profile = inst.write_profile()
    kept = None
    for edit in ("A", "B"):
        fipsboot("install", "--profile", str(profile), check=0)
        inst.envfile.write_text(inst.envfile.read_text() + f"EDIT_{edit}=1\n")
        fipsboot("rollback", "--profile", str(profile), "--force", check=0)
        kept = next(inst.root.parent.glob("state/*/kept"))
    texts = sorted(p.read_text() for p in kept.glob("*gctilca"))
    assert len(texts) == 2 and "EDIT_A=1" in texts[0] and "EDIT_B=1" in texts[1]


def test_forced_rollback_keeps_an_edited_registry_value(state_dir):
    fake = FakeRegistry()
    fake.create_key(regseam.HKLM, r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment")
    profile = parse({"server": {"platform": "windows", "install-dir": "C:\\GCTI\\ORS"},
                     "account": {"targets": ["machine"]}}, Path("/p.toml"))
    backend = WindowsBackend(fake)
    journal = Journal.for_installation(profile.install_dir, backend.stores())
    (target,) = backend.targets(profile)
    change = target.change({"OPENSSL_CONF": "C:\\cfg\\openssl.cnf", "OPENSSL_MODULES": None})
    with journal.begin("install") as txn:
        txn.change(change.kind, change.key, change.new)
    fake.set_value(regseam.HKLM,
                   r"SYSTEM\CurrentControlSet\Control\Session Manager\Environment",
                   "OPENSSL_CONF", "C:\\by-hand.cnf", regseam.REG_SZ)
    journal.rollback(force=True)
    kept = list((journal.folder / "kept").glob("*registry.json"))
    assert kept and "C:\\\\by-hand.cnf" in kept[0].read_text()


def test_a_failed_daemon_reload_is_retried_by_the_next_run(installation30, tmp_path):
    """The reload fails once: install exits 5 with the files written; the next run, with
    nothing else to do, retries the reload and exits 0."""
    inst = installation30
    env, fail, count = stand_in_systemctl(tmp_path)
    fail.write_text("")
    profile = inst.write_profile()
    r = fipsboot("install", "--profile", str(profile), env=env, check=5)
    assert "daemon-reload" in r.stderr and "bus error" in r.stderr
    assert inst.dropin.exists()
    fail.unlink()
    r = fipsboot("install", "--profile", str(profile), "--json", env=env, check=0)
    out = json.loads(r.stdout)
    assert out["status"] == "unchanged" and "ran `systemctl daemon-reload`" in out["notes"]
    assert count() == 2
    fipsboot("install", "--profile", str(profile), env=env, check=0)
    assert count() == 2  # nothing pending, nothing changed


def _installed_then_reset(inst, env) -> Path:
    """Install, then reset, with a stand-in systemctl: a rollback then has a reset to undo."""
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), env=env, check=0)
    fipsboot("reset", "--profile", str(profile), env=env, check=0)
    return profile


def test_a_failed_reload_after_rollback_is_not_lost(installation30, tmp_path):
    inst = installation30
    env, fail, count = stand_in_systemctl(tmp_path)
    profile = _installed_then_reset(inst, env)
    fail.write_text("")
    fipsboot("rollback", "--profile", str(profile), env=env, check=5)  # undoes the reset
    fail.unlink()
    calls_before = count()
    r = fipsboot("rollback", "--profile", str(profile), "--list", "--json", env=env, check=0)
    assert [c["command"] for c in json.loads(r.stdout)["checkpoints"]] == ["install"]
    fipsboot("install", "--profile", str(profile), env=env, check=0)  # unchanged: retries
    assert count() == calls_before + 1


def test_a_killed_rollback_finished_later_reloads_systemd(installation30, tmp_path):
    inst = installation30
    env, fail, count = stand_in_systemctl(tmp_path)
    profile = _installed_then_reset(inst, env)
    before = count()
    r = fipsboot("rollback", "--profile", str(profile),
                 env={**env, "FIPSBOOT_TEST_KILL_AT": "2"})
    assert r.returncode == -9
    fipsboot("install", "--profile", str(profile), env=env, check=0)
    assert count() == before + 1
    assert "OPENSSL_CONF" in inst.dropin.read_text().split("UnsetEnvironment")[0]


def test_rollback_puts_back_only_the_switch_in_the_servers_file(installation30):
    inst = installation30
    options = inst.root / "ors.cfg"
    original = b"[log]\nverbose = standard\n"
    options.write_bytes(original)
    profile = inst.write_profile(
        f'fips-switch = {{ file = "{options}", section = "scxml", key = "fips-enabled" }}')
    fipsboot("install", "--profile", str(profile), check=0)
    assert options.read_bytes() == original + b"[scxml]\nfips-enabled = true\n"
    options.write_bytes(options.read_bytes().replace(b"standard", b"debug"))
    fipsboot("rollback", "--profile", str(profile), check=0)  # not a conflict
    assert options.read_bytes() == b"[log]\nverbose = debug\n"


def test_rollback_restores_modes_exactly(installation30):
    inst = installation30
    inst.envfile.write_text("A=1\n")
    inst.envfile.chmod(0o664)
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    assert inst.envfile.stat().st_mode & 0o777 == 0o644  # never group-writable while managed
    fipsboot("rollback", "--profile", str(profile), check=0)
    assert inst.envfile.stat().st_mode & 0o777 == 0o664


def test_a_damaged_journal_is_a_message_and_run_fails_closed(installation30, state_dir):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    (journal,) = state_dir.glob("*/journal.json")
    journal.write_text('{"format": 1, "mode": "fips"}')
    for command in ("install", "verify", "reset", "rollback"):
        r = fipsboot(command, "--profile", str(profile))
        assert r.returncode == 1 and "damaged" in r.stderr and "Traceback" not in r.stderr
    r = fipsboot("run", "--profile", str(profile), "--", "true")
    assert r.returncode == 78 and "damaged" in r.stderr and "Traceback" not in r.stderr


def test_profile_target_of_a_real_account(installation30, login_account):
    """profile:USER finds the home in the account database and the login file bash reads;
    a file fipsboot creates there belongs to the user; non-UTF-8 bytes outside the block stay."""
    inst = installation30
    home = Path(login_account.pw_dir)
    profile = inst.write_profile(targets=[f"profile:{login_account.pw_name}"])
    fipsboot("install", "--profile", str(profile), check=0)
    created = home / ".profile"
    assert created.stat().st_uid == login_account.pw_uid
    assert sourced(created)["OPENSSL_CONF"] == str(inst.config_dir / "openssl.cnf")
    fipsboot("rollback", "--profile", str(profile), check=0)
    assert not created.exists()
    bash_profile = home / ".bash_profile"
    bash_profile.write_bytes(b"# caf\xe9 (latin-1)\nexport EDITOR=vi\n")
    fipsboot("install", "--profile", str(profile), check=0)
    assert not created.exists()  # bash reads .bash_profile first: that is the one written
    assert bash_profile.read_bytes().startswith(b"# caf\xe9 (latin-1)\nexport EDITOR=vi\n")
    fipsboot("rollback", "--profile", str(profile), check=0)
    assert bash_profile.read_bytes() == b"# caf\xe9 (latin-1)\nexport EDITOR=vi\n"
