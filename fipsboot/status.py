"""`fipsboot status`: is the server that is running right now in the installation's mode?

`verify` proves what a process started with the installation's environment gets; status
answers from the processes themselves. Candidates are the launches `fipsboot run` recorded
(runrecords.py; a record whose PID is gone or reused is pruned) and the processes matched by
`[server] process-names` or running an executable under install-dir. For each one the
mapped FIPS provider decides (same device and inode as this installation's module, whose MAC
matches fipsmodule.cnf), never its environment, and never what could not be read.

Exit codes follow `fips-mode-setup --is-enabled`: 0 FIPS mode and every server proven in it;
1 inconsistent (a server in the other mode, with another module or none, started before the
last mode change, unreadable, or the configuration's fast checks fail); 2 non-FIPS mode and
no server has a FIPS provider mapped. No server running: the configuration decides (0 or 2),
and `require_running` makes it 1.
"""
from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Dict, List, Optional, Tuple

import psutil

from . import environ, procinspect, runrecords
from .checks import Check, failed, passed, verdict_ok
from .errors import UsageError
from .journal import Journal
from .layout import Layout, resolve

CONSISTENT, INCONSISTENT, NONFIPS = 0, 1, 2
TOLERANCE = 0.05  # seconds: a start time read back later may differ by a clock tick or two


def iso(epoch: Optional[float]) -> Optional[str]:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds")


def last_mode_change(journal: Journal) -> Tuple[Optional[int], Optional[float], Optional[str]]:
    """(checkpoint id, time, command) of the newest checkpoint that changed the mode."""
    cps = [c for c in journal.checkpoints if c.get("status") == "done"]
    for i in range(len(cps) - 1, -1, -1):
        after = cps[i + 1]["before"].get("mode") if i + 1 < len(cps) else journal.mode
        if cps[i]["before"].get("mode") != after:
            try:
                when = datetime.strptime(cps[i]["time"], "%Y-%m-%dT%H:%M:%S%z").timestamp()
            except (KeyError, TypeError, ValueError):
                when = None
            return cps[i]["id"], when, cps[i]["command"]
    return None, None, None


def restart_fix(profile, pid: int) -> str:
    """How to restart the server: its service where the profile names one."""
    for t in profile.targets:
        if t.kind == "systemd":
            return f"restart {t.arg if '.' in t.arg else t.arg + '.service'}"
        if t.kind == "service":
            return f"restart the service {t.arg}"
    return (f"restart PID {pid} through `fipsboot run --profile {profile.source} -- SERVER ...` "
            "(or its start script with the account's environment)")


# --- which processes --------------------------------------------------------------------

def record_matches(rec: dict) -> Tuple[Optional[psutil.Process], str]:
    """The live process a record names, or None and why it is not (gone / reused)."""
    pid = rec["pid"]
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None, f"PID {pid} has exited"
        created = procinspect.start_time(pid, proc.create_time())
    except psutil.NoSuchProcess:
        return None, f"PID {pid} has exited"
    reused = (f"PID {pid} now belongs to another process (started {iso(created)}, the recorded "
              f"one {iso(rec.get('start_time'))})")
    if rec.get("start_ticks") is not None and os.path.exists("/proc/self/stat"):
        ticks = procinspect.start_ticks(pid)
        if ticks is None:
            return None, f"PID {pid} has exited"
        if ticks != rec["start_ticks"]:  # exact: the same clock ticks, or another process
            return None, reused
    elif created > rec["time"] + TOLERANCE:
        # No start recorded (Windows): a process that started after the wrapper wrote its
        # record can't be that wrapper.
        return None, reused
    return proc, ""


