"""Look at running processes from outside (psutil; on Linux /proc/PID/maps directly).

Two jobs: find the candidate server processes cheaply (one pass over the process table that
reads only the name and executable of each process), and inspect each candidate: which FIPS
provider, libcrypto and libssl it has mapped, the OpenSSL variables of its environment where
readable, its user, start time and command line. Nothing here decides a verdict (status.py
does); what could not be read is reported as such, never guessed.
"""
from __future__ import annotations

import os
import sys
from pathlib import PureWindowsPath
from typing import Dict, Iterable, List, Optional, Tuple

import psutil

ENV_NAMES = ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")
MODULE_NAMES = ("fips.so", "fips.dll")


def _base(path: str) -> str:
    """The file name of a mapped path, Linux or Windows style, lower case."""
    return PureWindowsPath(path).name.lower() if "\\" in path else os.path.basename(path).lower()


def is_library(name: str) -> bool:
    """libcrypto/libssl in any of their file names (libcrypto.so.3, libssl-3-x64.dll)."""
    return name.startswith(("libcrypto", "libssl")) and (".so" in name or name.endswith(".dll"))


class Mapping:
    """One mapped file: its path as the process sees it and, where known, (major, minor, inode)."""

    def __init__(self, path: str, ident: Optional[Tuple[int, int, int]] = None):
        self.path, self.ident = path, ident

    @property
    def deleted(self) -> bool:
        return self.path.endswith(" (deleted)")


def read_maps(pid: int) -> List[Mapping]:
    """Every file the process has mapped. Raises psutil.AccessDenied / NoSuchProcess."""
    if sys.platform.startswith("linux"):
        try:
            with open(f"/proc/{pid}/maps", encoding="utf-8", errors="surrogateescape") as f:
                text = f.read()
        except PermissionError:
            raise psutil.AccessDenied(pid) from None
        except (FileNotFoundError, ProcessLookupError):
            raise psutil.NoSuchProcess(pid) from None
        seen: Dict[str, Mapping] = {}
        for line in text.splitlines():
            parts = line.split(None, 5)
            if len(parts) < 6 or not parts[5].startswith("/"):
                continue
            major, _, minor = parts[3].partition(":")
            try:
                ident = (int(major, 16), int(minor, 16), int(parts[4]))
            except ValueError:
                ident = None
            seen.setdefault(parts[5], Mapping(parts[5], ident))
        return list(seen.values())
    # Windows (and other platforms): psutil lists the loaded images; identity comes from stat.
    return [Mapping(m.path) for m in psutil.Process(pid).memory_maps(grouped=True) if m.path]


def file_ident(path) -> Optional[Tuple[int, int, int]]:
    try:
        st = os.stat(path)
    except OSError:
        return None
    if hasattr(os, "major"):
        return (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    return (st.st_dev, 0, st.st_ino)


def same_file(mapping: Mapping, ident: Optional[Tuple[int, int, int]], host_path) -> bool:
    """Whether a mapping is the file `host_path` (same device and inode). A file replaced
    since it was mapped ("(deleted)") is not the file there now."""
    if ident is None or mapping.deleted:
        return False
    if mapping.ident is not None:
        return mapping.ident == ident
    return file_ident(mapping.path) == ident


def under(path: Optional[str], folder: str, windows: bool) -> bool:
    """Whether `path` lies below `folder` (a string test: this runs once per process)."""
    if not path:
        return False
    if windows:
        return path.lower().startswith(folder.lower().rstrip("\\") + "\\")
    return path.startswith(folder.rstrip("/") + "/")


def scan(names: Iterable[str], install_dirs: Iterable[Tuple[str, bool]],
         skip: Iterable[int] = ()) -> Dict[int, List[str]]:
    """One pass over the process table: PID -> why it is a candidate ("process-names",
    "install-dir"). Reads only each process's name and executable path."""
    wanted = {n.lower() for n in names}
    dirs = list(install_dirs)
    skip = set(skip)
    found: Dict[int, List[str]] = {}
    for proc in psutil.process_iter(["name", "exe"]):
        if proc.pid in skip:
            continue
        name, exe = proc.info.get("name") or "", proc.info.get("exe") or ""
        why = []
        if wanted and (name.lower() in wanted or _base(exe) in wanted):
            why.append("process-names")
        if any(under(exe, d, w) for d, w in dirs):
            why.append("install-dir")
        if why:
            found[proc.pid] = why
    return found


def start_ticks(pid: int) -> Optional[int]:
    from .runrecords import linux_start

    return linux_start(pid)[0]


def start_time(pid: int, fallback: float) -> float:
    """When the process started (wall clock): on Linux from the boot clock (runrecords'
    linux_start), psutil's create_time elsewhere."""
    from .runrecords import linux_start

    start = linux_start(pid)[1]
    return fallback if start is None else start


def describe(pid: int) -> dict:
    """What anyone may read about a process (name, user, start, command line), and the
    OpenSSL variables of its environment where this account may read them."""
    proc = psutil.Process(pid)
    out: dict = {"pid": pid}
    with proc.oneshot():
        out["name"] = proc.name()
        out["start_time"] = start_time(pid, proc.create_time())
        try:
            out["user"] = proc.username()
        except (psutil.AccessDenied, KeyError):
            out["user"] = None
        try:
            out["cmdline"] = proc.cmdline()
        except psutil.AccessDenied:
            out["cmdline"] = None
        try:
            out["exe"] = proc.exe() or None
        except psutil.AccessDenied:
            out["exe"] = None
    try:
        env = proc.environ()
        out["environment"] = {"readable": True, **{k: env.get(k) for k in ENV_NAMES}}
    except psutil.AccessDenied:
        out["environment"] = {"readable": False,
                              "reason": "not readable (another account's process: run status as "
                                        "root or as that account)"}
    return out
