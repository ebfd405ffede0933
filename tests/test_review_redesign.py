"""Review of the issue-10 redesign: behaviour the redesign changed (each test fails on main at
d35b106 and passes on e667d8e, unless it says otherwise)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from helpers import fipsboot

# --- contract: the notes a recovery prints --------------------------------------------------

def _killed(profile, command: str, step: int = 2) -> None:
    r = fipsboot(command, "--profile", str(profile), env={"FIPSBOOT_TEST_KILL_AT": str(step)})
    assert r.returncode == -9, (r.returncode, r.stderr)


def test_install_after_a_killed_install_says_what_it_did_in_the_same_words(installation30):
    """e667d8e: `rolled back an interrupted install (checkpoint 1) first` (text and JSON notes);
    main: `an interrupted install (checkpoint 1) was in the journal: rolled it back first`."""
    profile = installation30.write_profile()
    _killed(profile, "install")
    r = fipsboot("install", "--profile", str(profile), "--json", check=0)
    assert "rolled back an interrupted install (checkpoint 1) first" in json.loads(r.stdout)["notes"]


def test_reset_after_a_killed_reset_says_what_it_did_in_the_same_words(installation30):
    """e667d8e: `finished an interrupted reset (checkpoint 2)`; main: the install wording."""
    profile = installation30.write_profile()
    fipsboot("install", "--profile", str(profile), check=0)
    _killed(profile, "reset")
    r = fipsboot("reset", "--profile", str(profile), "--json", check=0)
    assert "finished an interrupted reset (checkpoint 2)" in json.loads(r.stdout)["notes"]


# --- processes.py: the timer's kill -----------------------------------------------------------

def test_a_kill_that_fails_in_the_timer_does_not_hang_the_command():
    """The overrun kill now runs in a threading.Timer; if it raises (EPERM: a child that
    changed its credentials, e.g. a set-uid launcher started by a non-root `fipsboot run`),
    the timer thread dies and the main thread's `proc.wait()` (no time limit) waits for ever.
    On e667d8e the same failure ended the command with an error. Run in a child process with a
    watchdog so a hang fails the test instead of the suite."""
    code = textwrap.dedent("""
        import subprocess, sys
        from fipsboot import processes
        from fipsboot.errors import FipsbootError
        def refuse(self):
            raise PermissionError(1, "Operation not permitted")
        subprocess.Popen.kill = refuse
        try:
            processes.run_together([(["sleep", "5"], b"")], {"PATH": "/usr/bin:/bin"}, 0.5)
        except (FipsbootError, OSError) as e:
            print("raised", type(e).__name__)
    """)
    try:
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=4)
    except subprocess.TimeoutExpired:
        raise AssertionError("run_together hung after its overrun kill failed") from None
    assert "raised" in r.stdout, r.stderr


# --- pre-existing (fails on e667d8e too): a hard-linked target ---------------------------------

def test_a_hard_linked_target_is_refused_without_leaving_a_checkpoint_that_cannot_be_undone(
        installation30):
    """The file store records (backs up) a target with two names, then atomic_write refuses
    it; the undo's fsutil.restore refuses it too, although nothing was written, so the install
    ends in "could not undo checkpoint 1 (install) completely" and leaves a pending checkpoint
    that every later command tries (and fails) to undo until the link goes."""
    inst = installation30
    profile = inst.write_profile()
    inst.envfile.write_text("GCTI_HOME=/opt/genesys\n")
    (inst.root / "second name").hardlink_to(inst.envfile)
    r = fipsboot("install", "--profile", str(profile), "--json")
    assert r.returncode == 1
    assert "could not undo" not in json.loads(r.stdout)["error"]
    listing = json.loads(fipsboot("rollback", "--profile", str(profile), "--list", "--json",
                                  check=0).stdout)
    assert listing["checkpoints"] == []
