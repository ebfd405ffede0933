"""`fipsboot run -- SERVER [ARGS...]`: verify, then replace this process with the server.

This module sits in the server's start-up path: it imports little, and a verdict is cached,
keyed on everything that decides it. A cache hit still recomputes the module MAC in-process
(a module swapped in place never passes) and re-reads both configs, but starts no openssl.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import Dict, List, Mapping, Optional

from . import environ, fsutil, verify
from .checks import verdict_ok
from .errors import EXIT_REFUSED, FipsbootError, UsageError
from .journal import Journal
from .layout import Layout
from .output import log_refusal  # a refusal: stderr, the system log, JSON under --json
from .warmrun import ENV_PREFIXES  # what in the environment keys the verdict

CACHE_NAME = "verdict-cache.json"


def identity(path) -> List[int]:
    st = os.stat(path)
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def libcrypto_identity(layout: Layout, env: Mapping[str, str]) -> List:
    """The OpenSSL libraries the launch environment points at (the server links both)."""
    names = (("libcrypto-3-x64.dll", "libssl-3-x64.dll") if layout.windows
             else ("libcrypto.so.3", "libssl.so.3"))
    found = []
    dirs = env.get("LD_LIBRARY_PATH", "").split(":") if not layout.windows else [
        str(layout.host(layout.openssl).parent)]
    for d in dirs:
        for name in names:
            p = os.path.join(d, name) if d else None
            if p and os.path.exists(p):
                found.append([p, *identity(p)])
    return found


def cache_key(layout: Layout, env: Mapping[str, str], module_mac: str,
              config_files: Optional[List] = None) -> str:
    h = hashlib.sha256()
    parts = {
        "module_mac": module_mac,
        # every file OpenSSL reads for openssl.cnf (includes followed; a missing one as None)
        "config_files": config_files,
        "openssl.cnf": fsutil.digest(fsutil.read(layout.host(layout.openssl_cnf))),
        "fipsmodule.cnf": fsutil.digest(fsutil.read(layout.host(layout.fipsmodule_cnf))),
        "openssl": identity(layout.host(layout.openssl)),
        "libcrypto": libcrypto_identity(layout, env),
        "env": sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIXES)),
        "launcher": list(layout.profile.launcher),
    }
    if layout.windows and layout.profile.launcher:  # Wine's registry wins over `env`
        from .platforms import wineenv

        parts["wine-registry"] = wineenv.overrides(layout)
    h.update(json.dumps(parts, sort_keys=True).encode())
    return h.hexdigest()


def verdict(layout: Layout, env: Dict[str, str], journal: Journal) -> List[verify.Check]:
    """The checks that bear on this launch: fast ones always, live ones unless cached."""
    checks = verify.fast_checks(layout)
    if not verdict_ok(checks):
        return checks
    from .trust import env_problems

    # What the launch environment names (LD_PRELOAD, a caller's LD_LIBRARY_PATH folder...) is
    # judged on every launch, cached verdict or not: the cache key holds only the names.
    problems = [] if layout.windows else env_problems(env)
    if problems:
        return checks + [verify.failed("environment", "; ".join(dict.fromkeys(problems)),
                                       "point the variable at files and folders that only root "
                                       "(or this account) can change")]
    mac = next(c for c in checks if c.name == "module-mac").details["mac"]
    files = next(c for c in checks if c.name == "openssl.cnf").details["files"]
    key = cache_key(layout, env, mac, files)
    cache = journal.folder / CACHE_NAME
    try:
        cached = fsutil.read_state_file(cache)  # no link followed; root's or this account's
    except (OSError, FipsbootError):  # unreadable, or not to be trusted: a miss
        cached = None
    if cached is not None:
        try:
            hit = json.loads(cached).get("key") == key
        except (ValueError, AttributeError):
            hit = False  # a damaged cache is a miss
        if hit:
            return checks + [verify.passed("live", "cached verdict: fips active, MD5 refused")]
    from .openssl import OpenSSL

    live = verify.live_checks(OpenSSL(layout, env), env, sha256=False)
    try:
        if verdict_ok(live):
            fsutil.atomic_write(cache, json.dumps({"key": key}).encode(), 0o600)
        else:
            fsutil.remove(cache)
    except OSError:
        pass  # an account that can't write the state folder verifies on every launch
    return checks + live


def prepare(profile, argv: List[str], base: Optional[Mapping[str, str]] = None) -> dict:
    if not argv or not argv[0]:
        raise UsageError("no server command given: fipsboot run --profile P -- SERVER [ARGS...]",
                         "name the server's command after --: fipsboot run --profile PROFILE "
                         "[--dry-run] [--json] -- SERVER [ARGS...]")
    from .session import Session

    session = Session(profile)
    mode = session.require_journal()
    return {"session": session, "layout": session.layout, "journal": session.journal,
            "mode": mode, "env": session.launch_environment(mode, base), "argv": argv}


def run(profile, argv: List[str], dry_run: bool = False, as_json: bool = False) -> int:
    try:
        job = prepare(profile, argv)
    except UsageError:
        raise  # no journal, no server command: exit 2, as documented
    except Exception as e:  # a damaged journal and the like: fail closed, and say so
        log_refusal(f"fipsboot: not starting {argv[0] if argv else 'the server'}: {e}", as_json,
                    fix=getattr(e, "fix", None) or "run `fipsboot verify --profile PROFILE` "
                    "for every check and its reason")
        return EXIT_REFUSED
    layout, env, mode = job["layout"], job["env"], job["mode"]
    if dry_run:
        from . import output, textviews

        changed = {k: env.get(k) for k in environ.VARIABLES}
        output.result({"mode": mode, "argv": argv, "environment": changed}, as_json,
                      textviews.run_dry_run)
        return 0
    before = None
    if mode == environ.FIPS:
        from .runfacts import snapshot_or_none

        before = snapshot_or_none(profile, job)  # what the verdict rests on, taken before it
        try:
            checks = verdict(layout, env, job["journal"])
        except Exception as e:  # fail closed: whatever went wrong, the server does not start
            log_refusal(f"fipsboot: not starting {argv[0]}: verification could not complete: "
                        f"{type(e).__name__}: {e}", as_json,
                        fix=getattr(e, "fix", None) or "run `fipsboot verify --profile PROFILE` "
                        "for every check and its reason")
            return EXIT_REFUSED
        bad = [c for c in checks if c.fails()]
        if bad:
            first = bad[0]
            log_refusal(f"fipsboot: not starting {argv[0]}: FIPS check '{first.name}' failed: "
                        f"{first.reason}" + (f"\nfix: {first.fix}" if first.fix else ""),
                        as_json, fix=first.fix)
            return EXIT_REFUSED
    from .runrecords import record_launch

    if mode == environ.FIPS:  # what this verdict rested on, for the next launch's warm path
        from .runfacts import remember

        remember(profile, job, checks, before)
    record_launch(job, checks if mode == environ.FIPS else None)  # for `fipsboot status`
    try:
        return job["session"].backend.launch(argv, env)
    except FipsbootError as e:
        log_refusal(f"fipsboot: {e}", as_json, 127, e.fix)
        return 127


def run_command(profile_path: str, argv: List[str], dry_run: bool, as_json: bool) -> int:
    """`fipsboot run` from its parsed options, for entry.py's lean path and cli.py's command."""
    from .profile import load

    return run(load(profile_path), argv, dry_run=dry_run, as_json=as_json)
