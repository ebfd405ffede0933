"""File effects on descriptors: reads, atomic writes, restores, removal, the state folder and
the installation lock.

Every operation on a target, a backup or a state file acts on what it checked: the file is
opened with O_NOFOLLOW (a link in its place is refused, never followed) and O_NONBLOCK (a FIFO
can't hang the open), the descriptor is fstat'ed and anything but a regular file is refused,
and modes and owners are set with fchmod/fchown on that descriptor. On POSIX the file's folder
is opened once and every name in it (temp file, rename, unlink) is used relative to that
folder's descriptor, so the folder can't be swapped between the check and the use.

Folders on the way to a file are walked one name at a time from `/` (openat with
O_NOFOLLOW|O_DIRECTORY): a symbolic link on the way is followed only when root (or the account
running fipsboot) owns it, so a config folder or `UNIT.d` that root linked elsewhere works, but
a link that another account planted in a folder it can write (`~/cfg -> /etc`) is refused
instead of steering root's read, write or removal into another folder. Who may own and write
the folders themselves is checked by preflight and verify's `permissions`/`ownership` checks.

A target or backup with more than one hard link is refused: its other name may be a file root
must not touch, and a restore that only fixes the mode would chmod/chown that file too.

Atomic write (as hatch's fs utils, plus what they miss): a temp file in the target's folder,
named `.NAME.<random>.fipsboot-tmp` (the journal sweeps such names after a kill), fsync, the
old file's mode (and owner, when root) kept, rename, the folder fsynced, the temp file removed
on any failure.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import stat
from pathlib import Path
from typing import Iterator, Optional, Tuple

from .errors import BusyError, FipsbootError

POSIX = os.name == "posix"
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
OPEN_FLAGS = NOFOLLOW | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | getattr(
    os, "O_BINARY", 0)
TMP_SUFFIX = ".fipsboot-tmp"
IN_WRITE_STEPS = bool(os.environ.get("FIPSBOOT_TEST_KILL_IN_WRITE"))  # test seam: testseam.py


def digest(data: Optional[bytes]) -> Optional[str]:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _link_error(path: Path, dir_fd: Optional[int] = None, shown=None) -> FipsbootError:
    try:
        to = f" (to {os.readlink(path, dir_fd=dir_fd)})"
    except OSError:
        to = ""
    return FipsbootError(f"{shown or path} is a symbolic link{to}; fipsboot does not read or write "
                         "through links: point the profile at the real file")


def open_regular(path: Path, flags: int = os.O_RDONLY, mode: int = 0o600,
                 dir_fd: Optional[int] = None, shown=None) -> Optional[int]:
    """A descriptor of the regular file at `path` (the last component never followed; a name
    relative to `dir_fd` when given), or None when there is no such file. A link, FIFO,
    device or folder there is an error (`shown`: the path named in messages)."""
    shown = shown or path
    if not NOFOLLOW and os.path.islink(path):  # Windows: no O_NOFOLLOW
        raise _link_error(path, shown=shown)
    if POSIX and dir_fd is None:  # reach the folder without following planted links
        try:
            folder = open_folder(Path(path).parent)
        except FileNotFoundError:
            return None
        try:
            return open_regular(Path(Path(path).name), flags, mode, folder, shown)
        finally:
            os.close(folder)
    try:
        fd = os.open(path, flags | OPEN_FLAGS, mode, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.EMLINK):
            raise _link_error(path, dir_fd, shown) from None
        if e.errno in (errno.ENXIO, errno.EISDIR, errno.EWOULDBLOCK):
            raise FipsbootError(f"{shown} is not a regular file; fipsboot reads and writes only "
                                "regular files: point the profile at the real file") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else (
            "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        raise FipsbootError(f"{shown} is {kind}; fipsboot reads and writes only regular files: "
                            "point the profile at the real file")
    return fd


def _read_fd(fd: int) -> bytes:
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def read(path: Path) -> Optional[bytes]:
    """The bytes of the regular file at `path`, or None when it does not exist."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        return _read_fd(fd)
    finally:
        os.close(fd)


