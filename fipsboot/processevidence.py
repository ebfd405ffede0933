"""The evidence of one server process, for `fipsboot status`: the FIPS provider it has mapped
(this installation's by device and inode, whose MAC matches fipsmodule.cnf; a copy; another;
none), its libcrypto/libssl, its environment (never proof when unreadable), and whether it
was started before the last mode change."""
from __future__ import annotations

from typing import List, Optional, Tuple

import psutil

from . import environ, procinspect
from .layout import Layout
from .serverprocesses import iso


def restart_fix(profile, pid: int) -> str:
    """How to restart the server: its service where the profile names one."""
    for t in profile.targets:
        if t.kind == "systemd":
            return f"restart {t.arg if '.' in t.arg else t.arg + '.service'}"
        if t.kind == "service":
            return f"restart the service {t.arg}"
    return (f"restart PID {pid} through `fipsboot run --profile {profile.source} -- SERVER ...` "
            "(or its start script with the account's environment)")


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
