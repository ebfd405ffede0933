#!/usr/bin/env python3
"""The sample life cycle: lay out an ORS-like installation from the test bed, then walk it
through every fipsboot command, launching a real TLS server through `fipsboot run`.

Run by scripts/demo.sh (which sets everything up first). Everything happens in a temporary
folder (kept with --keep); nothing outside it is touched.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback import free_port  # scripts/loopback.py, beside this script
from sampleserver import lay_out, testbed_dir  # scripts/sampleserver.py, beside this script

FIPSBOOT = str(Path(sys.executable).parent / "fipsboot")


def step(title: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    print(f"\n$ fipsboot {' '.join(args)}    # {title}", flush=True)
    r = subprocess.run([FIPSBOOT, *args], text=True, capture_output=True)
    print((r.stdout + r.stderr).rstrip())
    print(f"[exit {r.returncode}]")
    if check and r.returncode != 0:
        sys.exit(f"demo: step failed: {title}")
    return r


def tls_server_through_wrapper(inst, profile: Path, expect_fips: bool) -> None:
    cert, key = inst.root / "server.crt", inst.root / "server.key"
    if not cert.exists():
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)],
                       check=True, capture_output=True)
    port = free_port()
    argv = [FIPSBOOT, "run", "--profile", str(profile), "--", str(inst.openssl), "s_server",
            "-accept", f"127.0.0.1:{port}", "-cert", str(cert), "-key", str(key), "-www"]
    print(f"\n$ fipsboot run --profile {profile.name} -- openssl s_server -accept 127.0.0.1:{port} ...")
    server = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if server.poll() is not None:
                    sys.exit(f"demo: the server did not start: {server.stderr.read().decode()}")
                time.sleep(0.1)
        client = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{port}",
                                 "-brief"], input=b"", capture_output=True, timeout=30)
        handshake = [ln for ln in client.stderr.decode().splitlines()
                     if ln.startswith(("Protocol version", "Ciphersuite"))]
        maps = Path(f"/proc/{server.pid}/maps").read_text()
        mapped = str(inst.module) in maps
        print(f"  handshake: {'; '.join(handshake) or 'FAILED'}")
        print(f"  server PID {server.pid} is {Path(f'/proc/{server.pid}/exe').resolve().name} "
              f"(the wrapper exec'd it); fips.so mapped: {mapped}")
        if not handshake or mapped != expect_fips:
            sys.exit("demo: the server is not in the expected mode")
        r = step("the running server, from outside", "status", "--profile", str(profile),
                 check=False)
        if r.returncode != (0 if expect_fips else 2):
            sys.exit("demo: status does not see the server in the expected mode")
    finally:
        server.terminate()
        server.wait(10)


def tls_check_against_redis(profile: Path, work: Path) -> None:
    """Two Redis nodes with TLS (Debian's redis-server), one limited to ChaCha20-Poly1305:
    tls-check says which keeps working in FIPS mode (exit 1: one does not)."""
    from tlspeers import Pki, redis_tls

    pki = Pki(work / "pki", "Sample CA")
    client = pki.issue("ors-client")
    with contextlib.ExitStack() as stack:
        peers = []
        for name, options in (("redis-1", {}), ("redis-2", {
                "tls_protocols": '"TLSv1.3"', "tls_ciphersuites": "TLS_CHACHA20_POLY1305_SHA256"})):
            node = pki.issue(name)
            peers.append(stack.enter_context(redis_tls(work / name, node["cert"], node["key"],
                                                       pki.cacert, **options)))
        with open(profile, "a") as f:
            f.write(f"\n[tls]\ncert = {json.dumps(str(client['cert']))}\n"
                    f"key = {json.dumps(str(client['key']))}\n"
                    f"cacert = {json.dumps(str(pki.cacert))}\npeers = {json.dumps(peers)}\n")
        print(f"\n[tls] added to the profile; redis-1 on {peers[0]}, redis-2 (ChaCha20 only) on "
              f"{peers[1]}")
        r = step("will the TLS connections work in FIPS mode?", "tls-check", "--profile",
                 str(profile), check=False)
        if r.returncode != 1 or "works in FIPS mode" not in r.stdout:
            sys.exit("demo: tls-check did not tell the two Redis nodes apart")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="3.0", choices=["3.0", "3.5"])
    parser.add_argument("--keep", action="store_true", help="keep the sample folder")
    args = parser.parse_args()
    manifest = json.loads((testbed_dir() / "testbed.json").read_text())
    build = Path(manifest[f"linux-{args.version}"]["dir"])
    work = Path(tempfile.mkdtemp(prefix="fipsboot-sample-"))
    os.environ["FIPSBOOT_STATE_DIR"] = str(work / "state")
    try:
        root = work / "sample server"
        root.mkdir()
        inst = lay_out(build, root, args.version)
        inst.envfile.write_text("# LCA's own settings\nGCTI_HOME=/opt/genesys\n")
        profile = inst.write_profile()
        print(f"sample installation (OpenSSL {manifest[f'linux-{args.version}']['version']}): "
              f"{inst.install_dir}\nprofile: {profile}\n{profile.read_text()}")
        step("what would change", "install", "--profile", str(profile), "--dry-run")
        step("FIPS mode", "install", "--profile", str(profile))
        step("a second run changes nothing", "install", "--profile", str(profile))
        step("the verdict", "verify", "--profile", str(profile))
        tls_check_against_redis(profile, work)
        tls_server_through_wrapper(inst, profile, expect_fips=True)
        step("non-FIPS mode", "reset", "--profile", str(profile))
        step("the non-FIPS verdict", "verify", "--profile", str(profile))
        tls_server_through_wrapper(inst, profile, expect_fips=False)
        step("the checkpoints", "rollback", "--profile", str(profile), "--list")
        step("undo the reset", "rollback", "--profile", str(profile))
        step("undo the install", "rollback", "--profile", str(profile))
        print(f"\nenv file after the rollbacks:\n{inst.envfile.read_text()}")
        print("demo: the whole life cycle ran")
    finally:
        if args.keep:
            print(f"kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
