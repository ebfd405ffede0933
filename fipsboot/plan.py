"""The plan of a change (files, target variables, the server's switch) and its journaled
application, shared by install and reset."""
from __future__ import annotations

import difflib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import environ, fsutil, inifile, testseam
from .errors import FipsbootError, FollowUpError, HandEditError, UsageError
from .journal import Journal
from .layout import Layout
from .platforms.base import Backend, Change, file_change


@dataclass
class Plan:
    changes: List[Change] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Two targets in one file would each be computed from the same old bytes, and the
        # second write would silently undo the first.
        seen: Dict[str, str] = {}
        for c in self.changes:
            where = _real_path(c)
            if where in seen:
                raise UsageError(f"{seen[where]} and {c.label} both name {where}; "
                                 "give each target its own file")
            seen[where] = c.label

    @property
    def pending(self) -> List[Change]:
        return [c for c in self.changes if c.changed]

    def to_json(self) -> List[dict]:
        return [{"target": c.label, "path": c.key, "action": c.action,
                 "variables": {k: {"old": v[0], "new": v[1]} for k, v in c.variables.items()},
                 "notes": c.notes, "diff": unified_diff(c)} for c in self.changes]


def unified_diff(change: Change) -> str:
    """The change as a unified diff (what `ansible-playbook --diff` shows); "" when unchanged.
    A diff, not both texts: a login profile or env file may hold lines that are not fipsboot's."""
    if not change.changed:
        return ""
    if change.kind == "file":
        old, new = (b.decode("utf-8", "replace") if b is not None else None
                    for b in (change.old, change.new))
    else:  # a stored value (the server's switch, a registry value): its JSON
        old, new = (json.dumps(v, indent=1, sort_keys=True) + "\n" if v is not None else None
                    for v in (change.old, change.new))
    lines = difflib.unified_diff((old or "").splitlines(True), (new or "").splitlines(True),
                                 "/dev/null" if old is None else change.key,
                                 "/dev/null" if new is None else change.key)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n"
                   for line in lines)


def _real_path(change: Change) -> str:
    if change.kind == "file":
        return os.path.realpath(change.key)
    if change.kind == inifile.STORE:
        return os.path.realpath(inifile.path_of(change.key))
    return change.key


def whole_file(path: Path, label: str, new: Optional[bytes]) -> Change:
    old = fsutil.read(path)
    return file_change(path, label, old, new, fsutil.digest(old) if old is not None else None,
                       fsutil.digest(new) or "")


def target_changes(layout: Layout, backend: Backend, mode: str, journal: Journal) -> List[Change]:
    changes = []
    for target in backend.targets(layout.profile):
        current = target.read()
        stale = [*journal.extra.get("ld_dirs", []),
                 *foreign_fips_dirs(layout, current.get("LD_LIBRARY_PATH"))]
        changes.append(target.change(environ.values(layout, mode, current, stale)))
    return changes


def foreign_fips_dirs(layout: Layout, search_path: Optional[str]) -> List[str]:
    """Folders on a search path that hold a FIPS module that is not this installation's: the
    fips folder of an earlier install dir (its journal is keyed by that other folder)."""
    name = layout.profile.pure_path(layout.module).name
    return [d for d in (search_path or "").split(":")
            if d and d != layout.module_dir and (Path(d) / name).is_file()]


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
                  fsutil.digest(value.encode()), {f"{switch.section}/{switch.key}": [old["value"], value]})


def switch_reminder(layout: Layout, enabled: bool) -> List[str]:
    if layout.profile.fips_switch is not None:
        return []
    return [f"set the server's own FIPS switch to {'true' if enabled else 'false'} "
            "(ORS: scxml/fips-enabled) in its configuration; no [server] fips-switch "
            "is set in the profile"]


# --- applying -----------------------------------------------------------------------------

def hand_edits(changes: List[Change], journal: Journal) -> List[str]:
    out = []
    for c in changes:
        recorded = journal.managed.get(c.key)
        if c.changed and recorded is not None and c.managed_now not in (recorded, None):
            out.append(f"{c.label} ({c.key}) was edited since fipsboot wrote it")
    return out


def refuse_hand_edits(changes: List[Change], journal: Journal, force: bool) -> None:
    edits = hand_edits(changes, journal)
    if edits and not force:
        raise HandEditError("; ".join(edits) + ". Nothing was changed.",
                            "look at the file; rerun with --force to overwrite it (the edited "
                            "copy is kept in the journal, `fipsboot rollback` brings it back)")


def dry_run_result(result: dict, the_plan: Plan, journal: Journal, mode: str,
                   force: bool) -> dict:
    """What install/reset --dry-run answer: the plan, whether the real run would change
    anything (a mode change with no file change is a change too: the journal records the
    mode; so is finishing an interrupted command), and what it would stop on (exit 3)."""
    interrupted = bool(journal.checkpoints) and journal.checkpoints[-1]["status"] != "done"
    changed = bool(the_plan.pending) or journal.mode != mode or interrupted
    edited = hand_edits(the_plan.changes, journal)
    notes = list(result.get("notes", []))
    if edited and not force:
        notes.append("the real run stops here (exit 3): " + "; ".join(edited)
                     + "; rerun with --force to overwrite")
    return {**result, "notes": notes, "edited_since": edited, "status": "dry-run",
            "changed": changed, "checkpoint": None, "plan": the_plan}


def follow_up(journal: Journal, backend: Backend, checkpoint: Optional[int] = None,
              changed: bool = True) -> List[str]:
    """Run what must follow the journal's changes and undos (systemd's daemon-reload,
    Windows' WM_SETTINGCHANGE), including any an earlier command could not finish. It stays
    pending until it succeeds: every command retries it. A failure (exit 5) carries the
    checkpoint just made and `changed`, so a script can still roll that checkpoint back."""
    pending = [list(item) for item in journal.follow_up]
    notes = []
    if pending:
        testseam.kill_point("follow-up")  # after the journal's last save: the kill tests stop here too
        stubs = [Change(kind, key, key, None, True, None, "") for kind, key in pending]
        try:
            notes = backend.after_apply(stubs)  # FollowUpError: stays pending
        except FollowUpError as e:
            e.result = {"changed": changed, "checkpoint": checkpoint}
            raise
        journal.follow_up_done(pending)
    journal.rollback_finished()  # nothing of a killed rollback is left for a rerun to finish
    return notes


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
