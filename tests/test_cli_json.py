"""The JSON a script (the Ansible module) branches on: `changed`, the `checkpoint` a command
created, and each file's change as a unified diff, from install, reset and rollback, their
--dry-run, and an error after a change (exit 5)."""
from __future__ import annotations

import json

from helpers import fipsboot, tree_snapshot
from systemdstandin import stand_in_systemctl


def run_json(*args: str, check: int = 0, env=None) -> dict:
    return json.loads(fipsboot(*args, "--json", check=check, env=env).stdout)


def test_changed_and_checkpoint_through_a_life_cycle(installation30):
    inst = installation30
    profile = str(inst.write_profile())
    before = tree_snapshot(inst.root)
    dry = run_json("install", "--profile", profile, "--dry-run")
    assert dry["changed"] is True and dry["checkpoint"] is None
    assert tree_snapshot(inst.root) == before

    done = run_json("install", "--profile", profile)
    assert done["changed"] is True and done["checkpoint"] == 1
    assert run_json("install", "--profile", profile, "--dry-run")["changed"] is False
    again = run_json("install", "--profile", profile)
    assert (again["status"], again["changed"], again["checkpoint"]) == ("unchanged", False, None)

    assert run_json("reset", "--profile", profile, "--dry-run")["changed"] is True
    reset = run_json("reset", "--profile", profile)
    assert reset["changed"] is True and reset["checkpoint"] == 2
    assert run_json("reset", "--profile", profile)["changed"] is False
    assert run_json("reset", "--profile", profile, "--dry-run")["changed"] is False

    listing = run_json("rollback", "--profile", profile, "--list")
    assert listing["changed"] is False
    dry = run_json("rollback", "--profile", profile, "--to", "1", "--dry-run")
    assert dry["changed"] is True and [c["id"] for c in dry["would_undo"]] == [2, 1]
    back = run_json("rollback", "--profile", profile, "--to", "1")
    assert back["changed"] is True and back["checkpoint"] is None  # rollback creates none
    assert [c["id"] for c in back["undone"]] == [2, 1]
    assert {k: v[:2] for k, v in tree_snapshot(inst.root).items()} == \
        {k: v[:2] for k, v in before.items()}


def test_a_mode_change_without_a_file_change_is_a_change(installation30):
    """No targets, no switch: reset writes no file, yet the mode (what `run` follows) changes."""
    inst = installation30
    profile = str(inst.write_profile(targets=[]))
    run_json("install", "--profile", profile)
    dry = run_json("reset", "--profile", profile, "--dry-run")
    assert not [c for c in dry["plan"] if c["action"] != "unchanged"]
    assert dry["changed"] is True
    assert run_json("reset", "--profile", profile)["changed"] is True
    assert run_json("reset", "--profile", profile, "--dry-run")["changed"] is False
    dry = run_json("install", "--profile", profile, "--dry-run")
    assert dry["changed"] is True  # back to FIPS: again only the mode
    assert not [c for c in dry["plan"] if c["action"] != "unchanged"]


def test_the_plan_carries_each_files_diff(installation30):
    inst = installation30
    inst.envfile.write_text("TZ=UTC\n")
    profile = str(inst.write_profile())
    plan = {c["target"]: c for c in run_json("install", "--profile", profile, "--dry-run")["plan"]}
    cnf = plan["openssl.cnf"]["diff"]
    assert cnf.startswith("--- /dev/null\n+++ ") and f"+.include {inst.config_dir}" in cnf
    env = plan[f"envfile:{inst.envfile}"]["diff"]
    assert f"--- {inst.envfile}" in env and " TZ=UTC\n" in env
    assert f'+OPENSSL_CONF="{inst.config_dir}/openssl.cnf"' in env
    run_json("install", "--profile", profile)
    plan = run_json("install", "--profile", profile, "--dry-run")["plan"]
    assert all(c["diff"] == "" for c in plan)  # nothing would change: no diff
    plan = {c["target"]: c for c in run_json("reset", "--profile", profile, "--dry-run")["plan"]}
    env = plan[f"envfile:{inst.envfile}"]["diff"]
    assert f'-OPENSSL_CONF="{inst.config_dir}/openssl.cnf"' in env


def test_an_error_after_the_change_carries_the_checkpoint(installation30, tmp_path):
    inst = installation30
    env, fail, _ = stand_in_systemctl(tmp_path)
    fail.write_text("")
    profile = str(inst.write_profile())
    out = run_json("install", "--profile", profile, check=5, env=env)
    assert out["exit_code"] == 5 and out["changed"] is True and out["checkpoint"] == 1
    assert "daemon-reload" in out["error"] and out["fix"]
    # the checkpoint it names can be rolled back: the files go
    fail.unlink()
    run_json("rollback", "--profile", profile, "--to", str(out["checkpoint"]), env=env)
    assert not inst.dropin.exists()
    # an error before any change carries no `changed`: nothing happened
    out = run_json("rollback", "--profile", profile, check=1)
    assert "changed" not in out and out["exit_code"] == 1


def test_a_dry_run_shows_the_hand_edit_the_real_run_would_stop_on(installation30):
    """Check mode (Ansible) must show the real plan: a dry run lists what was edited by hand
    since fipsboot wrote it, where the real run stops with exit 3."""
    inst = installation30
    profile = str(inst.write_profile())
    run_json("install", "--profile", profile)
    with open(inst.dropin, "a") as f:
        f.write("# edited by hand\n")
    for command in ("install", "reset"):
        dry = run_json(command, "--profile", profile, "--dry-run")
        assert dry["edited_since"] and "50-fipsboot.conf" in dry["edited_since"][0], dry
        assert any("exit 3" in n for n in dry["notes"]), dry["notes"]
    fipsboot("reset", "--profile", profile, check=3)
    forced = run_json("reset", "--profile", profile, "--dry-run", "--force")
    assert forced["edited_since"] and not any("exit 3" in n for n in forced["notes"])


def test_contract_details_a_script_branches_on(installation30):
    inst = installation30
    profile = str(inst.write_profile())
    run_json("install", "--profile", profile)
    verify = json.loads(fipsboot("verify", "--profile", profile, "--json").stdout)
    cmvp = next(c for c in verify["checks"] if c["name"] == "cmvp")
    assert cmvp["severity"] == "warning" and "notes" not in verify
    # Every error names a fix.
    for args in (("rollback", "--profile", profile, "--to", "9"),):
        err = json.loads(fipsboot(*args, "--json", check=1).stdout)
        assert err["fix"], err
    from fipsboot import cmvp as cmvp_module

    passing = cmvp_module.check({"summary": "validated", "operator_statement": None,
                                 "warning": False})
    assert passing.ok and passing.severity == "warning"


def test_a_reader_that_goes_away_is_not_a_file_error(installation30):
    import subprocess
    import sys

    profile = str(installation30.write_profile())
    run_json("install", "--profile", profile)
    p = subprocess.run(f"{sys.executable} -m fipsboot report --profile '{profile}' | true",
                       shell=True, capture_output=True, text=True, timeout=120)
    assert "Broken pipe" not in p.stderr and "error" not in p.stderr, p.stderr
