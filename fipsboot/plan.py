"""The plan of a change (files, target variables, the server's switch) and its journaled
application, shared by install and reset."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Dict, List, Optional

from . import fsutil, inifile, testseam
from .errors import FipsbootError, FollowUpError, HandEditError
from .journal import Journal
from .layout import Layout
from .vocabulary import FIPS, Change, Plan, file_change

if TYPE_CHECKING:
    from .session import Session


def whole_file(path: Path, label: str, new: Optional[bytes]) -> Change:
    old = fsutil.read(path)
    return file_change(path, label, old, new, fsutil.digest(old) if old is not None else None,
                       fsutil.digest(new) or "")


def target_changes(session: Session, mode: str) -> List[Change]:
    """Each target's change to hold `mode`'s values (from what it holds now)."""
    return [target.change(session.values(mode, target.read())) for target in session.targets()]


# --- the server's own FIPS switch (ORS: [scxml] fips-enabled) ----------------------------

def switch_change(layout: Layout, enabled: bool) -> Optional[Change]:
    """The server's switch as a journaled value (not a file): only that value is fipsboot's,
    so an edit elsewhere in the server's file is neither a conflict nor undone by rollback."""
    switch = layout.profile.fips_switch
    if switch is None:
        return None
    path = layout.host(switch.file)
    if not path.is_file():
        raise FipsbootError(f"fips-switch file {switch.file} does not exist",
                            "fix [server] fips-switch in the profile")
    key = inifile.store_key(path, switch.section, switch.key)
    old = inifile.IniStore().get(key)
    value = "true" if enabled else "false"
    new = {"value": value, "section": True}  # setting the value creates a missing section
    label = f"fips-switch:{switch.file}[{switch.section}]{switch.key}"
    return Change(inifile.STORE, key, label, old, new, fsutil.digest(str(old["value"]).encode()),
                  fsutil.digest(value.encode()),
                  {f"{switch.section}/{switch.key}": [old["value"], value]}, where=str(path))


def switch_reminder(layout: Layout, enabled: bool) -> List[str]:
    if layout.profile.fips_switch is not None:
        return []
    return [f"set the server's own FIPS switch to {'true' if enabled else 'false'} "
            "(ORS: scxml/fips-enabled) in its configuration; no [server] fips-switch "
            "is set in the profile"]


# --- applying -----------------------------------------------------------------------------

def refuse_hand_edits(plan: Plan, journal: Journal, force: bool) -> None:
    edits = plan.edited_by_hand(journal.managed)
    if edits and not force:
        raise HandEditError("; ".join(edits) + ". Nothing was changed.",
                            "look at the file; rerun with --force to overwrite it (the edited "
                            "copy is kept in the journal, `fipsboot rollback` brings it back)")


# What install and reset said, and still say, after finishing a killed command first.
RECOVERED = {"install": "rolled back an interrupted {command} (checkpoint {id}) first",
             "reset": "finished an interrupted {command} (checkpoint {id})"}


def recovery_notes(session: Session, command: str) -> List[str]:
    """What `Session.changing` finished first, in words (a dry run finishes nothing: it says
    what the real run will find)."""
    cp = session.recovered
    if cp is not None:
        return [RECOVERED[command].format(command=cp["command"], id=cp["id"])]
    pending = session.journal.checkpoints[-1:] if session.journal.checkpoints else []
    if pending and pending[0]["status"] != "done":
        return [f"an interrupted {pending[0]['command']} is in the journal: the real run first "
                "finishes it, so the files may differ from what is shown"]
    return []


def dry_run_result(result: dict, the_plan: Plan, journal: Journal, mode: str,
                   force: bool) -> dict:
    """What install/reset --dry-run answer: the plan, whether the real run would change
    anything (a mode change with no file change is a change too: the journal records the
    mode; so is finishing an interrupted command), and what it would stop on (exit 3)."""
    interrupted = bool(journal.checkpoints) and journal.checkpoints[-1]["status"] != "done"
    changed = bool(the_plan.pending) or journal.mode != mode or interrupted
    edited = the_plan.edited_by_hand(journal.managed)
    notes = list(result.get("notes", []))
    if edited and not force:
        notes.append("the real run stops here (exit 3): " + "; ".join(edited)
                     + "; rerun with --force to overwrite")
    return {**result, "notes": notes, "edited_since": edited, "status": "dry-run",
            "changed": changed, "checkpoint": None, "plan": the_plan}


def follow_up(session: Session, checkpoint: Optional[int] = None,
              changed: bool = True) -> List[str]:
    """Run what must follow the journal's changes and undos (systemd's daemon-reload,
    Windows' WM_SETTINGCHANGE), including any an earlier command could not finish. It stays
    pending until it succeeds: every command retries it. A failure (exit 5) carries the
    checkpoint just made and `changed`, so a script can still roll that checkpoint back."""
    journal = session.journal
    pending = [list(item) for item in journal.follow_up]
    notes = []
    if pending:
        testseam.kill_point("follow-up")  # after the journal's last save: the kill tests stop here too
        stubs = [Change(kind, key, key, None, True, None, "") for kind, key in pending]
        try:
            notes = session.backend.after_apply(stubs)  # FollowUpError: stays pending
        except FollowUpError as e:
            e.result = {"changed": changed, "checkpoint": checkpoint}
            raise
        journal.follow_up_done(pending)
    journal.rollback_finished()  # nothing of a killed rollback is left for a rerun to finish
    return notes


def carry_out(session: Session, result: dict, the_plan: Plan, mode: str, force: bool,
              prove: Callable[[], None], done: str, extra: Optional[Dict] = None,
              prove_unchanged: Optional[Callable[[], None]] = None) -> dict:
    """The part install and reset share once their plan is made: refuse a hand edit (exit 3)
    unless forced; nothing to do ("unchanged", retrying a pending follow-up); else apply the
    plan in one checkpoint, `prove` it (a failure restores everything) and run the follow-up."""
    journal = session.journal
    refuse_hand_edits(the_plan, journal, force)
    recovered = session.recovered is not None
    if not the_plan.pending and journal.mode == mode:
        if prove_unchanged is not None:
            prove_unchanged()
        result["notes"] += follow_up(session, changed=recovered)
        return {**result, "status": "unchanged", "changed": recovered, "checkpoint": None,
                "plan": the_plan}
    checkpoint = apply(journal, result["command"], the_plan, mode, extra=extra, prove=prove)
    result["notes"] += follow_up(session, checkpoint)
    result["notes"] += switch_reminder(session.layout, mode == FIPS)
    return {**result, "status": done, "changed": True, "checkpoint": checkpoint,
            "plan": the_plan}


def apply(journal: Journal, command: str, plan: Plan, mode: str,
          extra: Optional[Dict] = None, prove: Optional[Callable[[], None]] = None) -> Optional[int]:
    """Apply every pending change in one checkpoint; any exception restores all of them."""
    with journal.begin(command) as txn:
        for c in plan.pending:  # each store knows what its change needs (a file's folder)
            txn.change(c.kind, c.key, c.new, mode=c.mode, owner=c.owner)
        if prove is not None:
            prove()  # raises: everything above is rolled back
        managed = dict(journal.managed)
        for c in plan.changes:
            if c.new is None:
                managed.pop(c.key, None)
            else:
                managed[c.key] = c.managed_new
        txn.commit(mode=mode, managed=managed, extra={**journal.extra, **(extra or {})})
        return txn.checkpoint["id"] if txn.checkpoint in journal.checkpoints else None
