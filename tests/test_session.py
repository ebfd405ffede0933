"""The session's one environment rule: every command computes what a target or a launch must
hold with the same function, so install, verify and run (cold or warm) agree on it."""
from __future__ import annotations

import subprocess
import sys

from runhelpers import TIMEOUT, caller_env, env_of_server, installed

from fipsboot import plan, verify
from fipsboot.profile import load
from fipsboot.session import Session
from fipsboot.vocabulary import FIPS


def other_fips_folder(tmp_path, name="old-ors"):
    """The fips folder of another (older) installation: it holds a fips.so too."""
    folder = tmp_path / name / "fips"
    folder.mkdir(parents=True)
    (folder / "fips.so").write_bytes(b"another installation's module")
    return folder


def run_env(profile, env) -> tuple:
    """(environment the server got, whether run took its full path) for `fipsboot run`."""
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "fipsboot", "run", "--profile",
                        str(profile), "--", "env", "-0"], capture_output=True, env=env,
                       timeout=TIMEOUT)
    full = b"fipsboot.runner" in p.stderr
    p.stderr = b"\n".join(line for line in p.stderr.splitlines()
                          if not line.startswith(b"import time:"))
    return env_of_server(p), full


def test_run_drops_another_installations_fips_folder_cold_and_warm(installation30, tmp_path):
    inst = installation30
    profile = installed(inst)
    old = other_fips_folder(tmp_path)
    env = caller_env(LD_LIBRARY_PATH=f"/opt/other/lib:{old}")
    seen, full = run_env(profile, env)
    assert full
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}:/opt/other/lib"
    seen, full = run_env(profile, env)
    assert not full  # the warm path: the same environment
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}:/opt/other/lib"
    # A fips.so appearing in a folder the caller names is a changed fact: the full path runs
    # again and drops that folder too.
    (tmp_path / "opt-lib").mkdir()
    env = caller_env(LD_LIBRARY_PATH=f"{tmp_path / 'opt-lib'}:{old}")
    seen, full = run_env(profile, env)
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}:{tmp_path / 'opt-lib'}"
    assert not run_env(profile, env)[1]
    (tmp_path / "opt-lib" / "fips.so").write_bytes(b"yet another module")
    seen, full = run_env(profile, env)
    assert full
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}"


def test_install_and_verify_agree_on_a_target_naming_another_fips_folder(installation30,
                                                                          tmp_path):
    """A target whose LD_LIBRARY_PATH names another installation's fips folder (not written by
    fipsboot): install would change it, so verify calls it drifted; after install both agree."""
    inst = installation30
    old = other_fips_folder(tmp_path)
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}"])
    inst.envfile.parent.mkdir(parents=True, exist_ok=True)
    session = Session(load(str(profile)))
    want = session.values(FIPS)
    inst.envfile.write_text(f'OPENSSL_CONF="{want["OPENSSL_CONF"]}"\n'
                            f'OPENSSL_MODULES="{want["OPENSSL_MODULES"]}"\n'
                            f'LD_LIBRARY_PATH="{want["LD_LIBRARY_PATH"]}:{old}"\n')
    change, = plan.target_changes(session, FIPS)
    assert change.changed and change.variables["LD_LIBRARY_PATH"][1] == want["LD_LIBRARY_PATH"]
    check = verify.check_targets(session.layout, session.targets(), FIPS, {})
    assert not check.ok and str(old) in check.reason
    installed(inst)
    session = Session(load(str(profile)))
    assert not any(c.changed for c in plan.target_changes(session, FIPS))
    assert verify.check_targets(session.layout, session.targets(), FIPS,
                                session.journal.managed).ok
