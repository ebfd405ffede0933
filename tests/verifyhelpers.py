"""What the hardening and review tests share to judge an attack by `fipsboot verify --json`:
its answer with the exit code, the checks that failed, the `targets` check alone, and the
openssl.cnf text that activates the default provider beside fips."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

from helpers import fipsboot

# openssl.cnf sections that load the default provider beside fips and let it be used.
DEFAULT_BESIDE = """
[provider_sect]
default = default_sect
[default_sect]
activate = 1
[algorithm_sect]
default_properties = -fips
"""


def verify_result(profile: Path, *options: str) -> dict:
    """`verify --json` (with `options`), its exit code as "_exit"."""
    r = fipsboot("verify", "--profile", str(profile), "--json", *options)
    out = json.loads(r.stdout)
    out["_exit"] = r.returncode
    return out


def fast_result(profile: Path) -> dict:
    """`verify --fast --json`, its exit code as "_exit"."""
    return verify_result(profile, "--fast")


def failing(result: dict) -> Dict[str, dict]:
    """The checks that failed, by name."""
    return {c["name"]: c for c in result["checks"] if not c["ok"]}


def targets_check(profile: Path) -> Tuple[int, dict]:
    """(exit code, the `targets` check) of `verify --fast --json`."""
    result = fast_result(profile)
    return result["_exit"], next(c for c in result["checks"] if c["name"] == "targets")
