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
from .layout import Layout

CONSISTENT, INCONSISTENT, NONFIPS = 0, 1, 2
TOLERANCE = 0.05  # seconds: a start time read back later may differ by a clock tick or two
MAX_LAUNCH_DEPTH = 4  # launchers in a row (wine -> sh -> server); deeper is not a launch


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


# --- one process ------------------------------------------------------------------------

def inspect(pid: int, found: dict, layout: Layout, mode: str, module_ident, mac_ok: bool,
            change: Tuple[Optional[int], Optional[float], Optional[str]]) -> Optional[dict]:
    profile = layout.profile
    try:
        info = procinspect.describe(pid)
    except psutil.NoSuchProcess:  # ZombieProcess included
        return None  # ended while we looked
    info["started"] = iso(info["start_time"])
    info["found_by"] = found["found_by"]
    if found.get("launcher"):
        info["launcher"] = found["launcher"]
    info["warnings"] = []
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
            if state == "none" and not info["libraries"]:
                problems.append({"reason": "no FIPS provider mapped, and no libcrypto/libssl "
                                           f"either: PID {pid} ({info['name']}) is a start "
                                           "script or launcher, not the server (its server has "
                                           "exited or runs elsewhere), or a program with its "
                                           "own crypto",
                                 "fix": "launch the server itself through `fipsboot run` (`exec` "
                                        "it from the start script), or name it in [server] "
                                        "process-names"})
            elif state == "none":
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
            elif state == "installation":
                launched = found["record"] if not found.get("launcher") else None
                problems += environment_problems(env, launched, layout, fix_restart, info)
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
        # A start time this account can't read can't rule a restart out.
        stale = change_time is not None and (info["start_time"] is None
                                             or info["start_time"] < change_time)
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


def environment_problems(env: dict, record: Optional[dict], layout: Layout, fix_restart: str,
                         info: dict) -> List[dict]:
    """In FIPS mode, with this installation's provider mapped: a mapped provider alone doesn't
    prove it is active or enforced (another config can load it beside an active default
    provider, or fail to activate it). The process's own OPENSSL_CONF must be the
    installation's openssl.cnf (same device and inode) and its OPENSSL_MODULES the module's
    folder; an environment this account can't read proves nothing.

    A blank environment block (Redis overwrites it for its process title) holds no evidence
    either way: the run record's launch environment stands in for a process `fipsboot run`
    started itself; otherwise the mapped provider is all there is, and a warning says so."""
    if not env.get("readable"):
        return [{"reason": "its environment is not readable, and a mapped FIPS provider alone "
                           "doesn't prove it is active: no proof either way",
                 "fix": "run `fipsboot status` as root (or as the server's account)"}]
    values = {k: env.get(k) for k in ("OPENSSL_CONF", "OPENSSL_MODULES")}
    if env.get("blank"):
        if record is None or record.get("environment") is None:
            info["warnings"].append(
                "its environment block is blank (the process overwrote it, as Redis does for "
                "its process title): OPENSSL_CONF and OPENSSL_MODULES can't be checked; the "
                "mapped provider is the only evidence")
            return []
        values = {k: record["environment"].get(k) for k in values}
        env["from_record"] = dict(values)
    wrong = []
    conf, modules = values["OPENSSL_CONF"], values["OPENSSL_MODULES"]
    if not procinspect.same_path(conf, layout.host(layout.openssl_cnf), layout):
        wrong.append(f"OPENSSL_CONF={conf}" if conf is not None else "no OPENSSL_CONF")
    if not procinspect.same_path(modules, layout.host(layout.module_dir), layout):
        wrong.append(f"OPENSSL_MODULES={modules}" if modules is not None else "no OPENSSL_MODULES")
    if not wrong:
        return []
    return [{"reason": f"this installation's FIPS provider is mapped, but it was started with "
                       f"{' and '.join(wrong)}, not the installation's ({layout.openssl_cnf}, "
                       f"{layout.module_dir}): another configuration may leave the default "
                       "provider active beside it or never activate it; not proof of FIPS mode",
             "fix": fix_restart + " with the installation's environment"}]


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
    from .session import Session
    from .verify import verify

    session = Session(profile)
    layout, journal = session.layout, session.journal
    if not journal.exists or journal.mode is None:
        raise UsageError(f"no fipsboot journal for {profile.install_dir}: never installed",
                         f"run `fipsboot install --profile {profile.source}` first")
    mode, config = session.mode, verify(session, live=False)
    mac_ok = any(c.name == "module-mac" and c.ok for c in config)
    module_ident = procinspect.file_ident(layout.host(layout.module))
    change = last_mode_change(journal)
    notes: List[str] = []
    unseen: List[Check] = []
    processes = []
    for pid, found in sorted(candidates(layout, journal, notes, unseen).items()):
        info = inspect(pid, found, layout, mode, module_ident, mac_ok, change)
        if info is not None:
            processes.append(info)

    checks: List[Check] = list(config)
    hidden = procinspect.proc_hidden()
    if hidden:
        checks.append(failed("proc-visibility", hidden,
                             "run `fipsboot status` as root (or as a member of the group "
                             "/proc's gid= option names)"))
    checks += unseen
    for p in processes:
        label = f"process {p['pid']}"
        who = f"{p['name']} (user {p['user'] or 'not readable'})"
        if p["ok"]:
            checks.append(passed(label, f"{who}: " + (
                "this installation's FIPS provider mapped" if mode == environ.FIPS
                else "no FIPS provider mapped"), pid=p["pid"]))
        else:
            checks.append(failed(label, f"{who}: " + "; ".join(
                x["reason"] for x in p["problems"]), p["problems"][0]["fix"], pid=p["pid"]))
        # Not a check (nothing failed): a note, in text as in JSON.
        notes += [f"PID {p['pid']} ({p['name']}): {w}" for w in p["warnings"]]
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
