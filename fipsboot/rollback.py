"""`fipsboot rollback`: back to before a checkpoint (`--to N`, else the newest), `--list` the
checkpoints, `--dry-run` what would be undone. A rollback makes no checkpoint: it removes the
ones it undid."""
from __future__ import annotations

from typing import Optional

from . import plan
from .session import Session


def checkpoints(profile) -> dict:
    journal = Session(profile).journal
    return {"command": "rollback", "mode": journal.mode, "changed": False, "checkpoint": None,
            "checkpoints": [
        {"id": c["id"], "command": c["command"], "time": c["time"], "status": c["status"],
         "changes": journal.named_changes(c)}
        for c in journal.checkpoints]}


def rollback(profile, to: Optional[int] = None, dry_run: bool = False,
             force: bool = False) -> dict:
    session = Session(profile)
    journal = session.journal
    if dry_run:
        target = journal.rollback_target(to)
        doomed = [c for c in reversed(journal.checkpoints) if c["id"] >= target]
        return {"command": "rollback", "dry_run": True, "status": "dry-run",
                "changed": bool(doomed), "checkpoint": None,
                "would_undo": [{"id": c["id"], "command": c["command"],
                                "restores": [e["key"] for e in c["entries"]]} for c in doomed],
                "edited_since": [e["key"] for e in journal.edits_lost_by(target)]}
    # No `changing()`: the journal's rollback finishes a killed command itself (a killed
    # rollback's rerun must undo only what that rollback meant to).
    with journal.lock():
        if not journal.checkpoints and journal.follow_up and to is None:
            # Nothing left to undo, but the last rollback's daemon-reload failed: retry it.
            notes = plan.follow_up(session)
            return {"command": "rollback", "dry_run": False, "status": "follow-up done",
                    "changed": True, "checkpoint": None, "mode": journal.mode, "notes": notes,
                    "undone": []}
        undone = journal.rollback(to, force=force)
        notes = plan.follow_up(session, changed=bool(undone))
        return {"command": "rollback", "dry_run": False, "status": "rolled-back",
                "changed": bool(undone), "checkpoint": None, "mode": journal.mode, "notes": notes,
                "undone": [{"id": c["id"], "command": c["command"],
                            "restored": [e["key"] for e in c["entries"]]} for c in undone]}
