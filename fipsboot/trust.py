"""Who may change what root runs and the server loads.

The installation's openssl (run by root's install and verify), the fips module, the lib-dirs
with their libcrypto/libssl, and the config folder must belong to root or to the account
running fipsboot, and must not be writable by group or others; every folder on their path must
not be writable by others either (a sticky folder such as /tmp is fine: nobody can replace
what another account put there). Otherwise whoever can write there chooses the code root
executes and the configuration the server loads.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import List

from . import fsutil
from .layout import Layout


def _owner(uid: int) -> str:
    import pwd  # POSIX only, like every check here

    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def guarded_paths(layout: Layout) -> List[Path]:
    module, openssl = layout.host(layout.module), layout.host(layout.openssl)
    paths = [module, module.parent, openssl, openssl.parent, layout.host(layout.config_dir)]
    for lib_dir in layout.lib_dirs:
        host = layout.host(lib_dir)
        paths += [host, *sorted(host.glob("lib*.so*"))]
    return list(dict.fromkeys(paths))


def trust_problems(layout: Layout) -> List[str]:
    """Why someone other than root or this account could change what root runs, or []."""
    if os.name != "posix":
        return []
    problems: List[str] = []
    ancestors: List[Path] = []
    for path in guarded_paths(layout):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            continue
        if st.st_uid not in fsutil.trusted_owners():
            problems.append(f"{path} belongs to {_owner(st.st_uid)}, not to root or this account")
        why = fsutil.loose_permissions(path)
        if why:
            problems.append(why)
        ancestors += [p for p in path.parents if p not in ancestors]
    for folder in dict.fromkeys(ancestors):
        st = os.stat(folder)
        if st.st_mode & 0o002 and not st.st_mode & stat.S_ISVTX:
            problems.append(f"{folder} (a folder on the way) is writable by others "
                            f"(mode {stat.S_IMODE(st.st_mode):04o})")
    return list(dict.fromkeys(problems))
