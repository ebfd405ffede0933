"""`fipsboot reset` (non-FIPS mode) and `fipsboot rollback`, against the real OpenSSL builds."""
from __future__ import annotations

import json
import signal

import pytest
from helpers import contents, fipsboot, providers_with_env, sourced, tree_snapshot

from fipsboot import providers

OPTIONS = ("# ORS local options\r\n[scxml]\r\nfips-enabled = false\r\nmax-sessions=10\r\n"
           "\r\n[log]\r\nverbose = all\r\n")


def with_user_content(inst):
    inst.envfile.write_text("GCTI_HOME=/opt/genesys\nLD_LIBRARY_PATH=/opt/other/lib\n")
    inst.shell_profile.write_text("export PATH=$PATH:/opt/genesys/bin\n")
    inst.dropin.parent.mkdir(parents=True)
    (inst.dropin.parent / "10-user.conf").write_text("[Service]\nLimitNOFILE=65536\n")
    (inst.config_dir / "openssl.cnf").write_text("# the operator's earlier attempt\n")
    options = inst.root / "ors.cfg"
    options.write_bytes(OPTIONS.encode())
    return options


def switch_profile(inst, options):
    return inst.write_profile(
        f'fips-switch = {{ file = "{options}", section = "scxml", key = "fips-enabled" }}')


def test_reset_gives_non_fips_mode(installation):
    inst = installation
    options = with_user_content(inst)
    profile = switch_profile(inst, options)
    fipsboot("install", "--profile", str(profile), check=0)
    assert b"fips-enabled = true\r\n" in options.read_bytes()
    r = fipsboot("reset", "--profile", str(profile), "--json", check=0)
    assert json.loads(r.stdout)["status"] == "reset"

    env = sourced(inst.envfile)
    assert "OPENSSL_CONF" not in env and "OPENSSL_MODULES" not in env
    assert env["LD_LIBRARY_PATH"] == f"{inst.security_pack}:{inst.lib64}:/opt/other/lib"
    assert "OPENSSL_CONF" not in sourced(inst.shell_profile)
    dropin = inst.dropin.read_text()
    assert "OPENSSL_CONF" not in dropin.split("UnsetEnvironment=")[0]
    assert "UnsetEnvironment=OPENSSL_CONF OPENSSL_MODULES" in dropin
    # The server's switch is off, every other byte of its options file unchanged.
    assert options.read_bytes() == OPTIONS.encode()
    # The generated files stay (install returns quickly), unless --purge.
    assert (inst.config_dir / "fipsmodule.cnf").exists()
    # A process started with the env file's environment gets the default provider, no fips.
    found = providers.parse(providers_with_env(inst.openssl, env))
    assert "default" in found and "fips" not in found
    v = fipsboot("verify", "--profile", str(profile), "--json", check=0)
    assert json.loads(v.stdout)["mode"] == "non-fips"
    # And back: install again is quick (fipsmodule.cnf reused) and FIPS again.
    r = fipsboot("install", "--profile", str(profile), "--json", check=0)
    assert "self_tests" not in json.loads(r.stdout)
    assert fipsboot("verify", "--profile", str(profile)).returncode == 0


def test_round_trip_restores_every_byte(installation30):
    inst = installation30
    options = with_user_content(inst)
    profile = switch_profile(inst, options)
    start = contents(tree_snapshot(inst.root))
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("reset", "--profile", str(profile), check=0)
    fipsboot("install", "--profile", str(profile), check=0)
    listed = json.loads(fipsboot("rollback", "--profile", str(profile), "--list", "--json",
                                 check=0).stdout)
    assert [c["command"] for c in listed["checkpoints"]] == ["install", "reset", "install"]
    for _ in range(3):
        fipsboot("rollback", "--profile", str(profile), check=0)
    assert contents(tree_snapshot(inst.root)) == start
    r = fipsboot("rollback", "--profile", str(profile))
    assert r.returncode == 1 and "nothing to roll back" in r.stderr