def read_with_stat(path: Path) -> Tuple[Optional[bytes], Optional[os.stat_result]]:
    """The bytes and the stat of one and the same open file (None, None when missing)."""
    fd = open_regular(path)
    if fd is None:
        return None, None
    try:
        return _read_fd(fd), os.fstat(fd)
    finally:
        os.close(fd)


MAX_LINKS = 40  # as the kernel's own limit on links followed in one path
PATH_ONLY = getattr(os, "O_PATH", os.O_RDONLY)


def open_folder(folder: Path) -> int:
    """A descriptor of `folder`, reached from `/` (or the working folder) one name at a time
    with O_NOFOLLOW|O_DIRECTORY. A symbolic link on the way is followed only when root or this
    account owns it: a link is changed only by replacing it, and a replacement belongs to
    whoever made it, so another account can't steer the walk into a folder of its choice."""
    text = str(folder)
    parts = [p for p in text.split("/") if p not in ("", ".")]

    def dir_flags():  # O_PATH on the way (needs only search permission), readable at the end
        return (os.O_RDONLY if not parts else PATH_ONLY) | os.O_DIRECTORY | os.O_CLOEXEC

    fd = os.open("/" if text.startswith("/") else ".", dir_flags())
    walked = "" if text.startswith("/") else "."
    links = 0
    try:
        while parts:
            name = parts.pop(0)
            try:
                next_fd = os.open(name, dir_flags() | NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno not in (errno.ELOOP, errno.ENOTDIR):
                    raise
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISLNK(st.st_mode):
                    raise
                link = f"{walked}/{name}"
                to = os.readlink(name, dir_fd=fd)
                if st.st_uid not in trusted_owners():
                    raise FipsbootError(
                        f"{link} (on the way to {folder}) is a symbolic link to {to} owned by "
                        f"uid {st.st_uid}; fipsboot follows a link on the way to a file only "
                        "when root owns it (another account could point it at any folder)",
                        f"point the profile at the real path, or replace {link} with the "
                        "folder itself (or a link root owns)") from None
                links += 1
                if links > MAX_LINKS:
                    raise FipsbootError(f"too many symbolic links on the way to {folder}") from None
                parts[:0] = [p for p in to.split("/") if p not in ("", ".")]
                if to.startswith("/"):
                    os.close(fd)
                    fd = os.open("/", dir_flags())
                    walked = ""
                elif not parts:  # a link to "." at the end: the folder we are in, readable
                    next_fd = os.open(".", dir_flags(), dir_fd=fd)
                    os.close(fd)
                    fd = next_fd
                continue
            os.close(fd)
            fd = next_fd
            walked = f"{walked}/{name}"
        return fd
    except BaseException:
        os.close(fd)
        raise


@contextlib.contextmanager
def _folder(path: Path) -> Iterator[Optional[int]]:
    """The descriptor of `path`'s folder (POSIX), walked to without following planted links
    and opened once for every name used in it."""
    if not POSIX:
        yield None
        return
    fd = open_folder(path.parent)
    try:
        yield fd
    finally:
        os.close(fd)


def refuse_hard_links(st: os.stat_result, path: Path) -> None:
    if POSIX and st.st_nlink > 1:
        raise FipsbootError(
            f"{path} has {st.st_nlink} hard links; fipsboot changes only files with one name "
            "(another name may be a file root must not touch)",
            f"replace {path} with a copy of its own (cp --remove-destination) and run again")


def _in(folder_fd: Optional[int], path: Path, name: str):
    """(name, dir_fd) to use a name relative to the opened folder; a full path elsewhere."""
    return (name, folder_fd) if folder_fd is not None else (str(path.parent / name), None)


def atomic_write(path: Path, data: bytes, mode: Optional[int] = None,
                 exact_mode: bool = False, owner: Optional[Tuple[int, int]] = None) -> None:
    """Write `data` to `path` atomically. The mode is kept (or set), minus group and world
    write, except with `exact_mode`: a rollback puts back exactly what was there. `owner` is
    used when there is no old file (or, with `exact_mode`, always)."""
    with _folder(path) as folder:
        name, dir_fd = _in(folder, path, path.name)
        old_fd = open_regular(Path(name), dir_fd=dir_fd, shown=path)
        try:
            old = os.fstat(old_fd) if old_fd is not None else None
        finally:
            if old_fd is not None:
                os.close(old_fd)
        if old is not None:
            refuse_hard_links(old, path)
        if mode is None:
            mode = stat.S_IMODE(old.st_mode) if old else 0o644
        if not exact_mode:
            mode &= ~0o022  # never group- or world-writable
        keep = (old.st_uid, old.st_gid) if old is not None and not (exact_mode and owner) else owner
        tmp_name, tmp_dir_fd, fd = _create_temp(folder, path)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if hasattr(os, "fchmod"):
                    os.fchmod(fd, mode)
                if keep is not None and hasattr(os, "fchown") and os.geteuid() == 0:
                    os.fchown(fd, *keep)
                os.fsync(fd)
            finally:
                os.close(fd)
            if IN_WRITE_STEPS:  # the crash tests: a kill between the temp file and the rename
                from . import testseam

                testseam.step(f"in write {path}")
            os.replace(tmp_name, name, src_dir_fd=tmp_dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name, dir_fd=tmp_dir_fd)
            raise
        if folder is not None:
            os.fsync(folder)


def _create_temp(folder: Optional[int], path: Path):
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | OPEN_FLAGS
    for _ in range(100):
        name, dir_fd = _in(folder, path, f".{path.name}.{os.urandom(4).hex()}{TMP_SUFFIX}")
        try:
            return name, dir_fd, os.open(name, flags, 0o600, dir_fd=dir_fd)
        except FileExistsError:
            continue
    raise FipsbootError(f"cannot create a temporary file beside {path}")


def restore(path: Path, data: bytes, mode: Optional[int],
            owner: Optional[Tuple[int, int]] = None) -> None:
    """Put back exactly `data` with `mode` (and `owner`). What already holds them is not
    touched at all; a file whose bytes are right gets only fchmod/fchown on its descriptor."""
    fd = open_regular(path)
    if fd is not None:
        try:
            st = os.fstat(fd)
            refuse_hard_links(st, path)
            if _read_fd(fd) == data:
                if POSIX and mode is not None and stat.S_IMODE(st.st_mode) != mode:
                    os.fchmod(fd, mode)
                if (POSIX and owner is not None and os.geteuid() == 0
                        and (st.st_uid, st.st_gid) != tuple(owner)):
                    os.fchown(fd, *owner)
                return
        finally:
            os.close(fd)
    atomic_write(path, data, mode, exact_mode=True, owner=tuple(owner) if owner else None)


def remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError), _folder(path) as folder:
        name, dir_fd = _in(folder, path, path.name)
        os.unlink(name, dir_fd=dir_fd)  # never follows a link: a link in the file's place goes
        if folder is not None:
            os.fsync(folder)


