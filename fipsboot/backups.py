"""What the state folder keeps besides journal.json: the backups a restore reads back, and the
copies a forced rollback keeps of what it overwrites.

    backups/<checkpoint>/<n>   bytes a store saved before checkpoint <checkpoint>'s entry <n>
    kept/<time>-<hash>-<n>-<name>   what a forced rollback overwrote (never replaced)

Both folders are 0700 and their files 0600 whatever the umask. A backup is named only
`<checkpoint>/<n>` (a name in the journal that says anything else, `../x` or another
checkpoint's backup, is refused before anything acts on it) and is read back only after the
checks of `fsutil.read_state_file` (a real file, owned by root or this account, not writable by
others, one link).
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import time
from pathlib import Path

from . import fsutil
from .errors import FipsbootError

NAME_RE = re.compile(r"^([0-9]{1,9})/([0-9]{1,9})$")


def is_backup_of(name, checkpoint: int) -> bool:
    """`name` (from a journal entry) names a backup of `checkpoint`: `<checkpoint>/<n>`, so it
    can only be a file in that checkpoint's folder of backups/."""
    m = NAME_RE.match(name) if isinstance(name, str) else None
    return bool(m) and int(m.group(1)) == checkpoint


class Slot:
    """Where one entry's backup goes (`backups/<checkpoint>/<n>`), written only if needed."""

    def __init__(self, backups: Backups, checkpoint: int, n: int):
        self.backups, self.name = backups, f"{checkpoint}/{n}"

    def save(self, data: bytes) -> str:
        """Write the backup (atomically, 0600) and return its name for the entry."""
        folder = self.backups.folder
        fsutil.make_or_verify_dir(folder, 0o700)
        fsutil.make_or_verify_dir(folder / self.name.split("/")[0], 0o700)
        fsutil.atomic_write(folder / self.name, data, 0o600, exact_mode=True)
        return self.name


class Backups:
    def __init__(self, state_folder: Path):
        self.state_folder = state_folder
        self.folder = state_folder / "backups"

    def slot(self, checkpoint: int, n: int) -> Slot:
        return Slot(self, checkpoint, n)

    def load(self, name: str) -> bytes:
        data = fsutil.read_state_file(self.folder / name)
        if data is None:
            raise FipsbootError(f"its backup {name} is missing")
        return data

    def drop(self, checkpoint: int) -> None:
        """The checkpoint is undone: its backups are of no more use."""
        shutil.rmtree(self.folder / str(checkpoint), ignore_errors=True)

    def keep(self, key: str, data: bytes, suffix: str) -> None:
        """Save `data` (what `key` held before a forced rollback overwrote it) in kept/, under
        a name no other copy has."""
        kept = self.state_folder / "kept"
        fsutil.make_or_verify_dir(kept, 0o700)
        stem = time.strftime("%Y%m%dT%H%M%S-") + hashlib.sha256(key.encode()).hexdigest()[:8]
        n = 0
        while True:
            target = kept / f"{stem}-{n}-{suffix}"
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return
