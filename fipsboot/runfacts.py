"""The facts `run`'s warm path (warmrun.py) checks, written by the full path after a verdict
passed: a snapshot of everything the verdict rested on, taken before the verdict and again
after it (a change made while the verdict ran never becomes a fact), in warmrun's format."""
from __future__ import annotations

import os

from .modulemac import normalise_mac
from .warmrun import (
    FORMAT,
    Miss,
    digest,
    facts_name,
    library_candidates,
    prefixed,
    read_file,
    signature,
    state_root,
)


def _encode(records: list) -> bytes:
    out = [FORMAT]
    for tag, *fields in records:
        out += [tag.encode(), str(len(fields)).encode(), *(os.fsencode(str(f)) for f in fields)]
    for f in out:
        if b"\0" in f:
            raise ValueError("a NUL in a fact")
    return b"\0".join(out) + b"\0"


def env_paths(env) -> list:
    """Every path the launch environment names for the loader or OpenSSL (as trust.env_problems
    reads them): their identity, and their folders', is a fact like the installation's own."""
    from .trust import PATH_LIST_VARIABLES, PATH_VARIABLES

    paths = []
    for name in (*PATH_VARIABLES, *PATH_LIST_VARIABLES):
        value = env.get(name) or ""
        parts = value.replace(" ", ":").split(":") if name == "LD_PRELOAD" else (
            value.split(":") if name in PATH_LIST_VARIABLES else [value])
        paths += [p for p in parts if p.startswith("/")]
    return paths


def snapshot(profile, job: dict) -> list:
    """What a verdict rests on, as found on disk: taken before the verdict and again after it
    (`remember`), so a change made while the verdict ran never becomes a fact."""
    from pathlib import Path

    from .trust import guarded_paths

    layout, journal, env = job["layout"], job["journal"], job["env"]
    real = os.path.realpath(profile.source)
    records = [["profile", real, digest(read_file(real))], ["euid", os.geteuid()]]
    records += [["env", k, v] for k, v in prefixed(processenv_caller())]
    files = [layout.host(n) for n in (layout.module, layout.openssl, layout.openssl_cnf,
                                      layout.fipsmodule_cnf)]
    judged = [*guarded_paths(layout), *files, *(f.parent for f in files), *env_paths(env)]
    for lib_dir in layout.lib_dirs:
        host = layout.host(lib_dir)
        judged += [host, *host.glob("lib*.so*")]
        records.append(["listing", host, *sorted(os.listdir(host))])
    # The folders above each path as written and above where its links lead (trust.py judges
    # both: whoever can write there can swap what the server loads).
    judged += [a for p in list(judged) for r in (Path(p), Path(os.path.realpath(p)))
               for a in (r, *r.parents)]
    # The stale-folder rule (environ.stale_dirs) drops a caller's library folder that holds
    # another FIPS module: whether one does is a fact of the launch environment too.
    module_name = os.path.basename(str(layout.host(layout.module)))
    judged += [os.path.join(d, module_name)
               for d in processenv_caller().get("LD_LIBRARY_PATH", "").split(":") if d]
    records += [["stat", p, signature(str(p))] for p in dict.fromkeys(map(str, judged))]
    for conf in (layout.openssl_cnf, layout.fipsmodule_cnf):  # all OpenSSL reads (verify allows
        path = str(layout.host(conf))                          # no other include)
        records.append(["content", path, digest(read_file(path))])
    folder = str(journal.folder)
    records.append(["lstat", folder, signature(folder, follow=False)])
    from .statedir import installation_key
    from .statedir import state_root as journal_root

    primary = str(journal_root() / installation_key(profile.install_dir))
    if primary != folder:  # a legacy folder is used only while the primary one is absent
        records.append(["lstat", primary, signature(primary, follow=False)])
    records.append(["state", os.path.join(folder, "journal.json"),
                    digest(read_file(os.path.join(folder, "journal.json"), trusted=True))])
    caller = processenv_caller()
    records += [["set", k, v] for k, v in env.items() if caller.get(k) != v]
    records += [["unset", k] for k in caller if k not in env]
    records += [["library", p, signature(p)] for p in library_candidates(env)]
    checkpoint = last_checkpoint_of(journal)
    records.append(["run", folder, job["mode"], "-" if checkpoint is None else checkpoint])
    return records


def last_checkpoint_of(journal):
    from .runrecords import last_checkpoint

    return last_checkpoint(journal)


def _facts(profile, job: dict, checks: list, before: list) -> list:
    """The facts to write: the snapshot, if it is the same as before the verdict, with the
    verdict's own results (the module's MAC, the verdict cache it wrote)."""
    from . import fsutil

    layout, journal = job["layout"], job["journal"]
    details = {c.name: c.details for c in checks}
    read = {path for path, _ in details["openssl.cnf"]["files"]}
    allowed = {str(layout.host(layout.openssl_cnf)), str(layout.host(layout.fipsmodule_cnf))}
    if not read <= allowed:
        raise Miss("openssl.cnf reads other files")
    records = snapshot(profile, job)
    if records != before:
        raise Miss("changed while the verdict ran")
    data = fsutil.read_state_file(journal.folder / "verdict-cache.json")
    if data is None:
        raise Miss("verdict-cache.json")
    records.append(["state", os.path.join(str(journal.folder), "verdict-cache.json"),
                    digest(data)])
    records.append(["mac", str(layout.host(layout.module)), layout.profile.fips_key,
                    normalise_mac(details["module-mac"]["mac"])])
    return records


def processenv_caller() -> dict:
    from .processenv import caller

    return caller()


def snapshot_or_none(profile, job: dict):
    """The snapshot before the verdict, where a warm path can follow (else None)."""
    if os.name != "posix" or job["layout"].windows:
        return None
    try:
        return snapshot(profile, job)
    except Exception:  # noqa: BLE001 - no facts then: the next launch verifies in full
        return None


def remember(profile, job: dict, checks: list, before: list | None) -> None:
    """Write the facts of a verdict that passed, for the next launch's warm path. Best effort,
    and never in the way: an account that can't write the state folder, or any fault here,
    leaves the next launch to verify in full, as this one did."""
    if os.name != "posix" or job["layout"].windows:
        return
    from pathlib import Path

    from . import fsutil

    try:
        root = state_root()
        if not root:
            return
        if before is None:
            return
        data = _encode(_facts(profile, job, checks, before))
        fsutil.verify_dir(Path(root))  # the state folder as the journal trusts it
        fsutil.atomic_write(Path(root) / facts_name(os.path.realpath(profile.source)), data,
                            0o600)
    except Exception:  # noqa: BLE001 - a missing facts file only costs the next launch time
        pass