def make_folder(path: Path, mode: int) -> None:
    """mkdir in the folder reached without following planted links."""
    with _folder(path) as folder:
        name, dir_fd = _in(folder, path, path.name)
        os.mkdir(name, mode, dir_fd=dir_fd)


def remove_folder(path: Path) -> None:
    """rmdir (an empty folder only) in the folder reached without following planted links."""
    with _folder(path) as folder:
        name, dir_fd = _in(folder, path, path.name)
        os.rmdir(name, dir_fd=dir_fd)


def sweep_temp_files(path: Path, folder: bool = False) -> None:
    """Remove the temp files an atomic write of `path` left behind when it was killed (with
    `folder`: every fipsboot temp file in the folder `path`, which fipsboot created)."""
    prefix = "." if folder else f".{path.name}."
    where = path if folder else path.parent
    with contextlib.suppress(FileNotFoundError, NotADirectoryError, PermissionError):
        fd = open_folder(where) if POSIX else None
        try:
            for entry in os.scandir(fd if fd is not None else where):
                if entry.name.startswith(prefix) and entry.name.endswith(TMP_SUFFIX):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.name if fd is not None else entry.path, dir_fd=fd)
        finally:
            if fd is not None:
                os.close(fd)


def fsync_dir(folder: Path) -> None:
    if not POSIX:
        return
    fd = open_folder(folder)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def loose_permissions(path: Path) -> Optional[str]:
    """Why `path` lets someone other than its owner change what it holds, or None."""
    if not POSIX:
        return None
    st = path.stat()
    if st.st_mode & 0o022 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        who = "group and others" if st.st_mode & 0o002 and st.st_mode & 0o020 else (
            "others" if st.st_mode & 0o002 else "group")
        return f"{path} is writable by {who} (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


