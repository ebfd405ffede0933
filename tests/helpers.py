"""What the tests share: run the real command line, read files back the way sh does, take
snapshots of a tree, find the test bed's builds. Test modules import from here (conftest.py
holds the fixtures only); the ORS-like installation itself is scripts/sampleserver.py, which
the demo and the benchmarks use too (pyproject's pytest `pythonpath` puts scripts/ on the path).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Dict, Optional

import pytest
import systemdstandin
from sampleserver import LINUX_VERSIONS, Installation, lay_out, sourced, testbed_dir

__all__ = ["ROOT", "WINE_PROFILE", "LINUX_VERSIONS", "Installation", "lay_out", "testbed_dir",
           "missing", "_missing", "build", "fipsboot", "sourced", "tree_snapshot", "providers_with_env",
           "contents", "mapped_files"]

ROOT = Path(__file__).resolve().parent.parent

# The profile of conftest's `wine_install`: the Windows installation inside the Wine prefix.
WINE_PROFILE = """[server]
platform = "windows"
launcher = ["wine"]
install-dir = 'C:\\GCTI\\ORS 8.1.401.11'
config-dir = 'C:\\GCTI\\ORS_FIPS_CFG'
"""


def missing(what: str):
    """A requirement is not built: skip, saying how to build it (in CI: fail)."""
    msg = f"{what} is not built: run `scripts/setup.sh` (or `python scripts/testbed.py`)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " -- in CI a missing test bed is a failure", pytrace=False)
    pytest.skip(msg)


_missing = missing  # the name some test modules import


def build(testbed: Dict[str, dict], name: str) -> Path:
    if name not in testbed or not Path(testbed[name]["dir"], "build.json").exists():
        missing(f"test bed build {name}")
    return Path(testbed[name]["dir"])


def fipsboot(*args: str, env: Optional[Dict[str, str]] = None, check: Optional[int] = None,
             **kwargs) -> subprocess.CompletedProcess:
    """Run the real command line, as an operator or a script would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    argv = [sys.executable, "-m", "fipsboot"]
    if full_env.get(systemdstandin.RUNTIME_VAR):  # a stand-in systemd: set up in the process
        argv = systemdstandin.command()
    p = subprocess.run([*argv, *args], capture_output=True, text=True, env=full_env, **kwargs)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def tree_snapshot(root: Path) -> Dict[str, tuple]:
    """Every file under root with its bytes and mode (to prove nothing changed)."""
    snap = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            snap[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
    return snap


def providers_with_env(openssl: Path, env: Dict[str, str]) -> str:
    return subprocess.run([str(openssl), "list", "-providers"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "LANG": "C", **env}).stdout


def contents(snapshot: Dict[str, tuple]) -> Dict[str, tuple]:
    """A snapshot without mtimes: bytes and mode only (restored files are rewritten)."""
    return {k: v[:2] for k, v in snapshot.items()}


def mapped_files(pid: int) -> set:
    """Every file mapped into the process, read from /proc/<pid>/maps."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            found.add(parts[5])
    return found
