"""Who may change what root runs and the server loads.

The installation's openssl (run by root's install and verify), the fips module, the lib-dirs
with their libcrypto/libssl, the config folder, openssl.cnf and fipsmodule.cnf must belong to
root or to the account running fipsboot, and must not be writable by group or others. Every
folder above them must belong to root or this account too, and must not be writable by group
or others unless it is sticky (as /tmp: nobody can replace what another account put there).
Otherwise whoever can write there chooses the code root executes and the configuration the
server loads. The same rule judges every path in an environment root hands to openssl
(`env_problems`): a value pointing at another account's file is that account's code.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterable, List, Mapping

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
    paths = [module, module.parent, openssl, openssl.parent, layout.host(layout.config_dir),
             layout.host(layout.openssl_cnf), layout.host(layout.fipsmodule_cnf)]
    for lib_dir in layout.lib_dirs:
        host = layout.host(lib_dir)
        paths += [host, *sorted(host.glob("lib*.so*"))]
    return list(dict.fromkeys(paths))


def trust_problems(layout: Layout) -> List[str]:
    """Why someone other than root or this account could change what root runs, or []."""
    if os.name != "posix":
        return []
    return path_problems(guarded_paths(layout))


def path_problems(paths: Iterable[Path]) -> List[str]:
    """Why another account could change any of `paths` (those that exist) or a folder above
    them, or []."""
    problems: List[str] = []
    ancestors: List[Path] = []
    for path in paths:
        # the folders above the path as written and above where its links lead
        for spelled in dict.fromkeys([Path(path), Path(os.path.realpath(path))]):
            ancestors += [p for p in spelled.parents if p not in ancestors]
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if st.st_uid not in fsutil.trusted_owners():
            problems.append(f"{path} belongs to {_owner(st.st_uid)}, not to root or this account")
        why = fsutil.loose_permissions(Path(path))
        if why:
            problems.append(why)
    for folder in dict.fromkeys(ancestors):
        try:
            st = os.stat(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if st.st_uid not in fsutil.trusted_owners():
            problems.append(f"{folder} (a folder on the way) belongs to {_owner(st.st_uid)}, "
                            "not to root or this account")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            who = "others" if st.st_mode & 0o002 else "group"
            problems.append(f"{folder} (a folder on the way) is writable by {who} "
                            f"(mode {stat.S_IMODE(st.st_mode):04o})")
    return list(dict.fromkeys(problems))


# Environment variables whose value is a path (or a list of them) openssl reads code or
# configuration from.
PATH_VARIABLES = ("OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_ENGINES", "OPENSSL_CONF_INCLUDE")
PATH_LIST_VARIABLES = ("LD_LIBRARY_PATH", "LD_PRELOAD")


def env_problems(env: Mapping[str, str]) -> List[str]:
    """Why a process started with `env` (POSIX) would read code or configuration another
    account controls: each path value must pass `path_problems`, and be absolute."""
    if os.name != "posix":
        return []
    paths: List[Path] = []
    problems: List[str] = []
    for name in (*PATH_VARIABLES, *PATH_LIST_VARIABLES):
        value = env.get(name)
        if not value:
            continue
        parts = value.split(":") if name in PATH_LIST_VARIABLES else [value]
        if name == "LD_PRELOAD":
            parts = value.replace(" ", ":").split(":")
        for part in filter(None, parts):
            if not part.startswith("/"):
                problems.append(f"{name}={value}: {part} is not an absolute path")
            else:
                paths.append(Path(part))
    return problems + path_problems(paths)
