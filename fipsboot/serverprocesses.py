"""Which processes are this installation's servers, for `fipsboot status`: the launches `fipsboot
run` recorded (a record whose PID is gone or reused is pruned; a launcher is judged by its
server child) and the processes `[server] process-names` names or that run an executable under
install-dir."""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

import psutil

from . import procinspect, runrecords
from .checks import Check, failed
from .journal import Journal
from .layout import Layout

TOLERANCE = 0.05  # seconds: a start time read back later may differ by a clock tick or two
MAX_LAUNCH_DEPTH = 4  # launchers in a row (wine -> sh -> server); deeper is not a launch


def iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def record_matches(rec: dict) -> Tuple[Optional[psutil.Process], str, bool]:
    """The live process a record names, or None and why it is not (gone / reused), and
    whether its PID is alive but hidden from this account (hidepid, another account's
    process unreadable): then nothing about it can be known, and it is not pruned."""
    pid = rec["pid"]
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, f"PID {pid} has exited", False
        created = procinspect.start_time(pid, proc.create_time())
    except psutil.AccessDenied:
        return None, hidden_reason(pid), True
    except psutil.NoSuchProcess:  # ZombieProcess included
        if procinspect.pid_exists_hidden(pid):
            return None, hidden_reason(pid), True
        return None, f"PID {pid} has exited", False
    reused = (f"PID {pid} now belongs to another process (started {iso(created)}, the recorded "
              f"one {iso(rec.get('start_time'))})")
    if rec.get("start_ticks") is not None and os.path.exists("/proc/self/stat"):
        ticks = procinspect.start_ticks(pid)
        if ticks is None:
            if procinspect.pid_exists_hidden(pid):
                return None, hidden_reason(pid), True
            return None, f"PID {pid} has exited", False
        if ticks != rec["start_ticks"]:  # exact: the same clock ticks, or another process
            return None, reused, False
    elif created > rec["time"] + TOLERANCE:
        # No start recorded (Windows): a process that started after the wrapper wrote its
        # record can't be that wrapper.
        return None, reused, False
    return proc, "", False


def hidden_reason(pid: int) -> str:
    return (f"PID {pid} is running but this account cannot see it (/proc mounted with hidepid, "
            "or another account's process): no proof either way")


def server_processes(proc: psutil.Process, wrapper: bool, notes: List[str],
                     name: str) -> List[Tuple[int, Optional[dict]]]:
    """The OpenSSL servers a recorded process stands for: (PID, launcher or None).

    A process that maps libcrypto/libssl (or a FIPS provider), or whose maps can't be read,
    is judged itself. One that maps neither is a launcher (a start script, `wine`, the
    Windows wrapper): its child processes are looked at instead, down to the first that map
    OpenSSL; children that map no OpenSSL and start nothing (a console host, a `sleep` in the
    script) are not servers. A recorded process with no OpenSSL server below it is judged
    itself, which says it is a start script. Windows' wrapper (`wrapper`) is never a server."""
    found: List[Tuple[int, Optional[dict]]] = []

    def walk(p: psutil.Process, depth: int) -> None:
        try:
            kids, launcher = p.children(), {"pid": p.pid, "name": procinspect.safe_name(p)}
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return
        for kid in kids:
            kind = procinspect.openssl_kind(kid.pid)
            if kind == "gone":
                continue
            if kind in ("openssl", "unreadable"):
                found.append((kid.pid, launcher))
            elif depth < MAX_LAUNCH_DEPTH:
                walk(kid, depth + 1)

    if not wrapper:
        kind = procinspect.openssl_kind(proc.pid)
        if kind == "gone":
            return []
        if kind != "none":
            return [(proc.pid, None)]
    walk(proc, 1)
    if found:
        return found
    if wrapper:
        notes.append(f"run record {name}: the wrapper PID {proc.pid} has no server process "
                     "(starting, or the server has exited)")
        return []
    return [(proc.pid, None)]


def candidates(layout: Layout, journal: Journal, notes: List[str],
               unseen: List[Check]) -> Dict[int, dict]:
    """PID -> {"found_by": [...], "record": rec or None, "launcher": {...} or None} for every
    server process found. `unseen` gets a failing check per recorded server this account
    cannot see."""
    profile = layout.profile
    found: Dict[int, dict] = {}
    records, bad = runrecords.read_all(journal.folder)
    notes += bad
    for path, rec in records:
        proc, why, hidden = record_matches(rec)
        if hidden:
            unseen.append(failed(f"run record {rec['pid']}", f"{path.name}: {why}",
                                 "run `fipsboot status` as root", pid=rec["pid"]))
            continue
        if proc is None:
            pruned = runrecords.prune(path)
            notes.append(f"run record {path.name}: {why}; " + ("pruned" if pruned else
                         "not trusted (this account cannot remove it)"))
            continue
        # Windows: the wrapper waits, the server is its child (never its grandchildren).
        for pid, launcher in server_processes(proc, rec["launch"] == "child", notes, path.name):
            entry = found.setdefault(pid, {"found_by": [], "record": rec, "launcher": launcher})
            entry["found_by"].append("run-record")
    windows_host = layout.windows and os.name != "posix"
    dirs = [] if layout.windows and not windows_host else [
        (d, windows_host) for d in {profile.install_dir, os.path.realpath(profile.install_dir)}]
    tools = [] if layout.windows and not windows_host else [
        str(layout.host(layout.openssl)), os.path.realpath(layout.host(layout.openssl))]
    scanned = procinspect.scan(profile.process_names, dirs, skip={os.getpid()},
                               tools=tools, users=profile.process_users,
                               ignore_case=layout.windows)
    for pid, why in scanned.items():
        found.setdefault(pid, {"found_by": [], "record": None, "launcher": None})["found_by"] += why
    return found
