"""The environment for FIPS and non-FIPS mode: pure functions, no effects.

FIPS mode (vendor guide): OPENSSL_CONF = <config-dir>/openssl.cnf, OPENSSL_MODULES = the fips
module's folder and, on Linux, LD_LIBRARY_PATH led by that folder and the lib-dirs.
Non-FIPS mode: OPENSSL_CONF and OPENSSL_MODULES undefined, LD_LIBRARY_PATH led by the Security
Pack folder instead of the fips folder, the lib-dirs kept.
"""
from __future__ import annotations

import os
from typing import Dict, Iterable, List, Mapping, Optional

from .layout import Layout
from .vocabulary import FIPS, MODES, NONFIPS, VARIABLES, Values  # noqa: F401 - environ.FIPS...


def lead_dirs(layout: Layout, mode: str) -> List[str]:
    first = layout.module_dir if mode == FIPS else layout.security_pack_dir
    return [d for d in (first, *layout.lib_dirs) if d]


def stale_dirs(layout: Layout, mode: str, previously_written: Iterable[str] = (),
               search_path: Optional[str] = None) -> set:
    """The one rule for folders to drop from a target's or a caller's LD_LIBRARY_PATH: the
    other mode's leader, any folder an earlier install put there, and any folder on it that
    holds a FIPS module that is not this installation's (the fips folder of an earlier install
    dir, whose journal is keyed by that other folder)."""
    other = layout.security_pack_dir if mode == FIPS else layout.module_dir
    stale = {d for d in (other, *previously_written,
                         *foreign_fips_dirs(layout, search_path)) if d}
    return stale - set(lead_dirs(layout, mode))


def foreign_fips_dirs(layout: Layout, search_path: Optional[str]) -> List[str]:
    """Folders on a search path that hold a FIPS module that is not this installation's."""
    name = layout.profile.pure_path(layout.module).name
    return [d for d in (search_path or "").split(":")
            if d and d != layout.module_dir and os.path.isfile(os.path.join(d, name))]


def merge_search_path(lead: List[str], existing: Optional[str], stale: set) -> str:
    rest = [e for e in (existing or "").split(":") if e and e not in lead and e not in stale]
    out: List[str] = []
    for entry in [*lead, *rest]:
        if entry not in out:
            out.append(entry)
    return ":".join(out)


def values(layout: Layout, mode: str, existing: Mapping[str, Optional[str]] = {},
           previously_written: Iterable[str] = ()) -> Values:
    """The variables a target (or a launch) must hold in `mode`, given what it holds now:
    the one function plan, verify, run and status ask (through the session)."""
    if mode not in MODES:
        raise ValueError(mode)
    out: Values = {
        "OPENSSL_CONF": layout.openssl_cnf if mode == FIPS else None,
        "OPENSSL_MODULES": layout.module_dir if mode == FIPS else None,
    }
    if not layout.windows:  # Windows finds DLLs beside the program: no LD_LIBRARY_PATH there
        out["LD_LIBRARY_PATH"] = merge_search_path(
            lead_dirs(layout, mode), existing.get("LD_LIBRARY_PATH"),
            stale_dirs(layout, mode, previously_written, existing.get("LD_LIBRARY_PATH")))
    return out


def with_values(base: Mapping[str, str], changes: Mapping[str, Optional[str]]) -> Dict[str, str]:
    """`base` with `changes` applied: a value sets its variable, None removes it."""
    env = dict(base)
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def launch_env(base: Mapping[str, str], layout: Layout, mode: str,
               previously_written: Iterable[str] = ()) -> Dict[str, str]:
    """The caller's environment with exactly the mode's variables set or removed (on
    Windows, where names ignore case, every spelling of them: an inherited `Openssl_Conf`
    would otherwise reach the server). An inherited OPENSSL_CONF_INCLUDE goes too: it
    redirects relative includes, and fipsboot's config has none (verify refuses them), while
    in non-FIPS mode it could pull a config in."""
    changes = values(layout, mode, base, previously_written)
    if layout.windows:
        base = without_any_spelling(base, [*changes, "OPENSSL_CONF_INCLUDE"])
    env = with_values(base, changes)
    env.pop("OPENSSL_CONF_INCLUDE", None)
    return env


def without_any_spelling(base: Mapping[str, str], names: Iterable[str]) -> Dict[str, str]:
    """`base` without any spelling of `names` (Windows environment names ignore case)."""
    folded = {n.casefold() for n in names}
    return {k: v for k, v in base.items() if k.casefold() not in folded}
