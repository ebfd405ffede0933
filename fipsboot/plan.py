"""The plan of a change (files, target variables, the server's switch) and its journaled
application, shared by install and reset."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from . import environ, fsutil
from .errors import FipsbootError, HandEditError, UsageError
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
            if c.key in seen:
                raise UsageError(f"{seen[c.key]} and {c.label} both name {c.key}; "
                                 "give each target its own file")
            seen[c.key] = c.label

    @property
    def pending(self) -> List[Change]:
        return [c for c in self.changes if c.changed]

    def to_json(self) -> List[dict]:
        return [{"target": c.label, "path": c.key, "action": c.action,
                 "variables": {k: {"old": v[0], "new": v[1]} for k, v in c.variables.items()},
                 "notes": c.notes} for c in self.changes]


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

def get_ini_value(text: str, section: str, key: str) -> Optional[str]:
    current = None
    for line in text.splitlines():
        m = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"\s*([^=\s]+)\s*=\s*(.*?)\s*$", line)
        if current == section and m and m.group(1) == key:
            return m.group(2)
    return None


def set_ini_value(text: str, section: str, key: str, value: str) -> str:
    """Set `key` in `[section]`, keeping every other byte of the file."""
    lines = text.splitlines(keepends=True)
    current, insert_at = None, None
    for i, line in enumerate(lines):
        m = re.match(r"\s*\[\s*([^\]]+?)\s*\]", line)
        if m:
            if current == section and insert_at is None:
                insert_at = i
            current = m.group(1)
            continue
        m = re.match(r"(\s*)([^=\s]+)(\s*=\s*)(.*?)(\s*)$", line.rstrip("\r\n"))
        if current == section and m and m.group(2) == key:
            ending = line[len(line.rstrip("\r\n")):]
            lines[i] = m.group(1) + key + m.group(3) + value + m.group(5) + ending
            return "".join(lines)
    if current == section and insert_at is None:
        insert_at = len(lines)
    if insert_at is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines) + f"[{section}]\n{key} = {value}\n"
    if insert_at and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    lines.insert(insert_at, f"{key} = {value}\n")
    return "".join(lines)


def switch_change(layout: Layout, enabled: bool) -> Optional[Change]:
    switch = layout.profile.fips_switch
    if switch is None:
        return None
    path = layout.host(switch.file)
    old = fsutil.read(path)
    if old is None:
        raise FipsbootError(f"fips-switch file {switch.file} does not exist",
                            "fix [server] fips-switch in the profile")
    value = "true" if enabled else "false"
    # surrogateescape: whatever the file's encoding, every byte we don't change comes back.
    text = old.decode("utf-8", "surrogateescape")
    new = set_ini_value(text, switch.section, switch.key, value).encode("utf-8", "surrogateescape")
    label = f"fips-switch:{switch.file}[{switch.section}]{switch.key}"
    now = get_ini_value(text, switch.section, switch.key)
    # Only the switch is fipsboot's: an edit elsewhere in the server's file is no conflict.
    return file_change(path, label, old, new, fsutil.digest((now or "").encode()),
                       fsutil.digest(value.encode()),
                       {f"{switch.section}/{switch.key}": [now, value]})


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


# What must follow a change (systemd's daemon-reload, Windows' WM_SETTINGCHANGE) is recorded
# in the same commit as the change, and forgotten only once it has run: a kill or a failure
# in between is retried by the next command.
FOLLOW_UP = "follow-up-pending"


def follow_up(journal: Journal, backend: Backend, changed=None) -> List[str]:
    """Run the backend's follow-up for `changed` ([kind, key] pairs) plus anything pending."""
    pending = [*journal.extra.get(FOLLOW_UP, []), *(changed or [])]
    if not pending:
        return []
    if changed:
        journal.set_extra(FOLLOW_UP, pending)
    stubs = [Change(kind, key, key, None, True, None, "") for kind, key in pending]
    notes = backend.after_apply(stubs)  # raises FollowUpError: stays pending
    journal.set_extra(FOLLOW_UP, None)
    return notes


def apply(journal: Journal, command: str, plan: Plan, mode: str,
          extra: Optional[Dict] = None, prove: Optional[Callable[[], None]] = None) -> Optional[int]:
    """Apply every pending change in one checkpoint; any exception restores all of them."""
    with journal.begin(command) as txn:
        for c in plan.pending:
            if c.kind == "file":
                path = Path(c.key)
                if c.new is None:
                    txn.remove_file(path)
                else:
                    txn.ensure_dir(path.parent)
                    txn.write_file(path, c.new, c.mode)
            else:
                txn.set_value(c.kind, c.key, c.new)
        if prove is not None:
            prove()  # raises: everything above is rolled back
        managed = dict(journal.managed)
        for c in plan.changes:
            if c.new is None:
                managed.pop(c.key, None)
            else:
                managed[c.key] = c.managed_new
        pending = [*journal.extra.get(FOLLOW_UP, []), *([c.kind, c.key] for c in plan.pending)]
        txn.commit(mode=mode, managed=managed,
                   extra={**journal.extra, **(extra or {}), FOLLOW_UP: pending})
        return txn.checkpoint["id"] if txn.checkpoint in journal.checkpoints else None