def test_rollback_to_an_earlier_checkpoint(installation30):
    inst = installation30
    profile = inst.write_profile()
    start = contents(tree_snapshot(inst.root))
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("reset", "--profile", str(profile), check=0)
    dry = json.loads(fipsboot("rollback", "--profile", str(profile), "--to", "1", "--dry-run",
                              "--json", check=0).stdout)
    assert [c["id"] for c in dry["would_undo"]] == [2, 1]
    fipsboot("rollback", "--profile", str(profile), "--to", "1", check=0)
    assert contents(tree_snapshot(inst.root)) == start
    assert not inst.envfile.exists() and not inst.dropin.parent.exists()


def test_purge_removes_generated_files(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    fipsboot("reset", "--profile", str(profile), "--purge", check=0)
    assert not (inst.config_dir / "openssl.cnf").exists()
    assert not (inst.config_dir / "fipsmodule.cnf").exists()


def test_hand_edit_stops_reset_and_rollback(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    inst.envfile.write_text(inst.envfile.read_text() + "# my note\n")
    # The env file's managed values are intact: the note is the user's and stays.
    fipsboot("reset", "--profile", str(profile), check=0)
    assert inst.envfile.read_text().endswith("# my note\n")
    text = inst.envfile.read_text().replace("lib64", "lib64:/opt/mine")
    inst.envfile.write_text(text)
    before = tree_snapshot(inst.root)
    r = fipsboot("rollback", "--profile", str(profile), check=3)
    assert str(inst.envfile) in r.stderr and "--force" in r.stderr
    assert tree_snapshot(inst.root) == before
    fipsboot("rollback", "--profile", str(profile), "--force", check=0)
    kept = list((next(iter(inst.root.parent.glob("state/*")))).glob("kept/*gctilca"))
    assert kept and kept[0].read_text() == text  # the edited copy is kept


def test_reset_refuses_a_hand_edited_drop_in(installation30):
    inst = installation30
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    inst.dropin.write_text(inst.dropin.read_text() + "Environment=EXTRA=1\n")
    r = fipsboot("reset", "--profile", str(profile), check=3)
    assert "systemd:gctilca" in r.stderr
    fipsboot("reset", "--profile", str(profile), "--force", check=0)


@pytest.mark.parametrize("command", ["reset", "rollback"])
def test_kill_9_then_the_same_command_completes(installation30, command):
    inst = installation30
    options = with_user_content(inst)
    profile = switch_profile(inst, options)
    start = contents(tree_snapshot(inst.root))
    fipsboot("install", "--profile", str(profile), check=0)
    installed = contents(tree_snapshot(inst.root))
    fipsboot(command, "--profile", str(profile), check=0)
    done = contents(tree_snapshot(inst.root))
    if command == "reset":
        fipsboot("rollback", "--profile", str(profile), check=0)
    else:
        fipsboot("install", "--profile", str(profile), check=0)
    assert contents(tree_snapshot(inst.root)) == installed
    step = 1
    while True:
        r = fipsboot(command, "--profile", str(profile), env={"FIPSBOOT_TEST_KILL_AT": str(step)})
        if r.returncode == 0:
            break
        assert r.returncode == -signal.SIGKILL, r.stderr
        fipsboot(command, "--profile", str(profile), check=0)  # the same command completes it
        assert contents(tree_snapshot(inst.root)) == done
        # Back to the installed state for the next kill point.
        if command == "reset":
            fipsboot("rollback", "--profile", str(profile), check=0)
        else:
            fipsboot("install", "--profile", str(profile), check=0)
        assert contents(tree_snapshot(inst.root)) == installed
        step += 1
    assert step > 3
    if command == "rollback":
        assert contents(tree_snapshot(inst.root)) == start


def test_rollback_of_a_never_installed_installation_says_there_is_nothing(installation30):
    profile = installation30.write_profile()
    r = fipsboot("rollback", "--profile", str(profile), "--json")
    assert r.returncode == 1, r.stderr
    out = json.loads(r.stdout)
    assert "nothing to roll back" in out["error"] and out["exit_code"] == 1
