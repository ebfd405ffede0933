"""`fipsboot status` against real servers: the test bed's `openssl s_server` and Debian's
`redis-server` with TLS, started through `fipsboot run`, directly with the account's
environment, without it, before a reset; run records with a reused PID; an unprivileged
account looking at root's processes."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
from helpers import fipsboot
from loopback import free_port
from runhelpers import (
    account_switch,
    caller_env,
    installed,
    journal_folder,
    run_wrapped,
    s_server,
    serving,
    without,
    wrapper_argv,
)
from statushelpers import (
    TIMEOUT,
    assert_proven,
    by_pid,
    installed_finding,
    judged,
    launch_env,
    redis_argv,
    redis_serving,
    redis_through_run,
    root_server_an_account_looks_at,
    served_with_modules_from_elsewhere,
    status,
    status_text,
    write_record,
)

from fipsboot import runrecords

# --- servers launched through `fipsboot run` --------------------------------------------

def test_s_server_through_run_is_proven(installation, cert_and_key, tmp_path):
    inst = installation
    cert, key = cert_and_key
    profile = installed(inst)
    port = free_port()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), caller_env(),
                 tmp_path / "wrapped") as server:
        out, proc = judged(profile, server.pid, 0)
        assert_proven(proc, inst)
        assert proc["fips_module"]["paths"] == [str(inst.module)]
        assert str(inst.lib64 / "libcrypto.so.3") in proc["libraries"]
        assert "run-record" in proc["found_by"] and "install-dir" in proc["found_by"]
        assert proc["environment"]["OPENSSL_MODULES"] == str(inst.module.parent)
        assert proc["cmdline"][1:3] == ["s_server", "-accept"]
        assert proc["record"]["mode"] == "fips" and proc["record"]["module_mac"]
        assert out["mode"] == "fips" and "FIPS mode" in out["summary"]
        text = status_text(profile)
        assert text.returncode == 0
        assert f"PID {server.pid} openssl" in text.stdout and "fips provider: installation" in text.stdout
        # The record: in the state folder, fixed modes, named by PID and start time.
        records = list((journal_folder(inst) / "runs").glob("*.json"))
        assert [r.name.split("-")[0] for r in records] == [str(server.pid)]
        assert (records[0].stat().st_mode & 0o777, records[0].parent.stat().st_mode & 0o777) == \
            (0o644, 0o755)
    # The server has gone: its record is pruned, and no server is running.
    code, out = status(profile)
    assert (code, out["processes"]) == (0, [])
    assert "no running server found" in out["summary"]
    assert any("has exited; pruned" in n for n in out["notes"])
    assert list((journal_folder(inst) / "runs").glob("*.json")) == []
    code, out = status(profile, "--require-running")
    assert code == 1 and "no running server found" in out["summary"]


def test_redis_tls_through_run_is_proven(installation30, cert_and_key, redis, tmp_path):
    inst = installation30
    profile = installed_finding(inst, redis.name)
    with redis_through_run(profile, redis, cert_and_key, tmp_path) as server:
        out, proc = judged(profile, server.pid, 0)
        assert proc["name"] == redis.name
        assert sorted(proc["found_by"]) == ["process-names", "run-record"]
        assert_proven(proc, inst)
        assert sorted(proc["libraries"]) == [str(inst.lib64 / "libcrypto.so.3"),
                                             str(inst.lib64 / "libssl.so.3")]


def test_redis_started_directly_with_the_env_files_variables(installation30, cert_and_key, redis,
                                                            tmp_path):
    """No wrapper, no record: found by process-names, proven by its maps."""
    inst = installation30
    cert, key = cert_and_key
    profile = installed_finding(inst, redis.name)
    env = launch_env(profile, without(caller_env()))
    port = free_port()
    with redis_serving(redis_argv(redis, port, cert, key, tmp_path / "data"), env, port, cert,
                       tmp_path / "logs") as server:
        out, proc = judged(profile, server.pid, 0)
        assert proc["found_by"] == ["process-names"] and "record" not in proc
        assert_proven(proc, inst)


# --- servers in the wrong mode ----------------------------------------------------------

def test_server_started_without_the_accounts_environment(installation30, cert_and_key, redis,
                                                         tmp_path):
    """A start script that doesn't source the env file: no OPENSSL_CONF, the default provider.
    status names the process and why; a Redis that crashes at start leaves nothing running."""
    inst = installation30
    cert, key = cert_and_key
    profile = installed_finding(inst, redis.name)
    script = tmp_path / "start-ors.sh"
    script.write_text('#!/bin/sh\nexec "$@"\n')  # forgets `. /etc/default/gctilca`
    script.chmod(0o755)
    port = free_port()
    bare = without(caller_env())
    with serving([str(script), *s_server(inst, cert, key, port)],
                 dict(bare, LD_LIBRARY_PATH=str(inst.lib64)), tmp_path / "s") as server:
        out, proc = judged(profile, server.pid, 1)
        assert proc["found_by"] == ["install-dir"]
        assert proc["fips_module"] == {"state": "none", "paths": []}
        reasons = " ".join(p["reason"] for p in proc["problems"])
        assert "no FIPS provider mapped" in reasons and "without OPENSSL_CONF" in reasons
        assert f"process {server.pid}" in out["summary"]
        text = status_text(profile)
        assert text.returncode == 1 and f"PID {server.pid}" in text.stdout
        assert "started without OPENSSL_CONF" in text.stdout and "fix: restart gctilca.service" in \
            text.stdout

    # With another OPENSSL_MODULES (a folder without the provider) Debian's Redis 7.0 crashes
    # in SSL_CTX_set_options at start: nothing left running, which status says.
    env = launch_env(profile, bare)
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    env["OPENSSL_MODULES"] = str(empty)
    r = subprocess.run(redis_argv(redis, free_port(), cert, key, tmp_path / "data"), env=env,
                       capture_output=True, timeout=TIMEOUT)
    assert r.returncode != 0
    code, out = status(profile)
    assert (code, out["processes"]) == (0, []) and "no running server found" in out["summary"]
    code, out = status(profile, "--require-running")
    assert code == 1


def test_server_started_elsewhere_with_another_modules_folder(installation30, cert_and_key,
                                                              testbed, tmp_path):
    """A copy of a FIPS provider outside the installation is not this installation's."""
    inst = installation30
    with served_with_modules_from_elsewhere(inst, cert_and_key, tmp_path,
                                            shutil.copy2) as (profile, server, elsewhere):
        out, proc = judged(profile, server.pid, 1)
        assert proc["fips_module"] == {"state": "other", "paths": [str(elsewhere / "fips.so")]}
        assert f"OPENSSL_MODULES={elsewhere}" in proc["problems"][0]["reason"]


