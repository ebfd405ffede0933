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

from .errors import ProfileError

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
         skip: Iterable[int] = (), tools: Iterable[str] = (), users: Iterable[str] = (),
         ignore_case: bool = False) -> Dict[int, List[str]]:
    """One pass over the process table: PID -> why it is a candidate ("process-names",
    "install-dir"). Reads only each process's name and executable path; a match's account
    and (for `tools`) command line are read for the matches only.

    Names match exactly (Linux names are case-sensitive: `orchestrationserver` is another
    program), ignoring case only for Windows servers. `tools` (the installation's openssl) run
    as commands (verify's, an administrator's `openssl list`), not servers: under install-dir
    they count only while they serve (`s_server`). `users`, when given, restricts both kinds
    of match to processes of those accounts, so that no other account can pose as the server."""
    fold = str.lower if ignore_case else (lambda text: text)
    wanted = {fold(n) for n in names}
    dirs = list(install_dirs)
    tools = {fold(t) for t in tools if t}
    accounts = set(users)
    skip = set(skip)
    found: Dict[int, List[str]] = {}
    for proc in psutil.process_iter(["name", "exe"]):
        if proc.pid in skip:
            continue
        name, exe = proc.info.get("name") or "", proc.info.get("exe") or ""
        why = []
        if wanted and (fold(name) in wanted or fold(_base_as_is(exe)) in wanted):
            why.append("process-names")
        if any(under(exe, d, w) for d, w in dirs) and (fold(exe) not in tools or serving(proc)):
            why.append("install-dir")
        if why and accounts and not owned_by(proc, accounts):
            continue
        if why:
            found[proc.pid] = why
    return found


def _base_as_is(path: str) -> str:
    """The file name of an executable's path, case kept."""
    return PureWindowsPath(path).name if "\\" in path else os.path.basename(path)


SERVING_COMMANDS = ("s_server",)


def serving(proc: psutil.Process) -> bool:
    """Whether the installation's openssl tool runs as a server (or can't be told apart)."""
    try:
        argv = proc.cmdline()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # unknown: judged, and then not proven
    return len(argv) > 1 and argv[1] in SERVING_COMMANDS


def owned_by(proc: psutil.Process, accounts: set) -> bool:
    """Whether the process runs as one of `accounts` (Windows: `user` or `DOMAIN\\user`)."""
    try:
        user = proc.username()
    except (psutil.Error, KeyError):
        return False  # an account we can't name is not one of the named ones
    if os.name == "posix":
        return user in accounts
    folded = {a.lower() for a in accounts}
    return user.lower() in folded or user.rpartition("\\")[2].lower() in folded


def openssl_kind(pid: int) -> str:
    """"openssl" (maps libcrypto/libssl or a FIPS provider), "none" (maps neither: a launcher
    or a program without OpenSSL), "unreadable", or "gone"."""
    try:
        maps = read_maps(pid)
    except psutil.AccessDenied:
        return "unreadable"
    except psutil.NoSuchProcess:
        return "gone"
    names = [_base(m.path) for m in maps]
    return "openssl" if any(n in MODULE_NAMES or is_library(n) for n in names) else "none"


def safe_name(proc: psutil.Process) -> str:
    """The process's name, or "(not readable)" (NoSuchProcess goes to the caller)."""
    try:
        return proc.name()
    except psutil.AccessDenied:
        return "(not readable)"


def pid_exists_hidden(pid: int) -> bool:
    """Whether a PID psutil can't see is alive all the same: signal 0 answers EPERM for a
    process of another account that /proc (hidepid) hides from this one."""
    if os.name != "posix":
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return not os.path.exists(f"/proc/{pid}")  # alive yet not in /proc: hidden


def proc_hidden() -> Optional[str]:
    """Why this account can't see every process, when /proc is mounted with hidepid (and it
    is neither root nor in the gid= group), else None."""
    if not sys.platform.startswith("linux") or os.geteuid() == 0:
        return None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    options = None
    for line in lines:  # the last mount on /proc is the one in force
        left, _, right = line.partition(" - ")
        fields, rest = left.split(), right.split()
        if len(fields) >= 5 and fields[4] == "/proc" and rest and rest[0] == "proc":
            options = dict(o.partition("=")[::2] for o in (rest[2] if len(rest) > 2 else "")
                           .split(","))
    if options is None:
        return None
    hidepid = options.get("hidepid", "0")
    if hidepid in ("0", "off"):
        return None
    gid = options.get("gid")
    if gid and gid.isdigit() and (int(gid) in os.getgroups() or int(gid) == os.getegid()):
        return None
    return (f"/proc is mounted with hidepid={hidepid}: this account sees only its own "
            "processes, so another account's server can be neither found nor proven")


def same_path(value: Optional[str], target, layout) -> bool:
    """Whether a path from a process's environment names the file or folder `target` (a host
    path): same device and inode, the last component not followed (a link that points there
    today may point elsewhere tomorrow). A relative path is never the installation's."""
    if not value:
        return False
    if layout.windows and os.name == "posix":  # Wine: C:\\... is a file under the prefix
        try:
            value = str(layout.host(value))
        except (ProfileError, ValueError):  # not on a drive letter
            return False
    elif not os.path.isabs(value):
        return False
    try:
        mine, theirs = os.lstat(target), os.lstat(value)
    except (OSError, ValueError):
        return False
    return (mine.st_dev, mine.st_ino) == (theirs.st_dev, theirs.st_ino)


def start_ticks(pid: int) -> Optional[int]:
    from .runrecords import linux_start

    return linux_start(pid)[0]


def start_time(pid: int, fallback: Optional[float]) -> Optional[float]:
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
        out["name"] = safe_name(proc)  # NoSuchProcess (the process ended) goes to the caller
        try:
            created = proc.create_time()
        except psutil.AccessDenied:
            created = None
        out["start_time"] = start_time(pid, created)
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
        if not env:  # nothing at all: the block was overwritten (a rewritten process title)
            out["environment"]["blank"] = True
    except (psutil.AccessDenied, psutil.ZombieProcess):
        out["environment"] = {"readable": False,
                              "reason": "not readable (another account's process: run status as "
                                        "root or as that account)"}
    return out