# --- the state folder ---------------------------------------------------------------------

def trusted_owners() -> Tuple[int, ...]:
    """Who may own what fipsboot trusts: root, and the account running fipsboot."""
    return (0, os.geteuid()) if POSIX else ()


def _untrusted(st: os.stat_result, path: Path, what: str) -> Optional[str]:
    if not POSIX:
        return None
    if st.st_uid not in trusted_owners():
        return f"{what} {path} belongs to uid {st.st_uid}, not to root or this account"
    if st.st_mode & 0o022 and not (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX):
        return f"{what} {path} is writable by group or others (mode {stat.S_IMODE(st.st_mode):04o})"
    return None


def _state_error(problem: str) -> FipsbootError:
    return FipsbootError(problem + "; fipsboot trusts its state only where no other account can "
                         "change it, and changed nothing",
                         "remove the path named (or give it to root with mode 0755 for folders, "
                         "0644/0600 for files) and run the command again")


def make_or_verify_dir(path: Path, mode: int) -> None:
    """Create `path` (and missing parents) with exactly `mode` whatever the umask, or check an
    existing one: a real folder (not a link), owned by root or this account, not writable by
    group or others; its parents likewise (a sticky folder such as /tmp is fine)."""
    missing = []
    p = path
    while not os.path.lexists(p):
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, mode)
        if POSIX:
            os.chmod(d, mode)  # mkdir's mode is filtered by the umask
    verify_dir(path)


def verify_dir(path: Path) -> None:
    if not POSIX:
        return
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        raise _state_error(f"state folder {path} is not a folder (a link or a file is there)")
    problem = _untrusted(st, path, "state folder")
    for parent in path.parents:
        if problem:
            break
        problem = _untrusted(os.stat(parent), parent, "folder")
    if problem:
        raise _state_error(problem)


def read_state_file(path: Path) -> Optional[bytes]:
    """A file in the state folder, opened without following links, checked for owner and mode."""
    fd = open_regular(path)
    if fd is None:
        return None
    try:
        st = os.fstat(fd)
        problem = _untrusted(st, path, "state file") or (
            f"state file {path} has {st.st_nlink} hard links" if POSIX and st.st_nlink > 1
            else None)
        if problem:
            raise _state_error(problem)
        return _read_fd(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def exclusive_lock(path: Path, what: str) -> Iterator[None]:
    make_or_verify_dir(path.parent, 0o755)
    fd = open_regular(path, os.O_RDWR | os.O_CREAT) if POSIX else os.open(
        path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "r+") as f:
        problem = _untrusted(os.fstat(fd), path, "lock file")
        if problem:
            raise _state_error(problem)
        try:
            if POSIX:
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
        if POSIX:
            os.fchmod(fd, 0o600)
        f.seek(0)
        f.truncate()
        f.write(str(os.getpid()))
        f.flush()
        yield