def test_server_started_before_reset_needs_a_restart(installation30, cert_and_key, tmp_path):
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    port, port2 = free_port(), free_port()
    env = caller_env()
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "a") as wrapped, \
            serving(s_server(inst, cert, key, port2), launch_env(profile, without(env)),
                    tmp_path / "b") as direct:
        assert status(profile)[0] == 0
        time.sleep(1.1)  # the journal's times have whole seconds
        fipsboot("reset", "--profile", str(profile), check=0)
        code, out = status(profile)
        assert code == 1, out
        assert out["mode"] == "non-fips" and out["last_change"]["command"] == "reset"
        for pid in (wrapped.pid, direct.pid):
            proc = by_pid(out)[pid]
            assert proc["restart_needed"] is True
            assert any("restart needed" in p["reason"] for p in proc["problems"])
            assert any("other mode" in p["reason"] for p in proc["problems"])
        text = status_text(profile)
        assert text.returncode == 1 and "restart needed" in text.stdout
        wrapped.send_signal(signal.SIGTERM)
        direct.send_signal(signal.SIGTERM)
        wrapped.wait(TIMEOUT), direct.wait(TIMEOUT)
    # Restarted through the wrapper: non-FIPS, consistently.
    with serving(wrapper_argv(profile, *s_server(inst, cert, key, port)), env,
                 tmp_path / "c") as server:
        out, proc = judged(profile, server.pid, 2)
        assert proc["ok"] and proc["fips_module"]["state"] == "none"
        assert proc["restart_needed"] is False and proc["record"]["mode"] == "non-fips"
        assert "non-FIPS mode" in out["summary"]
    assert status(profile)[0] == 2


# --- run records ------------------------------------------------------------------------

@pytest.fixture
def sleeping(installation30):
    """The installation installed, and a process that maps no FIPS provider to write run
    records for: profile, folder (the journal folder), sleeper (its Popen), ticks (its start)."""
    profile = installed(installation30)
    proc = subprocess.Popen(["sleep", "60"])
    try:
        ticks = runrecords.linux_start(proc.pid)[0]
        assert ticks is not None
        yield SimpleNamespace(profile=profile, folder=journal_folder(installation30),
                              sleeper=proc, ticks=ticks)
    finally:
        proc.kill()
        proc.wait()


def test_a_record_whose_pid_was_reused_is_not_the_server(sleeping):
    profile, folder, sleeper, ticks = (sleeping.profile, sleeping.folder, sleeping.sleeper,
                                       sleeping.ticks)
    # The control: a record naming this very process (same start) is taken, and this
    # process maps no FIPS provider, so status fails: the check can fail.
    good = write_record(folder, sleeper.pid, ticks)
    code, out = status(profile)
    assert code == 1 and sleeper.pid in by_pid(out)
    good.unlink()
    # The PID is the same, the start time another: an unrelated process that got the PID.
    stale = write_record(folder, sleeper.pid, ticks - 100)
    code, out = status(profile)
    assert code == 0, out
    assert sleeper.pid not in by_pid(out)
    assert any("belongs to another process" in n and "pruned" in n for n in out["notes"])
    assert not stale.exists()
    assert sleeper.poll() is None  # only the record went
    # A record with no start (as on Windows) written before this process started: the
    # process can't be the wrapper that wrote it.
    early = write_record(folder, sleeper.pid, None, time=time.time() - 3600)
    code, out = status(profile)
    assert code == 0 and sleeper.pid not in by_pid(out) and not early.exists()
    write_record(folder, sleeper.pid, None)  # written after it started: taken
    assert status(profile)[0] == 1


