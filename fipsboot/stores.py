"""Journal stores: what the journal needs from each kind of thing fipsboot changes, so the
journal itself knows no kind (files, folders, the server's INI value, registry values are
all stores).

A journal entry is `{"kind": store name, "key": ..., <the store's own fields>}`. For every
entry the journal asks its store to:

    problem(entry, checkpoint)   say why the entry is not one fipsboot wrote (before acting)
    needs(key, new)              changes to make first (a file's missing folder)
    snapshot(key, slot)          record what is there before the change: the entry's fields
                                 (a file's bytes go to a backup through `slot`); None when
                                 there is nothing to change (a folder that exists)
    after(new)                   what the entry records as written ("after"), compared with
    digest(key)                  what is there now to find edits made by hand since
    change(key, new, **options)  make the change (options: a file's mode and owner)
    restore(entry, backups)      put back what the snapshot recorded; idempotent
    keep(entry)                  (bytes, name) of what a forced rollback is about to overwrite
    sweep(entry)                 remove what a killed change left (a write's temp file)
    describe(entry, backups)     what changed, for people and the report: {"kind", "before",
                                 "after"}

`listed`: the entry is a change a person names (a folder made for a file is not);

`follow_up`: a change needs the backend's follow-up (daemon-reload, WM_SETTINGCHANGE);
`detects_edits`: the entry records "after". A store that only gets and sets a value (the
Windows registry stores, the INI value, a test's fake store) is used through `ValueStore`.
"""
from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Protocol, Tuple

from . import testseam
from .backups import Backups, Slot


class GetSetStore(Protocol):
    """A keyed value outside the journal (a registry value, the server's INI value)."""

    def get(self, key: str) -> Any: ...  # None when absent; otherwise JSON-able
    def set(self, key: str, value: Any) -> None: ...  # value None: delete


class Store(Protocol):
    follow_up: bool
    detects_edits: bool
    listed: bool

    def problem(self, entry: dict, checkpoint: int) -> Optional[str]: ...
    def needs(self, key: str, new: Any) -> List[Tuple[str, str, Any]]: ...
    def snapshot(self, key: str, slot: Slot) -> Optional[dict]: ...
    def after(self, new: Any) -> Any: ...
    def digest(self, key: str) -> Any: ...
    def change(self, key: str, new: Any, **options: Any) -> None: ...
    def restore(self, entry: dict, backups: Backups) -> None: ...
    def keep(self, entry: dict) -> Optional[Tuple[bytes, str]]: ...
    def sweep(self, entry: dict) -> None: ...
    def describe(self, entry: dict, backups: Backups) -> dict: ...


class ValueStore:
    """A get/set store as a journal store: the entry records the value before ("before") and
    the value written ("after"); a restore sets "before" again (None deletes). The value is
    JSON-able and small, so it lives in journal.json itself, not in a backup."""

    follow_up = True
    detects_edits = True
    listed = True

    def __init__(self, kind: str, values: GetSetStore):
        self.kind, self.values = kind, values

    def problem(self, entry: dict, checkpoint: int) -> Optional[str]:
        if "before" not in entry:
            return f"{self.kind} {entry['key']!r:.60} records no value before"
        return None

    def needs(self, key: str, new: Any) -> List[Tuple[str, str, Any]]:
        return []

    def snapshot(self, key: str, slot: Slot) -> Optional[dict]:
        return {"before": self.values.get(key)}

    def after(self, new: Any) -> Any:
        return new

    def digest(self, key: str) -> Any:
        return self.values.get(key)

    def change(self, key: str, new: Any, **options: Any) -> None:
        testseam.step(f"set {self.kind}:{key}")
        self.values.set(key, new)

    def restore(self, entry: dict, backups: Backups) -> None:
        self.values.set(entry["key"], entry["before"])

    def keep(self, entry: dict) -> Optional[Tuple[bytes, str]]:
        value = {"kind": self.kind, "key": entry["key"], "value": self.values.get(entry["key"])}
        return json.dumps(value, indent=1).encode(), self.kind + ".json"

    def sweep(self, entry: dict) -> None:
        sweep = getattr(self.values, "sweep", None)  # a value kept in a file (the INI value)
        if sweep is not None:
            sweep(entry["key"])

    def describe(self, entry: dict, backups: Backups) -> dict:
        return {"kind": self.kind, "before": json.dumps(entry.get("before")),
                "after": json.dumps(entry.get("after"))}


def journal_stores(extra: Optional[Dict[str, Any]] = None) -> Dict[str, Store]:
    """Every store a journal uses: files, folders, the server's INI value, and the backend's
    (the Windows registry) or a test's; a get/set store is adapted by `ValueStore`."""
    from .filestore import FILE, FOLDER, FileStore, FolderStore
    from .inifile import STORE as INI
    from .inifile import IniStore

    given = {INI: IniStore(), **(extra or {})}
    return {FILE: FileStore(), FOLDER: FolderStore(),
            **{kind: s if hasattr(s, "snapshot") else ValueStore(kind, s)
               for kind, s in given.items()}}
