"""The verdict: every check with a name, a result and a reason a person can act on.

The checks themselves live in configchecks.py (no process) and livechecks.py (the
installation's openssl); here are the checks of the account's targets and of non-FIPS mode,
and the verdict that puts them together for the mode the journal records.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, List, Mapping, Optional

from . import environ
from .checks import Check, failed, passed

# The checks a verdict is made of, asked for as verify.X by install, run, report and the tests.
from .configchecks import (  # noqa: F401
    REINSTALL,
    check_files,
    check_fipsmodule_cnf,
    check_module_mac,
    check_openssl_cnf,
    check_permissions,
    fast_checks,
    read_fipsmodule,
    read_openssl_cnf,
)
from .layout import Layout
from .livechecks import check_nonfips_providers, live_checks, negative_probe_check, providers_check  # noqa: F401

if TYPE_CHECKING:
    from .session import Session


def check_targets(layout: Layout, targets: Iterable, mode: str, managed: Mapping[str, str],
                  previously_written: Iterable[str] = ()) -> Check:
    drift: List[str] = []
    for target in targets:
        # What the service or shell really ends up with: every drop-in, every line.
        current = target.effective()
        drift += target.effective_problems()
        want = environ.values(layout, mode, current, previously_written)
        for key, value in want.items():
            if current.get(key) != value:
                drift.append(f"{target.spec}: {key} is {current.get(key)!r}, expected {value!r}")
        if not drift and target.change(want).edited_by_hand(managed):
            drift.append(f"{target.spec}: fipsboot's part was edited by hand since it was written")
    if drift:
        return failed("targets", "; ".join(drift), REINSTALL.replace("install", "install --force")
                      + " to rewrite the targets (the edited copies are kept in the journal)")
    return passed("targets", "every target holds the values fipsboot wrote")


def check_nonfips_environment(layout: Layout, targets: Iterable, env: Mapping[str, str]) -> Check:
    problems = []
    ld = (env.get("LD_LIBRARY_PATH") or "").split(":")
    if not layout.windows:
        if layout.security_pack_dir and layout.security_pack_dir not in ld:
            problems.append(f"LD_LIBRARY_PATH lacks the Security Pack folder {layout.security_pack_dir}")
        if layout.module_dir in ld:
            problems.append(f"LD_LIBRARY_PATH still names the fips folder {layout.module_dir}")
    for target in targets:
        current = target.read()
        for key in ("OPENSSL_CONF", "OPENSSL_MODULES"):
            if current.get(key) is not None:
                problems.append(f"{target.spec} defines {key}")
        tld = (current.get("LD_LIBRARY_PATH") or "").split(":")
        if not layout.windows and layout.module_dir in tld:
            problems.append(f"{target.spec}: LD_LIBRARY_PATH names the fips folder")
    if problems:
        return failed("environment", "; ".join(problems), "fipsboot reset --profile PROFILE")
    return passed("environment", "no OPENSSL_CONF/OPENSSL_MODULES; Security Pack on the library path")


# --- the verdict ------------------------------------------------------------------------

# A failure of one of these means root would run code (or load a configuration) someone else
# chose: the live checks are then not run at all.
GATING = ("files", "permissions", "openssl.cnf")


def not_run(why: str, label: str = "") -> List[Check]:
    where = f" (environment of {label})" if label else ""
    return [failed(name, f"not run{where}: {why}", REINSTALL)
            for name in ("providers", "negative-probe")]


def target_problems(target, values: Mapping[str, Optional[str]]) -> List[str]:
    """Why the values a target holds must not be handed to a process root starts: the file
    they come from, or a path they name, is one another account can change."""
    from .trust import env_problems, path_problems

    problems = []
    path = getattr(target, "path", None)  # registry targets (Windows) have none
    if path is None:
        problems.append("its values can't be traced to a file only root can change")
    else:
        problems += path_problems([path])
    problems += env_problems({k: v for k, v in values.items() if v is not None})
    return problems


def verify(session: Session, live: bool = True) -> List[Check]:
    """Every check of the installation in the mode its journal records."""
    from .openssl import OpenSSL

    layout, mode = session.layout, session.mode
    targets = session.targets()
    env = session.launch_environment(mode)
    openssl = OpenSSL(layout, env)
    if mode == environ.NONFIPS:
        checks = [check_nonfips_environment(layout, targets, env)]
        if live:
            why = openssl.refusal(env)
            checks.append(failed("providers", f"not run: root runs no openssl while {why}",
                                 "chown root and chmod go-w each path named")
                          if why else check_nonfips_providers(openssl, env))
        return checks
    checks = fast_checks(layout)
    checks.append(check_targets(layout, targets, mode, session.journal.managed,
                                session.previously_written))
    if not live:
        return checks
    gate = [c for c in checks if c.name in GATING and c.fails()]
    if gate:
        return checks + not_run("root starts no openssl while "
                                + " and ".join(f"'{c.name}'" for c in gate) + " fails")
    checks += live_checks(openssl, env)
    from .cmvp import check_from  # only here: `run`'s start-up never asks about certificates

    checks += [c for c in [check_from(checks, layout.profile)] if c]
    # A target that drifted hands the server another environment: prove what it gives, but
    # only when nobody but root could have chosen those values (a target another account can
    # write is judged statically by `targets`: its values never reach a process root starts).
    for target in targets:
        current = target.effective()
        want = session.values(mode, current)
        if any(current.get(k) != v for k, v in want.items()):
            values = {key: current.get(key) for key in want}
            untrusted = target_problems(target, values)
            if untrusted:
                checks.append(not_run("; ".join(untrusted) + " (the targets check judges "
                                      "its values)", target.spec)[0])
                continue
            target_env = environ.with_values(env, values)
            checks.append(live_checks(openssl, target_env, target.spec)[0])
    return checks


def verify_profile(profile, live: bool = True):
    """Verify an installation in the mode its journal records (FIPS when there is none)."""
    from .session import Session

    session = Session(profile)
    return session.mode, verify(session, live=live)
