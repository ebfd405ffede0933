#!/usr/bin/env python3
"""Benchmark (not a test): what `fipsboot verify` costs next to a bare `openssl list -providers`.

For each OpenSSL build of the test bed (3.0, 3.5), lay out a server installation in a temp dir
(the fixtures' `lay_out`), run `fipsboot install`, then interleave N rounds of

  (a) python -m fipsboot verify --profile P
  (b) <install>/tools/openssl list -providers   with the env file's environment

timing each with time.perf_counter around subprocess.run, and print the medians and the ratio
verify/bare. `--fast` adds (c) `verify --fast` to the rounds. State goes to FIPSBOOT_STATE_DIR
inside the temp dir; nothing outside it is touched.

    .venv/bin/python scripts/bench_verify.py [--rounds 20] [--version 3.0|3.5|all] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sampleserver import lay_out, sourced, testbed_dir  # noqa: E402

from fipsboot import providers  # noqa: E402


def timed(argv: List[str], env: Dict[str, str]) -> tuple:
    start = time.perf_counter()
    p = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=ROOT)
    return time.perf_counter() - start, p


def fail(msg: str) -> None:
    print(f"bench_verify: {msg}", file=sys.stderr)
    sys.exit(1)


def bench(version: str, build_info: dict, rounds: int, with_fast: bool) -> dict:
    build_dir = Path(build_info["dir"])
    if not (build_dir / "build.json").exists():
        fail(f"test bed build linux-{version} is not built: run scripts/setup.sh")
    with tempfile.TemporaryDirectory(prefix=f"bench-verify-{version}-") as tmp:
        tmp = Path(tmp)
        root = tmp / "server root"
        root.mkdir()
        inst = lay_out(build_dir, root, version)
        profile = inst.write_profile()
        fb_env = {**os.environ, "FIPSBOOT_STATE_DIR": str(tmp / "state")}
        fipsboot = [sys.executable, "-m", "fipsboot"]
        p = subprocess.run([*fipsboot, "install", "--profile", str(profile)],
                           capture_output=True, text=True, env=fb_env, cwd=ROOT)
        if p.returncode:
            fail(f"install ({version}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
        # The bare run gets what the server gets: the env file's variables, nothing inherited
        # that could choose another config.
        bare_env = {"PATH": os.environ["PATH"], "LANG": "C", "LC_ALL": "C",
                    **sourced(inst.envfile)}
        bare_argv = [str(inst.openssl), "list", "-providers"]
        verify_argv = [*fipsboot, "verify", "--profile", str(profile)]
        # Sanity, untimed: both see an active fips provider.
        listing = subprocess.run(bare_argv, capture_output=True, text=True, env=bare_env)
        found = providers.parse(listing.stdout)
        if "fips" not in found or not found["fips"].active:
            fail(f"bare openssl ({version}) does not list an active fips provider:\n"
                 f"{listing.stdout}{listing.stderr}")
        fips_version = found["fips"].version

        times: Dict[str, List[float]] = {"verify": [], "bare": []}
        if with_fast:
            times["verify_fast"] = []
        for _ in range(rounds):
            t, p = timed(verify_argv, fb_env)
            if p.returncode:
                fail(f"verify ({version}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
            times["verify"].append(t)
            t, p = timed(bare_argv, bare_env)
            if p.returncode:
                fail(f"openssl list -providers ({version}) exited {p.returncode}:\n{p.stderr}")
            times["bare"].append(t)
            if with_fast:
                t, p = timed([*verify_argv, "--fast"], fb_env)
                if p.returncode:
                    fail(f"verify --fast ({version}) exited {p.returncode}:\n{p.stdout}{p.stderr}")
                times["verify_fast"].append(t)

    med = {k: statistics.median(v) for k, v in times.items()}
    out = {
        "version": version,
        "openssl": build_info.get("version"),
        "fips_provider": fips_version,
        "rounds": rounds,
        "verify_median_s": med["verify"],
        "bare_median_s": med["bare"],
        "ratio": med["verify"] / med["bare"],
        "verify_min_s": min(times["verify"]),
        "bare_min_s": min(times["bare"]),
        "times_s": times,
    }
    if with_fast:
        out["verify_fast_median_s"] = med["verify_fast"]
    return out


def table(results: List[dict], with_fast: bool) -> str:
    head = f"{'build':8} {'openssl':9} {'rounds':>6} {'verify':>10} {'bare':>10} {'ratio':>8}"
    if with_fast:
        head += f" {'verify --fast':>14}"
    lines = [head, "-" * len(head)]
    for r in results:
        line = (f"{r['version']:8} {r['openssl'] or '?':9} {r['rounds']:>6} "
                f"{r['verify_median_s'] * 1000:>7.1f} ms {r['bare_median_s'] * 1000:>7.1f} ms "
                f"{r['ratio']:>7.1f}x")
        if with_fast:
            line += f" {r['verify_fast_median_s'] * 1000:>11.1f} ms"
        lines.append(line)
    lines.append("medians of wall time per run; ratio = verify / bare")
    return "\n".join(lines)


def main(argv: List[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=20, help="interleaved rounds (default 20)")
    ap.add_argument("--version", choices=["3.0", "3.5", "all"], default="all")
    ap.add_argument("--fast", action="store_true", help="also time `verify --fast`")
    ap.add_argument("--json", action="store_true", help="print a JSON object")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    manifest = testbed_dir() / "testbed.json"
    if not manifest.exists():
        fail(f"{manifest} not found: build the test bed with scripts/setup.sh")
    testbed = json.loads(manifest.read_text())
    versions = ["3.0", "3.5"] if args.version == "all" else [args.version]
    results = []
    for v in versions:
        if f"linux-{v}" not in testbed:
            fail(f"the test bed has no linux-{v} build: run scripts/setup.sh")
        results.append(bench(v, testbed[f"linux-{v}"], args.rounds, args.fast))
    if args.json:
        print(json.dumps({"rounds": args.rounds, "python": sys.version.split()[0],
                          "results": results}, indent=1))
    else:
        print(table(results, args.fast))
    return 0


if __name__ == "__main__":
    sys.exit(main())