def candidates(layout: Layout, journal: Journal, notes: List[str]) -> Dict[int, dict]:
    """PID -> {"found_by": [...], "record": rec or None} for every server process found."""
    profile = layout.profile
    found: Dict[int, dict] = {}
    records, bad = runrecords.read_all(journal.folder)
    notes += bad
    for path, rec in records:
        proc, why = record_matches(rec)
        if proc is None:
            pruned = runrecords.prune(path)
            notes.append(f"run record {path.name}: {why}; " + ("pruned" if pruned else
                         "not trusted (this account cannot remove it)"))
            continue
        if rec["launch"] == "child":  # Windows: the wrapper waits, the server is its child
            try:
                servers = [p.pid for p in proc.children(recursive=True)]
            except psutil.NoSuchProcess:
                servers = []
            if not servers:
                notes.append(f"run record {path.name}: the wrapper PID {rec['pid']} has no "
                             "server process (starting, or the server has exited)")
        else:
            servers = [rec["pid"]]
        for pid in servers:
            entry = found.setdefault(pid, {"found_by": [], "record": rec})
            entry["found_by"].append("run-record")
    windows_host = layout.windows and os.name != "posix"
    dirs = [] if layout.windows and not windows_host else [
        (d, windows_host) for d in {profile.install_dir, os.path.realpath(profile.install_dir)}]
    for pid, why in procinspect.scan(profile.process_names, dirs, skip={os.getpid()}).items():
        found.setdefault(pid, {"found_by": [], "record": None})["found_by"] += why
    return found


# --- one process ------------------------------------------------------------------------

def inspect(pid: int, found: dict, layout: Layout, mode: str, module_ident, mac_ok: bool,
            change: Tuple[Optional[int], Optional[float], Optional[str]]) -> Optional[dict]:
    profile = layout.profile
    try:
        info = procinspect.describe(pid)
    except psutil.NoSuchProcess:
        return None  # ended while we looked
    info["started"] = iso(info["start_time"])
    info["found_by"] = found["found_by"]
    problems: List[dict] = []
    fix_restart = restart_fix(profile, pid)
    try:
        maps: Optional[List[procinspect.Mapping]] = procinspect.read_maps(pid)
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        maps = None
    env = info["environment"]
    if maps is None:
        info["fips_module"] = {"state": "unknown", "paths": [],
                               "reason": "memory maps not readable (another account's process)"}
        info["libraries"] = None
        problems.append({"reason": "could not read its memory maps (another account's process): "
                                   "no proof either way",
                         "fix": "run `fipsboot status` as root (or as the server's account)"})
    else:
        modules = [m for m in maps if procinspect._base(m.path) in procinspect.MODULE_NAMES]
        ours = [m for m in modules if procinspect.same_file(m, module_ident, None)]
        if ours and mac_ok:
            state = "installation"
        elif ours:
            state = "changed"  # this file, but its MAC no longer matches fipsmodule.cnf
        elif modules:
            state = "other"
        else:
            state = "none"
        info["fips_module"] = {"state": state, "paths": [m.path for m in modules]}
        info["libraries"] = [m.path for m in maps
                             if procinspect.is_library(procinspect._base(m.path))]
        hint = env_hint(env, layout)
        if mode == environ.FIPS:
            if state == "none":
                problems.append({"reason": "no FIPS provider mapped: it runs on the default "
                                           f"provider{hint}", "fix": fix_restart})
            elif state == "other":
                problems.append({"reason": "another FIPS provider is mapped ("
                                           f"{', '.join(m.path for m in modules)}), not this "
                                           f"installation's {layout.module}{hint}",
                                 "fix": fix_restart})
            elif state == "changed":
                problems.append({"reason": f"this installation's {layout.module} is mapped, but "
                                           "its MAC no longer matches fipsmodule.cnf",
                                 "fix": "run `fipsboot install` again, then " + fix_restart})
        elif modules:
            problems.append({"reason": "a FIPS provider is mapped ("
                                       f"{', '.join(m.path for m in modules)}) although the "
                                       "installation is in non-FIPS mode: it runs in the other "
                                       "mode", "fix": fix_restart})
    change_id, change_time, change_cmd = change
    rec = found["record"]
    stale = False
    if change_id is not None:
        # The journal's times have whole seconds (a start in the change's second counts as
        # after it); a record's checkpoint is exact.
        stale = change_time is not None and info["start_time"] < change_time
        if rec is not None:
            stale = stale or rec.get("checkpoint") is None or rec["checkpoint"] < change_id
    info["restart_needed"] = stale
    if stale:
        problems.append({"reason": f"started {info['started']}, before the last mode change "
                                   f"({change_cmd}, checkpoint {change_id}): restart needed",
                         "fix": fix_restart})
    if rec is not None:
        info["record"] = {"mode": rec["mode"], "checkpoint": rec.get("checkpoint"),
                          "module_mac": rec.get("module_mac"), "time": iso(rec["time"])}
    info["problems"] = problems
    info["ok"] = not problems
    return info


