"""`fipsboot run`'s warm path (fipsboot/warmrun.py): its import set is a designed property.

The real entry point is run as the console script runs it, under `python -X importtime`, after
a verdict was cached; every module it imports beyond the bare interpreter is listed here, so a
change that puts click, dataclasses, pathlib, typing, re or json back on the server's start-up
fails this test. A fact that no longer holds (or a facts file not to be trusted) sends the
launch down the full path, which the import set shows too.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import fipsboot

from fipsboot import runfacts, runrecords, warmrun
from fipsboot.journal import SYSTEM_STATE_DIR, Journal

# The console script is exactly this (pip writes it): import sys, import the entry, call it.
CONSOLE = "import sys; from fipsboot.entry import entry; sys.argv[0] = 'fipsboot'; entry()"
FIPSBOOT_WARM = {"fipsboot", "fipsboot.entry", "fipsboot.processenv", "fipsboot.warmrun",
                 "fipsboot.modulemac", "fipsboot.runrecords"}
# Beyond the bare interpreter, the warm path may import only these: OpenSSL's hashing without
# hashlib (whose start-up lists every digest OpenSSL has) and file modes. Not even `warnings`,
# which os.execvpe imports for its PATH search (warmrun.exec_server searches PATH itself).
STDLIB_WARM = {"__future__", "_hashlib", "stat", "_stat"}
NEVER = {"click", "dataclasses", "pathlib", "typing", "tomllib", "re", "json", "inspect",
         "hashlib", "hmac",
         "subprocess", "enum", "fipsboot.runner", "fipsboot.profile", "fipsboot.verify",
         "fipsboot.runfacts"}


def imported(argv, env=None) -> tuple:
    p = subprocess.run([sys.executable, "-X", "importtime", *argv], capture_output=True,
                       text=True, env=env, timeout=60)
    names = {line.split("|")[-1].strip() for line in p.stderr.splitlines()
             if line.startswith("import time:") and "|" in line}
    return p, names - {"package"}


def warm_run(profile: Path, *server: str) -> tuple:
    """(process, modules fipsboot imported) for `fipsboot run --profile P -- SERVER`."""
    _, floor = imported(["-c", "import sys"])
    p, names = imported(["-c", CONSOLE, "run", "--profile", str(profile), "--", *server])
    return p, names - floor


def installed(inst) -> Path:
    profile = inst.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    return profile


def facts_file(profile: Path) -> Path:
    return Path(os.environ["FIPSBOOT_STATE_DIR"]) / warmrun.facts_name(os.path.realpath(profile))


def test_the_warm_path_imports_only_what_it_must(installation):
    profile = installed(installation)
    p, cold = warm_run(profile, "true")
    assert p.returncode == 0, p.stderr
    assert "fipsboot.runner" in cold  # the first launch verifies in full, and remembers
    assert facts_file(profile).exists()

    p, warm = warm_run(profile, "sh", "-c", 'echo "started $$"')
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith("started ")  # the server really ran, with this PID
    ours = {n for n in warm if n.split(".")[0] == "fipsboot"}
    assert ours == FIPSBOOT_WARM, sorted(ours ^ FIPSBOOT_WARM)
    assert not warm & NEVER, sorted(warm & NEVER)
    assert warm - ours <= STDLIB_WARM, sorted(warm - ours - STDLIB_WARM)
    # The run record for `fipsboot status` is written before the exec, as on the full path.
    folder = Journal.for_installation(str(installation.install_dir)).folder
    records, notes = runrecords.read_all(folder)
    pid = int(p.stdout.split()[1])
    assert not notes and any(r["pid"] == pid and r["module_mac"] for _, r in records)


def test_a_changed_fact_or_an_untrusted_facts_file_takes_the_full_path(installation30, tmp_path):
    profile = installed(installation30)
    assert warm_run(profile, "true")[0].returncode == 0
    facts = facts_file(profile)

    facts.chmod(0o666)  # writable by others: not to be trusted
    p, names = warm_run(profile, "true")
    assert p.returncode == 0 and "fipsboot.runner" in names
    assert "fipsboot.runner" not in warm_run(profile, "true")[1]  # remembered again

    other = tmp_path / "facts"
    other.write_bytes(facts.read_bytes())
    facts.unlink()
    facts.symlink_to(other)  # a link is never followed (nor written through)
    for _ in range(2):
        p, names = warm_run(profile, "true")
        assert p.returncode == 0 and "fipsboot.runner" in names
    facts.unlink()
    assert "fipsboot.runner" in warm_run(profile, "true")[1]
    assert "fipsboot.runner" not in warm_run(profile, "true")[1]

    with open(installation30.config_dir / "openssl.cnf", "a") as f:
        f.write("# touched\n")  # any byte of a config: a miss
    assert "fipsboot.runner" in warm_run(profile, "true")[1]
    env = dict(os.environ, OPENSSL_ia32cap="0")  # an OpenSSL variable of the caller: a miss
    p, names = imported(["-c", CONSOLE, "run", "--profile", str(profile), "--", "true"], env)
    assert p.returncode == 0 and "fipsboot.runner" in names


def test_the_record_writer_spells_json_that_json_reads():
    record = {"argv": ["srv", 'a "quoted" \\ arg', "tab\tnew\nline", "é", "\U0001f600",
                       "\udcff"], "pid": 12, "time": 1764134000.125, "none": None}
    assert json.loads(runrecords.to_json(record)) == record


def test_the_warm_path_looks_in_the_same_state_folder():
    assert warmrun.SYSTEM_STATE_DIR == str(SYSTEM_STATE_DIR)


def test_a_change_made_while_the_verdict_ran_never_becomes_a_fact(installation30):
    """The facts are taken before the verdict and again after it: a config rewritten in
    between (an editor, an install running beside) is not remembered, and the next launch
    verifies in full and refuses it."""
    from fipsboot import runner
    from fipsboot.processenv import caller
    from fipsboot.profile import load

    profile_path = installed(installation30)
    profile = load(profile_path)
    job = runner.prepare(profile, ["true"], caller())
    before = runfacts.snapshot(profile, job)
    checks = runner.verdict(job["layout"], job["env"], job["journal"])
    assert all(c.ok for c in checks)
    cnf = installation30.config_dir / "openssl.cnf"
    cnf.write_text(cnf.read_text().replace("fips=yes", "fips=no"))
    runfacts.remember(profile, job, checks, before)
    assert not facts_file(profile_path).exists()
    p = fipsboot("run", "--profile", str(profile_path), "--", "true")
    assert p.returncode == 78 and "openssl.cnf" in p.stderr


def test_folders_above_where_a_link_leads_are_facts(installation30, tmp_path):
    """fips/ is a link to a folder elsewhere; that folder's parent becoming writable by others
    is a miss, and the full path refuses it (trust.py judges where links lead)."""
    inst = installation30
    real = tmp_path / "real"
    real.mkdir(mode=0o755)
    (inst.install_dir / "fips").rename(real / "fips")
    (inst.install_dir / "fips").symlink_to(real / "fips")
    profile = installed(inst)
    assert warm_run(profile, "true")[0].returncode == 0
    assert "fipsboot.runner" not in warm_run(profile, "true")[1]
    real.chmod(0o757)
    p, names = warm_run(profile, "true")
    assert "fipsboot.runner" in names and p.returncode == 78, p.stderr


def test_what_ld_preload_names_is_judged_on_every_launch(installation30, tmp_path):
    """A library the caller preloads: its folder becoming writable by others is a miss for the
    warm path and a refusal for the full path, whose cached verdict only knows the name."""
    profile = installed(installation30)
    pre = tmp_path / "pre"
    pre.mkdir(mode=0o755)
    lib = pre / "libz.so.1"
    lib.write_bytes(Path("/lib/x86_64-linux-gnu/libz.so.1").read_bytes()
                    if Path("/lib/x86_64-linux-gnu/libz.so.1").exists() else b"")
    env = dict(os.environ, LD_PRELOAD=str(lib))
    argv = ["-c", CONSOLE, "run", "--profile", str(profile), "--", "true"]
    assert imported(argv, env)[0].returncode == 0
    assert "fipsboot.runner" not in imported(argv, env)[1]
    pre.chmod(0o777)
    p, names = imported(argv, env)
    assert "fipsboot.runner" in names and p.returncode == 78, p.stderr
    assert "LD_PRELOAD" in p.stderr or "pre" in p.stderr


def test_a_hard_linked_facts_file_is_not_trusted(installation30):
    profile = installed(installation30)
    assert warm_run(profile, "true")[0].returncode == 0
    facts = facts_file(profile)
    os.link(facts, facts.with_name("hard-link"))
    p, names = warm_run(profile, "true")
    assert p.returncode == 0 and "fipsboot.runner" in names


@pytest.mark.parametrize("search", ["exec_server", "os.execvpe"])
def test_the_warm_paths_path_search_is_os_execvpes(tmp_path, search):
    """warmrun.exec_server searches PATH as os.execvpe does (it only skips its `warnings`
    import): found after missing and not-a-folder entries; a file that can't be run is the
    error even when a later folder lacks the name; nothing found is FileNotFoundError."""
    (tmp_path / "not-runnable").mkdir()
    (tmp_path / "not-runnable" / "srv").write_text("#!/bin/sh\n")  # mode 0644
    (tmp_path / "a-file").write_text("")
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "srv").write_text("#!/bin/sh\necho started\n")
    (tmp_path / "bin" / "srv").chmod(0o755)
    call = ("from fipsboot.warmrun import exec_server as run" if search == "exec_server"
            else "import os; run = lambda a, e: os.execvpe(a[0], a, e)")

    def exec_with(path: str) -> subprocess.CompletedProcess:
        code = (f"{call}\ntry:\n    run(['srv'], {{'PATH': {path!r}}})\n"
                "except OSError as e:\n    print(type(e).__name__)")
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=30)

    missing, a_file = tmp_path / "missing", tmp_path / "a-file"
    found = exec_with(f"{missing}:{a_file}:{tmp_path / 'bin'}")
    assert found.stdout == "started\n"
    assert exec_with(f"{tmp_path / 'not-runnable'}:{missing}").stdout == "PermissionError\n"
    assert exec_with(f"{missing}:{a_file}").stdout == "NotADirectoryError\n"  # the last
