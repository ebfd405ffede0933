"""The journal: every change fipsboot makes is recorded here before it is made, and can be
undone.

One folder per installation in the state folder (statedir.py):

    journal.json        mode, what fipsboot last wrote (digests), the checkpoints (journalfile.py)
    backups/<id>/<n>    what a store saved before checkpoint <id> changed it (backups.py)
    kept/               what a forced rollback overwrote
    lock                one fipsboot at a time per installation

A checkpoint is one command's changes (transaction.py). Its state is "pending" while it is
applied, "done" after, "rolling-back" while it is undone. For each change the old state is
saved and recorded *before* the change is made, so after a kill -9 at any point `recover()` can
restore it: a pending checkpoint is rolled back, an interrupted rollback is finished. Restores
are idempotent, and a checkpoint whose restore fails is kept (certbot's reverter does the same).

The journal knows no kind of entry: files, folders, the server's INI value and registry values
are stores (stores.py), and the journal asks an entry's store to restore it, to tell whether it
was edited by hand since, and what to keep of it.
"""
from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from . import fsutil, journalfile, testseam
from .backups import Backups
from .errors import FipsbootError, HandEditError
from .statedir import (  # noqa: F401 - the names callers import from here
    SYSTEM_STATE_DIR,
    _written_key,
    current_user,
    installation_folder,
    installation_key,
    state_root,
)
from .stores import Store, journal_stores
from .transaction import Transaction


