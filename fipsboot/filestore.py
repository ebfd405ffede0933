"""Files and folders as journal stores.

A file entry: `{"kind": "file", "key": path, "backup": "<checkpoint>/<n>" or None (there was
no file), "mode": int, "owner": [uid, gid], "after": sha256 of what fipsboot wrote or None
(removed)}`. A folder entry: `{"kind": "dir", "key": path}`, written only for a folder
fipsboot created; a restore removes it when it is empty.

Every read, write and restore goes through fsutil, on descriptors: a link or FIFO in a file's
place is refused, never followed; the mode and owner recorded are those of the very file read
(fstat); a restore sets them on the descriptor it wrote or checked. Set-id bits are never
recorded as restorable (an entry carrying them is refused), and a backup is named only inside
its checkpoint's folder of backups/ (backups.py).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, List, Optional, Tuple

from . import fsutil, testseam
from .backups import Backups, Slot, is_backup_of
from .errors import FipsbootError

FILE, FOLDER = "file", "dir"
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")
RESTORABLE_MODE = 0o1777  # permission bits and sticky bit: never set-uid or set-gid


def _path_problem(kind: str, key: str) -> Optional[str]:
    if not os.path.isabs(key) or "\0" in key:
        return f"{kind} {key!r:.60} is not an absolute path"
    return None


class FileStore:
    """A whole file: its bytes (in a backup), mode and owner before; its digest after."""

    follow_up = True
    detects_edits = True
    listed = True

    def problem(self, entry: dict, checkpoint: int) -> Optional[str]:
        key = entry["key"]
        backup, mode, owner = entry.get("backup"), entry.get("mode"), entry.get("owner")
        after = entry.get("after")
        if _path_problem(FILE, key):
            return _path_problem(FILE, key)
        if backup is not None and not is_backup_of(backup, checkpoint):
            return f"backup {backup!r:.60} of {key} is not a backup of this checkpoint"
        if not (mode is None or (type(mode) is int and 0 <= mode <= RESTORABLE_MODE)):
            return f"mode {mode!r:.20} of {key} (set-id bits are never restored)"
        if not (owner is None or (isinstance(owner, list) and len(owner) == 2
                                  and all(type(i) is int and i >= 0 for i in owner))):
            return f"owner {owner!r:.30} of {key}"
        if not (after is None or (isinstance(after, str) and DIGEST_RE.match(after))):
            return f"digest {after!r:.20} of {key}"
        return None

    def needs(self, key: str, new: Optional[bytes]) -> List[Tuple[str, str, Any]]:
        return [] if new is None else [(FOLDER, str(Path(key).parent), True)]

    def snapshot(self, key: str, slot: Slot) -> dict:
        old, st = fsutil.read_with_stat(Path(key))  # one open file: its bytes, mode and owner
        if old is None:
            return {"backup": None, "mode": None, "owner": None}
        # Refused before anything is recorded: the write would refuse it, and so would the
        # undo, leaving a checkpoint no command could ever finish.
        fsutil.refuse_hard_links(st, Path(key))
        testseam.step(f"backup {key}")
        # Set-id bits are dropped: a restore must never hand out a set-id file.
        return {"backup": slot.save(old), "mode": st.st_mode & RESTORABLE_MODE,
                "owner": [st.st_uid, st.st_gid]}

    def after(self, new: Optional[bytes]) -> Optional[str]:
        return fsutil.digest(new)

    def digest(self, key: str) -> Optional[str]:
        return fsutil.digest(fsutil.read(Path(key)))

    def change(self, key: str, new: Optional[bytes], mode: Optional[int] = None,
               owner: Optional[Tuple[int, int]] = None) -> None:
        """Write `new` atomically (None: remove the file). `mode`/`owner` as fsutil.atomic_write."""
        path = Path(key)
        if new is None:
            testseam.step(f"remove {path}")
            fsutil.remove(path)
        else:
            testseam.step(f"write {path}")
            fsutil.atomic_write(path, new, mode, owner=owner)

    def restore(self, entry: dict, backups: Backups) -> None:
        path = Path(entry["key"])
        if entry["backup"] is None:
            fsutil.remove(path)
        else:
            fsutil.restore(path, backups.load(entry["backup"]), entry["mode"], entry.get("owner"))

    def keep(self, entry: dict) -> Optional[Tuple[bytes, str]]:
        data = fsutil.read(Path(entry["key"]))
        return None if data is None else (data, Path(entry["key"]).name)

    def sweep(self, entry: dict) -> None:
        fsutil.sweep_temp_files(Path(entry["key"]))

    def describe(self, entry: dict, backups: Backups) -> dict:
        before = None
        if entry.get("backup"):
            try:
                before = "sha256:" + fsutil.digest(backups.load(entry["backup"]))
            except (OSError, FipsbootError):
                before = "sha256:backup unreadable"
        return {"kind": "file", "before": before or "absent",
                "after": f"sha256:{entry['after']}" if entry.get("after") else "removed"}


class FolderStore:
    """A folder fipsboot created (for a file it writes): recorded only when it was missing,
    removed again by a restore when it is empty (what else is in it is not fipsboot's)."""

    follow_up = False  # the file written into it carries the follow-up
    detects_edits = False
    listed = False  # made for a file: the file is the change a person names

    def problem(self, entry: dict, checkpoint: int) -> Optional[str]:
        return _path_problem(FOLDER, entry["key"])

    def needs(self, key: str, new: Any) -> List[Tuple[str, str, Any]]:
        parent = Path(key).parent
        return [] if parent == Path(key) or parent.exists() else [(FOLDER, str(parent), True)]

    def snapshot(self, key: str, slot: Slot) -> Optional[dict]:
        return None if Path(key).exists() else {}

    def after(self, new: Any) -> None:
        return None

    def digest(self, key: str) -> None:
        return None

    def change(self, key: str, new: Any, **options: Any) -> None:
        if not Path(key).exists():
            fsutil.make_folder(Path(key), 0o755)

    def restore(self, entry: dict, backups: Backups) -> None:
        try:
            fsutil.remove_folder(Path(entry["key"]))
        except OSError:
            pass  # gone already, or holds files that are not fipsboot's

    def keep(self, entry: dict) -> None:
        return None

    def sweep(self, entry: dict) -> None:
        fsutil.sweep_temp_files(Path(entry["key"]), folder=True)

    def describe(self, entry: dict, backups: Backups) -> dict:
        return {"kind": "folder", "before": None, "after": "created"}