def env_hint(env: dict, layout: Layout) -> str:
    """Why the environment explains a missing or foreign provider, where it is readable."""
    if not env.get("readable"):
        return " (its environment is not readable)"
    conf, modules = env.get("OPENSSL_CONF"), env.get("OPENSSL_MODULES")
    if conf is None:
        return (": started without OPENSSL_CONF (outside fipsboot run, without the account's "
                "environment)")
    if modules != layout.module_dir:
        return f": started outside fipsboot run with OPENSSL_MODULES={modules}"
    if conf != layout.openssl_cnf:
        return f": started outside fipsboot run with OPENSSL_CONF={conf}"
    return ""


# --- the verdict ------------------------------------------------------------------------

def status_report(profile, require_running: bool = False) -> dict:
    """The status of an installation and of every server process found (JSON-able)."""
    from .verify import verify_profile

    layout = resolve(profile)
    journal = Journal.for_installation(profile.install_dir)
    if not journal.exists or journal.mode is None:
        raise UsageError(f"no fipsboot journal for {profile.install_dir}: never installed",
                         f"run `fipsboot install --profile {profile.source}` first")
    mode, config = verify_profile(profile, live=False)
    mac_ok = any(c.name == "module-mac" and c.ok for c in config)
    module_ident = procinspect.file_ident(layout.host(layout.module))
    change = last_mode_change(journal)
    notes: List[str] = []
    processes = []
    for pid, found in sorted(candidates(layout, journal, notes).items()):
        info = inspect(pid, found, layout, mode, module_ident, mac_ok, change)
        if info is not None:
            processes.append(info)

    checks: List[Check] = list(config)
    for p in processes:
        label = f"process {p['pid']}"
        if p["ok"]:
            checks.append(passed(label, f"{p['name']}: " + (
                "this installation's FIPS provider mapped" if mode == environ.FIPS
                else "no FIPS provider mapped"), pid=p["pid"]))
        else:
            checks.append(failed(label, f"{p['name']}: " + "; ".join(
                x["reason"] for x in p["problems"]), p["problems"][0]["fix"], pid=p["pid"]))
    if processes:
        checks.append(passed("running", f"{len(processes)} server process(es) found"))
    elif require_running:
        checks.append(failed("running", "no running server found",
                             "start the server through `fipsboot run`, or name it in "
                             "[server] process-names"))
    else:
        checks.append(passed("running", "no running server found"))

    consistent = verdict_ok(checks)
    if not consistent:
        code = INCONSISTENT
    else:
        code = CONSISTENT if mode == environ.FIPS else NONFIPS
    return {"exit_code": code, "summary": summary(code, mode, processes, checks),
            "mode": mode, "install_dir": profile.install_dir,
            "last_change": {"checkpoint": change[0], "time": iso(change[1]), "command": change[2]},
            "processes": processes, "checks": [c.to_json() for c in checks], "notes": notes}


def summary(code: int, mode: str, processes: List[dict], checks: List[Check]) -> str:
    n = len(processes)
    what = "no running server found" if not n else f"{n} server process(es)"
    if code == CONSISTENT:
        tail = "" if not n else ", each with this installation's FIPS provider mapped"
        return f"FIPS mode: {what}{tail}"
    if code == NONFIPS:
        tail = "" if not n else ", none with a FIPS provider mapped"
        return f"non-FIPS mode: {what}{tail}"
    bad = [c for c in checks if c.fails()]
    return f"inconsistent ({mode} mode): " + "; ".join(f"{c.name}: {c.reason}" for c in bad[:3]) + (
        f" (+{len(bad) - 3} more)" if len(bad) > 3 else "")