def test_records_that_are_not_trusted(sleeping):
    """Records another account could have written, or that aren't fipsboot's, are ignored."""
    profile, folder, sleeper, ticks = (sleeping.profile, sleeping.folder, sleeping.sleeper,
                                       sleeping.ticks)
    loose = write_record(folder, sleeper.pid, ticks)
    loose.chmod(0o666)
    garbage = folder / "runs" / "1-1.json"
    garbage.write_text("{not json")
    garbage.chmod(0o644)
    code, out = status(profile)
    assert code == 0 and sleeper.pid not in by_pid(out)
    assert sum("not trusted" in n for n in out["notes"]) == 2
    loose.chmod(0o644)
    (folder / "runs").chmod(0o777)
    code, out = status(profile)
    assert code == 0 and sleeper.pid not in by_pid(out)
    assert any("not trusted" in n for n in out["notes"])
    (folder / "runs").chmod(0o755)
    assert status(profile)[0] == 1  # the same record, trusted again: the control


def test_run_writes_no_record_into_an_unsafe_folder_and_still_starts(installation30):
    inst = installation30
    profile = installed(inst)
    runs = journal_folder(inst) / "runs"
    runs.mkdir(mode=0o755)
    runs.chmod(0o777)
    r = run_wrapped(profile, "sh", "-c", "exit 7")
    assert r.returncode == 7 and r.stderr == ""
    assert list(runs.iterdir()) == []


# --- an unprivileged account ------------------------------------------------------------

@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root: root's server, another account's status")
def test_unprivileged_account_says_what_it_could_not_read(testbed, cert_and_key, state_dir):
    if shutil.which("useradd") is None:
        pytest.skip("useradd is needed")
    with root_server_an_account_looks_at(testbed, cert_and_key, "fipsboot-status-") as seen:
        profile, env, server = seen.profile, seen.env, seen.server
        as_account = account_switch(seen.account.pw_uid, seen.account.pw_gid)
        code, out = status(profile, env=env, wrap=as_account)
        assert code == 1, out
        proc = by_pid(out)[server.pid]
        assert "run-record" in proc["found_by"]
        assert proc["fips_module"]["state"] == "unknown" and not proc["ok"]
        assert proc["environment"]["readable"] is False
        assert "not readable" in proc["environment"]["reason"]
        assert any("could not read its memory maps" in p["reason"] for p in proc["problems"])
        assert "FIPS mode:" not in out["summary"]
        # Root, on the same process: proven.
        code, out = status(profile, env=env)
        assert code == 0 and by_pid(out)[server.pid]["ok"]


# --- usage ------------------------------------------------------------------------------

def test_never_installed_and_bad_process_names_are_usage_errors(installation30):
    inst = installation30
    profile = inst.write_profile()
    code, out = status(profile)
    assert code == 2 and "never installed" in out["error"] and out["fix"]
    bad = inst.write_profile('process-names = ["/usr/bin/redis-server"]', name="bad.toml")
    r = status_text(bad)
    assert r.returncode == 2 and "process-names" in r.stderr


def test_nonfips_with_no_server_is_exit_2(installation30):
    inst = installation30
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    code, out = status(profile)
    assert code == 2 and out["processes"] == [] and "non-FIPS mode" in out["summary"]
    assert status(profile, "--require-running")[0] == 1
    # The configuration's fast checks decide too: a hand-edited target is inconsistent.
    inst.envfile.write_text(f'OPENSSL_CONF="{inst.config_dir / "openssl.cnf"}"\n')
    assert status(profile)[0] == 1


def test_the_record_adds_no_import_to_runs_warm_path(installation30):
    """The record is written with what the wrapper has already imported: no psutil, no
    tempfile, nothing status needs."""
    profile = installed(installation30)
    run_wrapped(profile, "true")  # the verdict is cached now
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", "fipsboot", "run", "--profile",
                        str(profile), "--", "true"], capture_output=True, text=True,
                       env=caller_env(), timeout=TIMEOUT)
    assert r.returncode == 0, r.stderr
    imported = {line.split("|")[-1].strip() for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "fipsboot.runrecords" in imported  # the record was written on this path
    assert not {"psutil", "tempfile", "fipsboot.status", "fipsboot.procinspect", "click"} & imported
    assert len(list((journal_folder(installation30) / "runs").glob("*.json"))) == 2
