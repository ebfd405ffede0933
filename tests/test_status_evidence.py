"""`fipsboot status` against what the review found it believed too easily, on the real test
bed: a mapped provider with another OPENSSL_CONF (MD5 works) or OPENSSL_MODULES, another
account's look-alike process, the installation's own openssl tool, start scripts, the Windows
wrapper's grandchildren, /proc mounted with hidepid, and a FIFO among the run records."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from loopback import free_port
from runhelpers import (
    account_switch,
    caller_env,
    installed,
    journal_folder,
    s_server,
    serving,
    without,
    wrapper_argv,
)
from statushelpers import (
    TIMEOUT,
    by_pid,
    installed_finding,
    judged,
    launch_env,
    redis_through_run,
    root_server_an_account_looks_at,
    served_with_modules_from_elsewhere,
    status,
    temporary_account,
    write_record,
)

from fipsboot import runrecords

needs_root = pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                                reason="needs root: other accounts, mount namespaces")


def md5_works(inst, env) -> bool:
    r = subprocess.run([str(inst.openssl), "dgst", "-md5"], input=b"x", capture_output=True,
                       env=env, timeout=TIMEOUT)
    return r.returncode == 0


# --- finding 1: the provider mapped, another configuration or modules folder ------------

def mixed_config(inst, folder: Path, bad_mac: bool) -> Path:
    """A config that includes the installation's fipsmodule.cnf (or a copy with a damaged MAC)
    and also activates the default provider, with no default_properties = fips=yes."""
    fipsmodule = inst.config_dir / "fipsmodule.cnf"
    if bad_mac:
        text = fipsmodule.read_text()
        lines = [("module-mac = 00:" + line.split("=", 1)[1].strip()[3:])
                 if line.startswith("module-mac") else line for line in text.splitlines()]
        fipsmodule = folder / "fipsmodule-copy.cnf"
        fipsmodule.write_text("\n".join(lines) + "\n")
    cnf = folder / "mixed.cnf"
    cnf.write_text(f"openssl_conf = openssl_init\n.include {fipsmodule}\n"
                   "[openssl_init]\nproviders = provider_sect\n"
                   "[provider_sect]\nfips = fips_sect\ndefault = default_sect\n"
                   "[default_sect]\nactivate = 1\n")
    return cnf


@pytest.mark.parametrize("bad_mac", [False, True], ids=["default-beside-fips", "damaged-mac"])
def test_a_mapped_provider_under_another_openssl_conf_is_not_proof(installation30, cert_and_key,
                                                                   tmp_path, bad_mac):
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    good = launch_env(profile, without(caller_env()))
    mixed = dict(good, OPENSSL_CONF=str(mixed_config(inst, tmp_path, bad_mac)))
    assert not md5_works(inst, good)  # the installation's config: FIPS only
    assert md5_works(inst, mixed)     # this one: MD5 works, yet fips.so gets mapped
    with serving(s_server(inst, cert, key, free_port()), mixed, tmp_path / "s") as server:
        out, proc = judged(profile, server.pid, 1)
        assert proc["fips_module"]["state"] == "installation"  # the map alone looks fine
        reason = " ".join(p["reason"] for p in proc["problems"])
        assert f"OPENSSL_CONF={tmp_path / 'mixed.cnf'}" in reason
        assert "not proof of FIPS mode" in reason
        assert proc["problems"][0]["fix"].startswith("restart")
        assert "FIPS mode:" not in out["summary"]
    # The control: the same server with the installation's environment is proven.
    with serving(s_server(inst, cert, key, free_port()), good, tmp_path / "g") as server:
        code, out = status(profile)
        assert code == 0 and by_pid(out)[server.pid]["ok"], out


def test_a_mapped_provider_from_another_modules_folder_is_not_proof(installation30, cert_and_key,
                                                                     tmp_path):
    """The very same fips.so (a hard link: same device and inode) reached through another
    OPENSSL_MODULES folder: the maps can't tell; the environment can."""
    inst = installation30
    with served_with_modules_from_elsewhere(inst, cert_and_key, tmp_path,
                                            os.link) as (profile, server, elsewhere):
        out, proc = judged(profile, server.pid, 1)
        assert proc["fips_module"]["state"] == "installation"
        assert f"OPENSSL_MODULES={elsewhere}" in proc["problems"][0]["reason"]


