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

from datetime import datetime
from typing import List, Optional, Tuple

from . import environ, procinspect
from .checks import Check, failed, passed, verdict_ok
from .errors import UsageError
from .journal import Journal
from .processevidence import inspect
from .serverprocesses import candidates, iso

CONSISTENT, INCONSISTENT, NONFIPS = 0, 1, 2


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
