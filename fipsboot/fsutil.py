"""File effects: atomic writes, removal, digests and the installation lock.

Atomic write (as hatch's fs utils, plus what they miss): a temp file in the target's folder,
fsync, the old file's mode (and owner, when root) kept, os.replace, the folder fsynced, the
temp file removed on any failure.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator, Optional, Tuple

from .errors import BusyError, FipsbootError


def digest(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


def read(path: Path) -> Optional[bytes]:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


def refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise FipsbootError(f"{path} is a symbolic link (to {os.readlink(path)}); fipsboot does not "
                            "write through links into other folders: point the profile at the "
                            "real file")


def atomic_write(path: Path, data: bytes, mode: Optional[int] = None,
                 exact_mode: bool = False, owner: Optional[Tuple[int, int]] = None) -> None:
    """Write `data` to `path` atomically. The mode is kept (or set), minus group and world
    write, except with `exact_mode`: a rollback puts back exactly what was there."""
    refuse_symlink(path)
    try:
        old = path.stat()
    except FileNotFoundError:
        old = None
    if mode is None:
        mode = stat.S_IMODE(old.st_mode) if old else 0o644
    if not exact_mode:
        mode &= ~0o022  # never group- or world-writable
    import tempfile  # here, not at the top: the wrapper's warm path never writes
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".fipsboot-tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fchmod(f.fileno(), mode) if hasattr(os, "fchmod") else None
            keep = (old.st_uid, old.st_gid) if old is not None else owner
            if keep is not None and hasattr(os, "fchown") and os.geteuid() == 0:
                os.fchown(f.fileno(), *keep)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    if os.name != "posix":
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def loose_permissions(path: Path) -> Optional[str]:
    """Why `path` lets someone other than its owner change what it holds, or None."""
    if os.name != "posix":
        return None
    st = path.stat()
    if st.st_mode & 0o022 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        who = "group and others" if st.st_mode & 0o002 and st.st_mode & 0o020 else (
            "others" if st.st_mode & 0o002 else "group")
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        try:
            if os.name == "posix":
                import fcntl

                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(f.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            f.seek(0)
            holder = f.read().strip() or "unknown"
            raise BusyError(f"another fipsboot (pid {holder}) is changing {what}; "
                            "wait for it to finish and run this again") from None
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