def test_a_server_that_blanks_its_environment_is_judged_by_its_run_record(installation30,
                                                                          cert_and_key, redis,
                                                                          tmp_path):
    """Redis overwrites its environment block for its process title; a process started through
    `fipsboot run` is then judged by the environment its record says it was given."""
    inst = installation30
    profile = installed_finding(inst, redis.name)
    with redis_through_run(profile, redis, cert_and_key, tmp_path) as server:
        out, proc = judged(profile, server.pid, 0)
        assert proc["environment"].get("blank") is True
        assert proc["environment"]["from_record"]["OPENSSL_MODULES"] == str(inst.module.parent)
        # A record that says another configuration: not proof.
        record = next((journal_folder(inst) / "runs").glob(f"{server.pid}-*.json"))
        data = json.loads(record.read_text())
        data["environment"]["OPENSSL_CONF"] = str(tmp_path / "mixed.cnf")
        record.write_text(json.dumps(data))
        code, out = status(profile)
        assert code == 1 and "OPENSSL_CONF=" in by_pid(out)[server.pid]["problems"][0]["reason"]


# --- finding 4: look-alikes, other accounts and the installation's own tool -------------

@needs_root
def test_another_accounts_look_alike_and_the_installations_tool_are_not_the_server(
        installation30, tmp_path):
    if shutil.which("useradd") is None:
        pytest.skip("useradd is needed")
    inst = installation30
    name = f"srv{os.getpid() % 100000}"
    fake = Path(tempfile.mkdtemp(prefix="fipsboot-fake-")) / name
    try:
        fake.parent.chmod(0o755)
        fake.symlink_to(shutil.which("sleep"))
        profile = installed_finding(inst, name)
        # The installation's openssl as a command (waiting on its input), as verify's children
        # and an administrator's `openssl dgst` are: a tool, not the server.
        tool = subprocess.Popen([str(inst.openssl), "dgst", "-sha256"], stdin=subprocess.PIPE,
                                env=without(caller_env()))
        # A process of the same name in another case: another program on Linux.
        upper = fake.parent / name.upper()
        upper.symlink_to(shutil.which("sleep"))
        shouting = subprocess.Popen([str(upper), "60"])
        try:
            time.sleep(0.2)
            code, out = status(profile)
            assert code == 0, out
            assert tool.pid not in by_pid(out) and shouting.pid not in by_pid(out)
            with temporary_account() as account:
                wrap = account_switch(account.pw_uid, account.pw_gid)
                impostor = subprocess.Popen(wrap([str(fake), "60"]), cwd="/")
                try:
                    time.sleep(0.3)
                    # Without process-users any account's look-alike counts, and says whose.
                    code, out = status(profile)
                    assert code == 1 and impostor.pid in by_pid(out)
                    assert by_pid(out)[impostor.pid]["user"] == account.pw_name
                    assert f"(user {account.pw_name})" in out["summary"]
                    # With process-users, only the server's accounts are candidates.
                    restricted = inst.write_profile(
                        f"process-names = [{json.dumps(name)}]\nprocess-users = [\"root\"]",
                        name="restricted.toml")
                    code, out = status(restricted)
                    assert code == 0 and impostor.pid not in by_pid(out), out
                    mine = inst.write_profile(
                        f"process-names = [{json.dumps(name)}]\n"
                        f"process-users = [{json.dumps(account.pw_name)}]", name="mine.toml")
                    code, out = status(mine)
                    assert code == 1 and impostor.pid in by_pid(out)  # the control
                finally:
                    impostor.kill()
                    impostor.wait()
        finally:
            for p in (tool, shouting):
                p.kill()
                p.wait()
        bad = inst.write_profile('process-users = ["a:b"]', name="bad.toml")
        code, out = status(bad)
        assert code == 2 and "process-users" in out["error"]
    finally:
        shutil.rmtree(fake.parent, ignore_errors=True)


# --- finding 5 and 12: start scripts, and the Windows wrapper's descendants -------------

def test_a_start_script_through_run_is_judged_by_its_server(installation30, cert_and_key,
                                                           tmp_path):
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    port = free_port()
    script = " ".join(f"'{a}'" for a in s_server(inst, cert, key, port)) + "; exec sleep 60"
    servers = []
    try:
        with serving(wrapper_argv(profile, "/bin/sh", "-c", script), caller_env(),
                     tmp_path / "s") as shell:
            servers = psutil_children(shell.pid)
            assert len(servers) == 1
            out, proc = judged(profile, servers[0], 0)
            assert proc["ok"] and proc["launcher"]["pid"] == shell.pid
            assert proc["found_by"][0] == "run-record" and shell.pid not in by_pid(out)
            # The server gone, the script still there (its `sleep` is no server): it says so.
            os.kill(servers[0], 9)
            time.sleep(0.3)
            code, out = status(profile)
            assert code == 1, out
            reason = by_pid(out)[shell.pid]["problems"][0]["reason"]
            assert "start script" in reason and "no libcrypto/libssl" in reason
    finally:
        for pid in servers:  # the script's server outlives the script if an assertion failed
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def psutil_children(pid: int):
    import psutil
    deadline = time.monotonic() + TIMEOUT
    while True:
        kids = [k.pid for k in psutil.Process(pid).children()
                if k.name() == "openssl"]
        if kids or time.monotonic() > deadline:
            return kids
        time.sleep(0.05)


