#!/usr/bin/env python3
"""Benchmark `fipsboot status` on a busy process table against `ps -e` (not a test).

An installation is laid out from the test bed (OpenSSL 3.0) and installed, a real TLS server
(`openssl s_server`) is launched through `fipsboot run`, and N idle processes (`sleep`) are
started. Then R interleaved rounds time, with perf_counter around subprocess.run:

  status   <venv>/bin/fipsboot status --profile P --json   (must exit 0 and list the server)
  ps       ps -e                                            (the same process table)

and prints the medians and status/ps (targets: status under 1 s, at most 10x ps -e). Every
process started here is ended before the script exits.

    .venv/bin/python scripts/bench_status.py [--processes 2000] [--rounds 15] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from loopback import free_port  # scripts/loopback.py, beside this script
from sampleserver import lay_out, testbed_dir  # scripts/sampleserver.py, beside this script

TARGET_SECONDS, TARGET_RATIO = 1.0, 10.0


def console_script() -> Path:
    script = Path(sys.executable).parent / "fipsboot"
    if not script.exists():
        sys.exit(f"{script} not found: run this with the venv's python (.venv/bin/python)")
    return script


def timed(argv: List[str], env: Dict[str, str], expect: int = 0) -> float:
    start = time.perf_counter()
    p = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if p.returncode != expect:
        sys.exit(f"{' '.join(argv)} exited {p.returncode}:\n{p.stderr.decode(errors='replace')}")
    return elapsed


def start_server(inst, profile: Path, work: Path, env: Dict[str, str]) -> subprocess.Popen:
    cert, key = work / "cert.pem", work / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True,
                   env={k: v for k, v in env.items() if not k.startswith("OPENSSL")})
    port = free_port()
    server = subprocess.Popen([str(console_script()), "run", "--profile", str(profile), "--",
                               str(inst.openssl), "s_server", "-accept", f"127.0.0.1:{port}",
                               "-cert", str(cert), "-key", str(key), "-www"], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                sys.exit("the TLS server did not start")
            time.sleep(0.05)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--processes", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    manifest = testbed_dir() / "testbed.json"
    if not manifest.exists():
        sys.exit("the test bed is not built: run scripts/setup.sh")
    testbed = json.loads(manifest.read_text())
    work = Path(tempfile.mkdtemp(prefix="fipsboot-bench-status-"))
    sleepers: List[subprocess.Popen] = []
    server = None
    try:
        root = work / "server root"
        root.mkdir()
        inst = lay_out(Path(testbed["linux-3.0"]["dir"]), root, "3.0")
        profile = inst.write_profile('process-names = ["OrchestrationServer"]')
        env = {k: v for k, v in os.environ.items() if k not in ("OPENSSL_CONF", "OPENSSL_MODULES")}
        env["FIPSBOOT_STATE_DIR"] = str(work / "state")
        subprocess.run([str(console_script()), "install", "--profile", str(profile)], env=env,
                       check=True, capture_output=True)
        server = start_server(inst, profile, work, env)
        sleeper = shutil.which("sleep") or "/bin/sleep"
        for _ in range(args.processes):
            sleepers.append(subprocess.Popen([sleeper, "3600"], stdin=subprocess.DEVNULL,
                                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        total = len(os.listdir("/proc"))
        status = [str(console_script()), "status", "--profile", str(profile), "--json"]
        out = json.loads(subprocess.run(status, env=env, capture_output=True, text=True).stdout)
        if out["exit_code"] != 0 or [p["pid"] for p in out["processes"]] != [server.pid]:
            sys.exit(f"status did not prove the one server: {out['summary']}")
        ps = ["ps", "-e"]
        timed(status, env), timed(ps, env)  # warm-up: page cache, byte code
        samples: Dict[str, List[float]] = {"status": [], "ps": []}
        for i in range(args.rounds):
            for kind in (["status", "ps"] if i % 2 == 0 else ["ps", "status"]):
                samples[kind].append(timed(status if kind == "status" else ps, env))
        medians = {k: statistics.median(v) for k, v in samples.items()}
        ratio = medians["status"] / medians["ps"]
        result = {"processes_started": args.processes, "proc_entries": total,
                  "rounds": args.rounds,
                  "median_ms": {k: round(v * 1000, 1) for k, v in medians.items()},
                  "min_ms": {k: round(min(v) * 1000, 1) for k, v in samples.items()},
                  "ratio": round(ratio, 2),
                  "meets_target": {"status < 1 s": medians["status"] < TARGET_SECONDS,
                                   "status <= 10x ps -e": ratio <= TARGET_RATIO}}
    finally:
        for p in sleepers:
            p.kill()
        for p in sleepers:
            p.wait()
        if server is not None and server.poll() is None:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(result, indent=1))
    else:
        m = result["median_ms"]
        print(f"{result['proc_entries']} entries in /proc ({args.processes} sleep processes), "
              f"{args.rounds} rounds, medians: status {m['status']} ms, ps -e {m['ps']} ms, "
              f"status/ps {result['ratio']}x (targets: < 1 s, <= {TARGET_RATIO:g}x)")
    return 0 if all(result["meets_target"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
