"""`fipsboot run` refuses to start the server when the FIPS module is corrupted or is another
build's; the server would leave a marker file if it ever ran.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from modulefaults import flip_rodata_byte
from runhelpers import (
    cache_file,
    fips_loads,
    installed,
    marker_server,
    run_wrapped,
)

from fipsboot.errors import EXIT_REFUSED

# --- refusal ----------------------------------------------------------------------------

def assert_refused_for_module_mac(r: subprocess.CompletedProcess, marker: Path) -> None:
    assert r.returncode == EXIT_REFUSED, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert not marker.exists(), "the server was started"
    assert "module-mac" in r.stderr
    assert "fipsboot install" in r.stderr
    assert r.stdout == ""


def test_corrupted_module_is_refused_cold(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    assert not cache_file(inst).exists()
    flip_rodata_byte(inst.module)
    assert not fips_loads(inst)  # the refusal is justified: OpenSSL would not load it
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert_refused_for_module_mac(r, marker)
    assert str(inst.module) in r.stderr
    assert not cache_file(inst).exists()


def test_corrupted_module_is_refused_with_a_warm_cache(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    marker = tmp_path / "started"
    r = run_wrapped(profile, *marker_server(marker))
    assert r.returncode == 0, r.stderr
    assert marker.exists() and cache_file(inst).exists()  # a cached verdict exists
    marker.unlink()
    assert run_wrapped(profile, *marker_server(marker)).returncode == 0  # and it is used
    marker.unlink()

    flip_rodata_byte(inst.module)
    r = run_wrapped(profile, *marker_server(marker))
    assert_refused_for_module_mac(r, marker)
    # Still refused on the next launch: a refusal never turns into a pass.
    assert_refused_for_module_mac(run_wrapped(profile, *marker_server(marker)), marker)


def test_module_replaced_by_another_build_is_refused(installation30, testbed, tmp_path):
    """An upgrade that swaps fips.so without running fipsinstall: the old MAC no longer fits."""
    inst = installation30
    profile = installed(inst)
    assert run_wrapped(profile, "true").returncode == 0  # warm cache
    other = Path(testbed["linux-3.5"]["dir"]) / "fips" / "fips.so"
    if not other.exists():
        pytest.skip("the 3.5 build is needed")
    tmp = inst.module.with_name(".fips.so.new")
    shutil.copyfile(other, tmp)
    os.chmod(tmp, 0o755)
    os.replace(tmp, inst.module)
    marker = tmp_path / "started"
    assert_refused_for_module_mac(run_wrapped(profile, *marker_server(marker)), marker)