def test_the_windows_wrappers_server_is_its_child_not_every_descendant(installation30,
                                                                        cert_and_key, tmp_path):
    """A "child" record (the Windows wrapper waits for its server): the server is found below
    a launcher, and processes that aren't OpenSSL servers (conhost.exe on Windows, a `sleep`
    here) are not judged as servers."""
    inst = installation30
    cert, key = cert_and_key
    profile = installed(inst)
    port = free_port()
    script = " ".join(f"'{a}'" for a in s_server(inst, cert, key, port)) + " & sleep 60 & wait"
    wrapper = [sys.executable, "-c", "import subprocess, sys; subprocess.call(sys.argv[1:])",
               "/bin/sh", "-c", script]
    import psutil
    below = []
    try:
        with serving(wrapper, launch_env(profile, without(caller_env())), tmp_path / "s") as w:
            below = psutil.Process(w.pid).children(recursive=True)
            assert sorted(p.name() for p in below) == ["openssl", "sh", "sleep"]
            ticks = runrecords.linux_start(w.pid)[0]
            write_record(journal_folder(inst), w.pid, ticks, launch="child")
            code, out = status(profile)
            assert code == 0, out
            [proc] = [p for p in out["processes"] if "run-record" in p["found_by"]]
            assert proc["name"] == "openssl" and proc["ok"] and proc["launcher"]["name"] == "sh"
    finally:
        for p in below:
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass


# --- findings 6 and 7: /proc mounted with hidepid ---------------------------------------

@needs_root
@pytest.mark.parametrize("hidepid", ["2", "1"], ids=["invisible", "noaccess"])
def test_hidepid_makes_an_unprivileged_status_say_it_cannot_see(testbed, cert_and_key,
                                                                state_dir, hidepid):
    if shutil.which("useradd") is None or shutil.which("unshare") is None:
        pytest.skip("useradd and unshare are needed")
    probe = subprocess.run(["unshare", "-m", "--propagation", "private", "sh", "-c",
                            "mount -t proc -o hidepid=2 proc /proc"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount /proc with hidepid here: {probe.stderr!r}")
    with root_server_an_account_looks_at(testbed, cert_and_key, "fipsboot-hidepid-") as seen:
        profile, env, server = seen.profile, seen.env, seen.server
        switch = account_switch(seen.account.pw_uid, seen.account.pw_gid)

        def hidden(argv):
            inner = " ".join(f"'{a}'" for a in switch(argv))
            return ["unshare", "-m", "--propagation", "private", "sh", "-c",
                    f"mount -t proc -o hidepid={hidepid} proc /proc && exec {inner}"]

        code, out = status(profile, env=env, wrap=hidden)
        assert code == 1, out
        assert "FIPS mode:" not in out["summary"]
        failing = {c["name"]: c for c in out["checks"] if not c["ok"]}
        assert "proc-visibility" in failing and "hidepid" in failing["proc-visibility"]["reason"]
        record = failing[f"run record {server.pid}"]
        assert "cannot see it" in record["reason"] and record["fix"]
        assert not any("has exited" in n for n in out["notes"])
        assert list((seen.work / "state").rglob(f"runs/{server.pid}-*.json"))  # not pruned
        # Root, on the same process: proven (the control).
        code, out = status(profile, env=env)
        assert code == 0 and by_pid(out)[server.pid]["ok"]


# --- finding 12: a FIFO among the run records -------------------------------------------

def test_a_fifo_named_like_a_record_does_not_hang_status(installation30):
    inst = installation30
    profile = installed(inst)
    runs = journal_folder(inst) / "runs"
    runs.mkdir(mode=0o755, exist_ok=True)
    os.mkfifo(runs / "4242-1.json", 0o644)
    argv = [sys.executable, "-m", "fipsboot", "status", "--profile", str(profile), "--json"]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd="/")
    except subprocess.TimeoutExpired:
        pytest.fail("status hung opening a FIFO among the run records")
    out = json.loads(r.stdout)
    assert r.returncode == 0 and any("4242-1.json" in n and "not trusted" in n
                                     for n in out["notes"]), out
