"""One command's changes as one checkpoint of the journal.

Every change goes the same way, whatever its store: what it needs first (a file's missing
folder), then the store's snapshot of what is there, recorded and saved in journal.json,
*then* the change. So a kill at any point leaves a journal from which `recover()` restores
what the change replaced. A key changed twice keeps its oldest snapshot.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict, Tuple

from . import testseam

if TYPE_CHECKING:
    from .journal import Journal


class Transaction:
    """Use as a context manager: an exception rolls everything back."""

    def __init__(self, journal: Journal, checkpoint: dict):
        self.journal = journal
        self.checkpoint = checkpoint
        self._touched: Dict[Tuple[str, str], dict] = {}
        self._committed = False

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            if not self._committed:
                self.commit()
        else:
            self.journal._undo(self.checkpoint)
        return False

    def change(self, kind: str, key: str, new: Any, **options: Any) -> None:
        """Make `key` of store `kind` hold `new` (None: remove it), journaled; `options` go to
        the store (a file's mode and owner)."""
        store = self.journal.store(kind)
        for need in store.needs(key, new):
            self.change(*need)
        entry = self._touched.get((kind, key))
        if entry is None:
            slot = self.journal.backups.slot(self.checkpoint["id"],
                                             len(self.checkpoint["entries"]))
            fields = store.snapshot(key, slot)
            if fields is None:
                return  # already as wanted (a folder that exists): nothing to record
            testseam.step(f"record {kind}:{key}")
            entry = {"kind": kind, "key": key, **fields}
            self.checkpoint["entries"].append(entry)
            self.journal._save()
            self._touched[(kind, key)] = entry
        if store.detects_edits:
            entry["after"] = store.after(new)
        store.change(key, new, **options)

    def commit(self, **state: Any) -> None:
        for key, value in state.items():
            self.journal.data[key] = value
        self._committed = True
        self.journal._need_follow_up(self.checkpoint["entries"])
        if not self.checkpoint["entries"] and self.checkpoint["before"] == self.journal._state():
            self.journal.checkpoints.remove(self.checkpoint)  # nothing happened: no checkpoint
        else:
            self.checkpoint["status"] = "done"
        testseam.step("commit")
        self.journal._save()