class Journal:
    def __init__(self, folder: Path, stores: Optional[Dict[str, Any]] = None):
        """`stores`: the backend's own (the Windows registry), added to files, folders and
        the INI value; a get/set store is adapted (stores.ValueStore)."""
        self.folder = folder
        self._rolled_back_here = False
        self.stores: Dict[str, Store] = journal_stores(stores)
        self.backups = Backups(folder)
        self.data = journalfile.load(folder, self.stores)

    @classmethod
    def for_installation(cls, install_dir: str, stores=None) -> Journal:
        return cls(installation_folder(install_dir), stores)

    # --- persistent state ----------------------------------------------------------------

    def _save(self) -> None:
        journalfile.save(self.folder, self.data)

    @property
    def exists(self) -> bool:
        return (self.folder / "journal.json").exists()

    @property
    def mode(self) -> Optional[str]:
        return self.data["mode"]

    @property
    def managed(self) -> Dict[str, str]:
        """Digest of what fipsboot last wrote, per file or value it manages."""
        return self.data["managed"]

    @property
    def extra(self) -> Dict[str, Any]:
        return self.data["extra"]

    @property
    def checkpoints(self) -> List[dict]:
        return self.data["checkpoints"]

    @property
    def follow_up(self) -> List[List[str]]:
        """[kind, key] of changes whose follow-up (daemon-reload, WM_SETTINGCHANGE) has not
        run yet. Recorded in the same save as the change or the undo, so a kill in between
        loses nothing; outside the checkpoints' snapshots, so a rollback doesn't drop it."""
        return self.data["follow_up"]

    def follow_up_done(self, done: List[List[str]]) -> None:
        self.data["follow_up"] = [k for k in self.follow_up if k not in done]
        self._save()

    def _need_follow_up(self, entries: List[dict]) -> None:
        for entry in entries:
            item = [entry["kind"], entry["key"]]
            store = self.stores.get(entry["kind"])
            if (store is None or store.follow_up) and item not in self.follow_up:
                self.follow_up.append(item)

    def store(self, kind: str) -> Store:
        try:
            return self.stores[kind]
        except KeyError:
            raise FipsbootError(f"fipsboot has no store of kind {kind!r} here "
                                f"(known: {', '.join(sorted(self.stores))})") from None

    def describe(self, cp: dict) -> List[dict]:
        """Each change of checkpoint `cp` in words: {"what", "kind", "before", "after"}."""
        out = []
        for entry in cp["entries"]:
            try:
                said = self.store(entry["kind"]).describe(entry, self.backups)
            except FipsbootError:  # a kind this platform has no store for: as recorded
                said = {"kind": entry["kind"], "before": None, "after": None}
            out.append({"what": entry["key"], **said})
        return out

    def named_changes(self, cp: dict) -> List[str]:
        """The keys of `cp` a person would name (not the folders made for its files)."""
        return [e["key"] for e in cp["entries"]
                if getattr(self.stores.get(e["kind"]), "listed", True)]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One fipsboot at a time; the journal is re-read once the lock is held, so nothing
        another command saved meanwhile is overwritten."""
        with fsutil.exclusive_lock(self.folder / "lock", f"the installation ({self.folder.name})"):
            fsutil.sweep_temp_files(self.folder, folder=True)  # a killed save's temp file
            self.data = journalfile.load(self.folder, self.stores)
            yield

    # --- applying a change ---------------------------------------------------------------

    def begin(self, command: str) -> Transaction:
        self.recover()
        self.data["rollback_open"] = None  # a new change: an earlier rollback is over
        cid = max((c["id"] for c in self.checkpoints), default=0) + 1
        checkpoint = {"id": cid, "command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "user": current_user(), "status": "pending", "entries": [],
                      "before": json.loads(json.dumps(self._state()))}
        self.checkpoints.append(checkpoint)
        self._save()
        return Transaction(self, checkpoint)

    def _state(self) -> dict:
        return {k: self.data[k] for k in ("mode", "managed", "extra")}

    # --- undoing -------------------------------------------------------------------------

    def recover(self) -> Optional[dict]:
        """Finish what a killed fipsboot left: undo a pending checkpoint, finish a rollback."""
        if not self.checkpoints or self.checkpoints[-1]["status"] == "done":
            return None
        return self._undo(self.checkpoints[-1])

    def edited_since(self, cp: dict) -> List[dict]:
        """Entries changed after checkpoint `cp` wrote them: restoring would lose that edit."""
        return [entry for entry in cp["entries"] if "after" in entry
                and self.store(entry["kind"]).digest(entry["key"]) != entry["after"]]

    def edits_lost_by(self, target: int) -> List[dict]:
        """Entries a rollback down to checkpoint `target` would overwrite although they were
        changed after fipsboot wrote them. Only the newest write of each key counts: older
        ones are restored over by the newer checkpoint's undo."""
        edited, seen = [], set()
        for cp in reversed(self.checkpoints):
            if cp["id"] < target:
                break
            edited += [e for e in self.edited_since(cp) if e["key"] not in seen]
            seen.update(e["key"] for e in cp["entries"])
        return edited

    def rollback_target(self, to: Optional[int]) -> int:
        """The checkpoint a rollback goes down to: `to`, or the newest."""
        ids = [c["id"] for c in self.checkpoints]
        if not ids:
            raise FipsbootError("nothing to roll back: the journal has no checkpoint",
                                "nothing to do: `fipsboot rollback --list` shows the journal")
        target = ids[-1] if to is None else to
        if target not in ids:
            raise FipsbootError(f"no checkpoint {target} (have: {', '.join(map(str, ids))})",
                                "pick one of those: `fipsboot rollback --list` shows them")
        return target

    def rollback(self, to: Optional[int] = None, force: bool = False) -> List[dict]:
        """Undo checkpoints newest first, down to and including `to` (default: the newest).
        A rollback interrupted by a kill is finished first and is the only one done: whatever
        the arguments, the rerun of a killed rollback undoes only what that rollback meant to
        (`rollback_open`, saved with its first undo and cleared by `rollback_finished` once its
        follow-up ran), never one checkpoint more."""
        interrupted = self.data["rollback_open"]
        if interrupted is not None and not self._rolled_back_here:
            undone = [self.recover()] if self.checkpoints and \
                self.checkpoints[-1]["status"] != "done" else []
            return [c for c in undone + self._undo_down_to(interrupted["to"]) if c is not None]
        recovered = self.recover()
        if recovered is not None and recovered["status"] == "rolling-back" and to is None:
            return [recovered]
        if not self.checkpoints and recovered is not None:
            return [recovered]
        target = self.rollback_target(to)
        edited = self.edits_lost_by(target)
        if edited and not force:
            raise HandEditError(
                "changed since fipsboot wrote it: "
                + ", ".join(dict.fromkeys(e["key"] for e in edited))
                + ". Nothing was changed.",
                "rerun with --force to roll back anyway; the edited copies are kept in "
                f"{self.folder / 'kept'}")
        for entry in edited:
            self._keep_copy(entry)
        self.data["rollback_open"] = {"to": target}
        self._rolled_back_here = True  # this process's own marker is no interrupted rollback
        return ([recovered] if recovered is not None else []) + self._undo_down_to(target)

    def _undo_down_to(self, target: int) -> List[dict]:
        undone = []
        while self.checkpoints and self.checkpoints[-1]["id"] >= target:
            cp = self.checkpoints[-1]
            cp["status"] = "rolling-back"
            self._save()
            undone.append(self._undo(cp))
        return undone

    def rollback_finished(self) -> None:
        """The rollback and its follow-up are complete: a rerun now starts a new rollback."""
        if self.data["rollback_open"] is not None:
            self.data["rollback_open"] = None
            self._save()

    def _keep_copy(self, entry: dict) -> None:
        """Save what a forced rollback is about to overwrite (a file's bytes, a value as
        JSON). Copies never replace each other."""
        kept = self.store(entry["kind"]).keep(entry)
        if kept is not None:
            self.backups.keep(entry["key"], *kept)

    def _undo(self, cp: dict) -> dict:
        """Restore every entry of `cp`, newest first. What already holds its old state is not
        touched; an entry that can't be restored doesn't stop the others. If any failed, the
        checkpoint stays (the next command retries it) and the failures are raised together."""
        for entry in cp["entries"]:  # what changes a kill interrupted left (temp files)
            if entry["kind"] in self.stores:
                self.stores[entry["kind"]].sweep(entry)
        failures = []
        for entry in reversed(cp["entries"]):
            try:
                testseam.step("restore")
                self.store(entry["kind"]).restore(entry, self.backups)
            except testseam.InjectedFailure:
                raise
            except (OSError, FipsbootError, KeyError) as e:
                failures.append(f"{entry['key']}: {e}")
        if failures:
            raise FipsbootError(
                f"could not undo checkpoint {cp['id']} ({cp['command']}) completely: "
                + "; ".join(failures) + ". Everything else was restored; the checkpoint is kept",
                "fix the cause named and run any fipsboot command for this installation "
                "again: it finishes the undo")
        for key, value in cp["before"].items():
            self.data[key] = value
        self._need_follow_up(cp["entries"])
        self.checkpoints.remove(cp)
        self._save()
        self.backups.drop(cp["id"])
        return cp
