"""`fipsboot run` usage errors, never-installed installations, --dry-run, and the exit status,
stdin and PID the server shares with its caller.
"""
from __future__ import annotations

import json
import signal
import subprocess

import pytest
from helpers import fipsboot
from runhelpers import (
    TIMEOUT,
    cache_file,
    caller_env,
    installed,
    marker_server,
    run_wrapped,
    wrapper_argv,
)

from fipsboot.errors import EXIT_USAGE

# --- no journal, dry run ----------------------------------------------------------------

def test_never_installed_is_a_usage_error(installation30, tmp_path, state_dir):
    inst = installation30
    profile = inst.write_profile()
    marker = tmp_path / "started"
    for options in ((), ("--dry-run",), ("--dry-run", "--json")):
        r = run_wrapped(profile, *marker_server(marker), options=options)
        assert r.returncode == EXIT_USAGE, r.stderr
        assert "no fipsboot journal" in r.stderr and str(inst.install_dir) in r.stderr
        assert "fipsboot install" in r.stderr
        assert "Traceback" not in r.stderr
        assert not marker.exists()
    assert not state_dir.exists()  # a refused run leaves no state behind


def test_unknown_wrapper_option_is_a_usage_error_not_part_of_the_server(installation30,
                                                                        tmp_path):
    """An option fipsboot does not know (a typo) is refused, not passed on as the server."""
    inst = installation30
    profile = installed(inst)
    marker = tmp_path / "started"
    for options in (("--bogus",), ("--dry-run", "--bogus"), ("--dry-run", "--json", "--bogus")):
        r = run_wrapped(profile, *marker_server(marker), options=options)
        assert r.returncode == EXIT_USAGE, f"{options}: exit {r.returncode}\n{r.stdout}{r.stderr}"
        assert "--bogus" in r.stderr
        assert "exec:" not in r.stdout and '"argv"' not in r.stdout
        assert not marker.exists()


def test_missing_server_command_is_a_usage_error(installation30):
    profile = installed(installation30)
    r = run_wrapped(profile)
    assert r.returncode == EXIT_USAGE and "no server command" in r.stderr


def test_server_that_cannot_be_started(installation30, tmp_path):
    profile = installed(installation30)
    r = run_wrapped(profile, str(tmp_path / "no such server"))
    assert r.returncode == 127
    assert "cannot start" in r.stderr and "no such server" in r.stderr


@pytest.mark.parametrize("mode", ["fips", "non-fips"])
def test_dry_run_prints_environment_and_command_and_execs_nothing(installation30, tmp_path,
                                                                   mode):
    inst = installation30
    profile = installed(inst)
    if mode == "non-fips":
        fipsboot("reset", "--profile", str(profile), check=0)
    marker = tmp_path / "started"
    env = caller_env(OPENSSL_CONF="/elsewhere.cnf", LD_LIBRARY_PATH="/opt/other/lib")
    fips = mode == "fips"
    want = {
        "OPENSSL_CONF": str(inst.config_dir / "openssl.cnf") if fips else None,
        "OPENSSL_MODULES": str(inst.module.parent) if fips else None,
        "LD_LIBRARY_PATH": f"{inst.module.parent if fips else inst.security_pack}:{inst.lib64}"
                           ":/opt/other/lib",
    }

    r = run_wrapped(profile, *marker_server(marker), env=env, options=("--dry-run",))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    assert f"mode: {mode}" in r.stdout
    for key, value in want.items():
        assert (f"{key}={value}" if value is not None else f"{key} (unset)") in r.stdout
    assert "exec: sh -c" in r.stdout and str(marker) in r.stdout

    r = run_wrapped(profile, *marker_server(marker), env=env, options=("--dry-run", "--json"))
    assert r.returncode == 0, r.stderr
    assert not marker.exists()
    out = json.loads(r.stdout)
    assert out["mode"] == mode
    assert out["argv"] == marker_server(marker)
    assert out["environment"] == want
    # A dry run verifies nothing, so it leaves no verdict behind.
    assert not cache_file(inst).exists()


# --- exit status ------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["fips", "non-fips"])
def test_exit_status_is_the_servers(installation30, mode):
    inst = installation30
    profile = installed(inst)
    if mode == "non-fips":
        fipsboot("reset", "--profile", str(profile), check=0)
    assert run_wrapped(profile, "sh", "-c", "exit 7").returncode == 7
    assert run_wrapped(profile, "sh", "-c", "exit 0").returncode == 0
    assert run_wrapped(profile, "sh", "-c", 'kill -TERM "$$"').returncode == -signal.SIGTERM
    r = run_wrapped(profile, "sh", "-c", 'echo out; echo err >&2; exit 3')
    assert (r.returncode, r.stdout, r.stderr) == (3, "out\n", "err\n")


def test_stdin_and_pid_are_the_callers(installation30):
    """exec, not a child: the server reads the caller's stdin and has the wrapper's PID."""
    profile = installed(installation30)
    proc = subprocess.Popen(wrapper_argv(profile, "sh", "-c", 'read line; echo "$$ $line"'),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    out, _ = proc.communicate("hello\n", timeout=TIMEOUT)
    assert proc.returncode == 0
    assert out == f"{proc.pid} hello\n"
