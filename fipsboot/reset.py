"""`fipsboot reset` (non-FIPS mode) and `fipsboot rollback` (back to before a checkpoint)."""
from __future__ import annotations

import contextlib
from typing import Optional

from . import environ, plan, verify
from .errors import FipsbootError
from .journal import Journal
from .layout import resolve
from .openssl import OpenSSL
from .platforms import backend_for


def open_journal(profile) -> Journal:
    return Journal.for_installation(profile.install_dir, backend_for(profile).stores())


def reset(profile, dry_run: bool = False, force: bool = False, purge: bool = False) -> dict:
    layout = resolve(profile)
    backend = backend_for(profile)
    journal = Journal.for_installation(profile.install_dir, backend.stores())
    result: dict = {"command": "reset", "dry_run": dry_run, "notes": []}
    recovered = None
    with journal.lock() if not dry_run else contextlib.nullcontext():
        if not dry_run:
            recovered = journal.recover()
            if recovered:
                result["notes"].append(f"finished an interrupted {recovered['command']} "
                                       f"(checkpoint {recovered['id']})")
        changes = plan.target_changes(layout, backend, environ.NONFIPS, journal)
        switch = plan.switch_change(layout, False)
        if switch is not None:
            changes.append(switch)
        if purge:
            changes += [plan.whole_file(layout.host(layout.openssl_cnf), "openssl.cnf", None),
                        plan.whole_file(layout.host(layout.fipsmodule_cnf), "fipsmodule.cnf", None)]
        the_plan = plan.Plan(changes)
        if not layout.windows and not layout.security_pack_dir:
            result["notes"].append("no [server] security-pack-dir in the profile: "
                                   "LD_LIBRARY_PATH keeps only the lib-dirs")
        if dry_run:
            return plan.dry_run_result(result, the_plan, journal, environ.NONFIPS, force)
        plan.refuse_hand_edits(the_plan.changes, journal, force)
        if not the_plan.pending and journal.mode == environ.NONFIPS:
            result["notes"] += plan.follow_up(journal, backend, changed=bool(recovered))
            return {**result, "status": "unchanged", "changed": bool(recovered), "checkpoint": None,
                    "plan": the_plan}

        def prove_nonfips() -> None:
            env = verify.launch_environment(layout, environ.NONFIPS)
            check = verify.check_nonfips_providers(OpenSSL(layout, env), env)
            if not check.ok:
                raise FipsbootError(f"non-FIPS mode does not work: {check.reason}. "
                                    "Nothing was changed.")

        checkpoint = plan.apply(journal, "reset", the_plan, environ.NONFIPS, prove=prove_nonfips)
        result["notes"] += plan.follow_up(journal, backend, checkpoint)
        result["notes"] += plan.switch_reminder(layout, False)
        return {**result, "status": "reset", "changed": True, "checkpoint": checkpoint,
                "plan": the_plan}


def checkpoints(profile) -> dict:
    journal = open_journal(profile)
    return {"command": "rollback", "mode": journal.mode, "changed": False, "checkpoint": None,
            "checkpoints": [
        {"id": c["id"], "command": c["command"], "time": c["time"], "status": c["status"],
         "changes": [e["key"] for e in c["entries"] if e["kind"] != "dir"]}
        for c in journal.checkpoints]}


def rollback(profile, to: Optional[int] = None, dry_run: bool = False,
             force: bool = False) -> dict:
    journal = open_journal(profile)
    if dry_run:
        target = journal.rollback_target(to)
        doomed = [c for c in reversed(journal.checkpoints) if c["id"] >= target]
        return {"command": "rollback", "dry_run": True, "status": "dry-run",
                "changed": bool(doomed), "checkpoint": None,
                "would_undo": [{"id": c["id"], "command": c["command"],
                                "restores": [e["key"] for e in c["entries"]]} for c in doomed],
                "edited_since": [e["key"] for e in journal.edits_lost_by(target)]}
    with journal.lock():
        if not journal.checkpoints and journal.follow_up and to is None:
            # Nothing left to undo, but the last rollback's daemon-reload failed: retry it.
            notes = plan.follow_up(journal, backend_for(profile))
            return {"command": "rollback", "dry_run": False, "status": "follow-up done",
                    "changed": True, "checkpoint": None, "mode": journal.mode, "notes": notes, "undone": []}
        undone = journal.rollback(to, force=force)
        notes = plan.follow_up(journal, backend_for(profile), changed=bool(undone))
        # A rollback creates no checkpoint: it removes the ones it undid.
        return {"command": "rollback", "dry_run": False, "status": "rolled-back",
                "changed": bool(undone), "checkpoint": None, "mode": journal.mode, "notes": notes,
                "undone": [{"id": c["id"], "command": c["command"],
                            "restored": [e["key"] for e in c["entries"]]} for c in undone]}
