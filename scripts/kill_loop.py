#!/usr/bin/env python3
"""Random kill -9 loop over install / reset / rollback (a benchmark-style script, not a test).

A seeded random walk: each round picks a command the journal allows (rollback only when there
is a checkpoint), runs it with FIPSBOOT_TEST_KILL_AT=N for a random N (half the time with
FIPSBOOT_TEST_KILL_IN_WRITE=1, so kills also land between a temp file and its rename), and,
when it was killed, runs the same command again, as the README tells an operator to. After
every round it checks against a model of the checkpoints:

  torn file         a managed file that is neither its state before nor after any command
  lost checkpoint   fewer checkpoints (or another mode) than the model says
  extra undo        a rerun of a killed rollback that undid one more checkpoint
  stray temp file   a `.NAME.*.fipsboot-tmp` left anywhere in the server's tree

    .venv/bin/python scripts/kill_loop.py [--kills 300] [--seed 11] [--version 3.0] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sampleserver import lay_out, testbed_dir  # scripts/sampleserver.py, beside this script


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=300)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--version", default="3.0")
    ap.add_argument("--max-step", type=int, default=30)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    testbed = json.loads((testbed_dir() / "testbed.json").read_text())
    work = Path(tempfile.mkdtemp(prefix="fipsboot-kill-loop-"))
    try:
        return loop(args, rng, testbed, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def loop(args, rng, testbed, work: Path) -> int:
    root = work / "server root"
    root.mkdir()
    inst = lay_out(Path(testbed[f"linux-{args.version}"]["dir"]), root, args.version)
    inst.envfile.write_text("# LCA settings\nGCTI_HOME=/opt/genesys\n")
    inst.shell_profile.write_text("export PATH=$PATH:/opt/genesys/bin\n")
    profile = inst.write_profile()
    env = {**os.environ, "FIPSBOOT_STATE_DIR": str(work / "state")}
    files = [inst.envfile, inst.shell_profile, inst.dropin, inst.config_dir / "openssl.cnf",
             inst.config_dir / "fipsmodule.cnf"]

    def fipsboot(command, extra=None):
        return subprocess.run([sys.executable, "-m", "fipsboot", command, "--profile",
                               str(profile)], capture_output=True, text=True,
                              env={**env, **(extra or {})})

    def snapshot():
        # Lines sorted: an env file's lines may change places between installs (the order
        # is not part of what a command promises); a torn or half-written file still shows.
        return {str(p): sorted(p.read_bytes().splitlines()) if p.exists() else None
                for p in files}

    def journal():
        (j,) = (work / "state").glob("*/journal.json")
        return json.loads(j.read_text())

    # The three states every file may be in: never installed, FIPS, non-FIPS.
    states = {"none": snapshot()}
    for command, state in (("install", "fips"), ("reset", "non-fips")):
        r = fipsboot(command)
        if r.returncode:
            sys.exit(f"{command} failed: {r.stderr}")
        states[state] = snapshot()
    model = ["install", "reset"]
    figures = {"rounds": 0, "kills": 0, "kills_in_write": 0, "completed_unkilled": 0,
               "torn_files": 0, "lost_checkpoints": 0, "extra_undos": 0, "stray_temp_files": 0,
               "failed_reruns": 0, "by_command": {}}
    problems = []
    started = time.monotonic()
    while figures["kills"] < args.kills:
        figures["rounds"] += 1
        command = rng.choice(["install", "reset", "rollback"] if model else ["install", "reset"])
        in_write = rng.random() < 0.5
        extra = {"FIPSBOOT_TEST_KILL_AT": str(rng.randint(1, args.max_step))}
        if in_write:
            extra["FIPSBOOT_TEST_KILL_IN_WRITE"] = "1"
        r = fipsboot(command, extra)
        if r.returncode == -9:
            figures["kills"] += 1
            figures["kills_in_write"] += in_write
            figures["by_command"][command] = figures["by_command"].get(command, 0) + 1
            r = fipsboot(command)  # the documented recovery: the same command again
        else:
            figures["completed_unkilled"] += 1
        if r.returncode != 0:
            figures["failed_reruns"] += 1
            problems.append(f"round {figures['rounds']}: {command} exited {r.returncode}: "
                            f"{r.stderr.strip()[:300]}")
            break
        # the model: what the command must have done
        mode = {"install": "fips", "reset": "non-fips"}
        if command == "rollback":
            model.pop()
        elif not model or model[-1] != command:
            model.append(command)
        j = journal()
        got = [c["command"] for c in j["checkpoints"]]
        if got != model:
            key = "extra_undos" if len(got) < len(model) and command == "rollback" else \
                "lost_checkpoints"
            figures[key] += 1
            problems.append(f"round {figures['rounds']}: {command}: checkpoints {got}, "
                            f"expected {model}")
            model = got
        expected = dict(states["none"] if not model else states[mode[model[-1]]])
        for p in files[3:]:  # openssl.cnf and fipsmodule.cnf exist while an install is undone
            expected[str(p)] = states["fips"][str(p)] if "install" in model else None
        now = snapshot()
        torn = [p for p in files if now[str(p)] != expected[str(p)]]
        if torn and os.environ.get("KILL_LOOP_DEBUG"):
            for p in torn:
                print(p, expected[str(p)], now[str(p)], sep="\n---\n", file=sys.stderr)
        if torn:
            figures["torn_files"] += len(torn)
            problems.append(f"round {figures['rounds']}: {command}: {', '.join(map(str, torn))} "
                            "differ from the expected state")
        stray = list(root.rglob("*.fipsboot-tmp")) + list((work / "state").rglob("*.fipsboot-tmp"))
        if stray:
            figures["stray_temp_files"] += len(stray)
            problems.append(f"round {figures['rounds']}: stray {stray}")
    figures["seconds"] = round(time.monotonic() - started, 1)
    figures["seed"] = args.seed
    figures["problems"] = problems[:20]
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        for k, v in figures.items():
            print(f"{k}: {v}")
    bad = sum(figures[k] for k in ("torn_files", "lost_checkpoints", "extra_undos",
                                   "stray_temp_files", "failed_reruns"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
