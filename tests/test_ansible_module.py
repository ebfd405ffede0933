"""The module fipsboot.fipsboot.fipsboot on fipsboot's failures, through a real
ansible-playbook run: exit 5 fails with changed=true and the checkpoint, exit 3 says "set
force: true" and changes nothing (never forces by itself), exit 4 is reported as `locked` so a
task can retry; `force: true` then goes through."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, build, fipsboot, lay_out
from systemdstandin import launcher, stand_in_systemctl

from fipsboot.journal import Journal

pytestmark = pytest.mark.testbed
BIN = Path(sys.executable).parent


def test_module_reports_exit_5_3_and_4(testbed, tmp_path, monkeypatch):
    linux30 = build(testbed, "linux-3.0")
    cases = {}
    for name in ("follow_up", "hand_edit", "locked"):
        root = tmp_path / name
        root.mkdir()
        inst = lay_out(linux30, root, "3.0")
        targets = ["systemd:gctilca"] if name == "follow_up" else [f"envfile:{inst.envfile}"]
        cases[name] = {"inst": inst, "profile": str(inst.write_profile(targets=targets)),
                       "environment": {"FIPSBOOT_STATE_DIR": str(root / "state")}}
    env5, fail, _ = stand_in_systemctl(tmp_path)
    fail.write_text("")
    cases["follow_up"]["environment"].update(env5)

    hand = cases["hand_edit"]
    fipsboot("install", "--profile", hand["profile"], env=hand["environment"], check=0)
    envfile = hand["inst"].envfile
    edited = envfile.read_text().replace("openssl.cnf", "openssl-hand.cnf")
    envfile.write_text(edited)

    inventory = tmp_path / "inventory.json"
    inventory.write_text(json.dumps({"all": {"hosts": {"failures": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        # the stand-in systemd of the exit-5 case is set up inside fipsboot by this launcher
        "fipsboot_executable": str(launcher(tmp_path)),
        **{k: {"profile": v["profile"], "environment": v["environment"]} for k, v in cases.items()},
    }}}}))
    env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": str(ROOT / "ansible"),
           "ANSIBLE_CALLBACK_PLUGINS": str(ROOT / "tests" / "ansible" / "callback_plugins"),
           "ANSIBLE_CALLBACKS_ENABLED": "record", "FIPSBOOT_TEST_RECORD": str(tmp_path / "rec.json"),
           "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1"}
    monkeypatch.setenv("FIPSBOOT_STATE_DIR", cases["locked"]["environment"]["FIPSBOOT_STATE_DIR"])
    with Journal.for_installation(str(cases["locked"]["inst"].install_dir)).lock():
        p = subprocess.run([str(BIN / "ansible-playbook"), "-i", str(inventory),
                            str(ROOT / "tests" / "ansible" / "module_failures.yml")],
                           env=env, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout[-4000:] + p.stderr[-2000:]
    results = {t["task"]["name"]: t["hosts"]["failures"]
               for t in json.loads((tmp_path / "rec.json").read_text())["plays"][0]["tasks"]}

    r5 = results["Exit 5 (the change is made, daemon-reload failed)"]
    assert r5["failed"] and r5["rc"] == 5 and r5["changed"] is True and r5["checkpoint"] == 1
    assert "daemon-reload" in r5["msg"] and r5["fix"]
    assert cases["follow_up"]["inst"].dropin.exists()

    r3 = results["Exit 3 (a hand edit)"]
    assert r3["failed"] and r3["rc"] == 3 and r3["changed"] is False
    assert "set force: true" in r3["msg"] and "--force" not in r3["cmd"]
    checked = results["The hand edit in check mode (the real plan says the apply would stop)"]
    assert checked["failed"] and checked["rc"] == 3 and checked["changed"] is False
    assert "set force: true" in checked["msg"] and "--dry-run" in checked["cmd"]
    r4 = results["Exit 4 (the lock is held)"]
    assert r4["failed"] and r4["rc"] == 4 and r4["locked"] is True and r4["changed"] is False
    assert not (cases["locked"]["inst"].config_dir / "openssl.cnf").exists()

    forced = results["The hand edit, forced"]
    assert not forced.get("failed") and forced["changed"] is True and "--force" in forced["cmd"]
    assert "openssl-hand.cnf" not in envfile.read_text()
