"""`fipsboot run`'s warm path: launch again what was verified before, when nothing that verdict
rested on has changed, importing only os, stat and OpenSSL's hashing (no click, dataclasses,
pathlib, typing, re, json or tomllib: each would be paid on every start of the server).

After a full verification passes (runner), `runfacts.remember` writes the *facts* that verdict rested
on into the verified state folder: the profile's and journal's bytes, every file and folder the
fast checks read or judged (stat: owner, mode, identity; a config's bytes; a folder's names),
the verdict cache's bytes, the library candidates in LD_LIBRARY_PATH, the caller's OpenSSL,
LD_, SSL_ and WINE variables and the launch environment made from them. `launch` checks each
fact against the file system again; any difference or doubt is a miss, and the full path runs
(and writes new facts). Never taken from the facts: the module's MAC, recomputed in-process on
every launch. Linux only (a Windows or Wine launch always takes the full path).

    <state>/run-facts-<sha256 of the profile's real path>     (0600, no link followed)

The format is NUL-separated fields (paths and environment values can't hold a NUL), so
reading it needs no parser: FORMAT, then records `tag, n, field1..fieldn`.
"""
from __future__ import annotations

import os
import stat
import sys

from .modulemac import module_mac, normalise_mac, sha256_hex

FORMAT = b"fipsboot-run-facts-1"
SYSTEM_STATE_DIR = "/var/lib/fipsboot"  # journal.SYSTEM_STATE_DIR (a test pins them equal)
# What in the environment can change which libcrypto, config or providers a process loads.
ENV_PREFIXES = ("OPENSSL", "LD_", "SSL_", "WINE")
LIBRARIES = ("libcrypto.so.3", "libssl.so.3")  # the launch environment's OpenSSL (server links both)
OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
              | getattr(os, "O_CLOEXEC", 0))
MAX_BYTES = 1 << 20


class Miss(Exception):
    """A fact no longer holds (or can't be checked): take the full path."""


# --- what both sides compute the same way ----------------------------------------------

def state_root():
    """journal.state_root() where it needs no platformdirs; None elsewhere (a miss)."""
    if os.environ.get("FIPSBOOT_STATE_DIR"):
        return os.environ["FIPSBOOT_STATE_DIR"]
    if os.name == "posix" and (os.geteuid() == 0 or os.path.isdir(SYSTEM_STATE_DIR)):
        return SYSTEM_STATE_DIR
    return None


def facts_name(profile_real: str) -> str:
    return "run-facts-" + sha256_hex(os.fsencode(profile_real))[:32]


def signature(path: str, follow: bool = True) -> str:
    """What a check judged about `path`: type, mode, owner, identity; for a file also size
    and times (any write changes them), for a folder not (its names are a fact of their own
    where they matter). '-' when there is nothing there."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except FileNotFoundError:
        return "-"
    head = f"{st.st_mode},{st.st_uid},{st.st_gid},{st.st_dev},{st.st_ino}"
    if stat.S_ISDIR(st.st_mode):
        return "d" + head
    return f"{head},{st.st_size},{st.st_mtime_ns},{st.st_ctime_ns}"


def _trusted(st) -> bool:
    """Owned by root or this account, not writable by group or others (a sticky folder is)."""
    if st.st_uid not in (0, os.geteuid()):
        return False
    return not (st.st_mode & 0o022) or (stat.S_ISDIR(st.st_mode) and st.st_mode & stat.S_ISVTX)


def read_file(path: str, trusted: bool = False):
    """The bytes of the regular file at `path` (no link followed), None when missing;
    `trusted`: also owned by root or this account and not writable by group or others.
    fsutil.read_state_file's rules, written again here because fsutil's imports (pathlib,
    typing) would be paid on every start of the server."""
    try:
        fd = os.open(path, OPEN_FLAGS)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_BYTES or (
                trusted and (not _trusted(st) or st.st_nlink > 1)):
            raise Miss(path)
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
    finally:
        os.close(fd)


def digest(data) -> str:
    return "-" if data is None else sha256_hex(data)


def prefixed(env) -> list:
    return sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIXES))


def library_candidates(env) -> list:
    """Where the launch environment's loader looks for libcrypto/libssl first."""
    return [os.path.join(d, name) for d in env.get("LD_LIBRARY_PATH", "").split(":") if d
            for name in LIBRARIES]


# --- the warm path ---------------------------------------------------------------------

def verified_state_root():
    """The state root, checked as fsutil.verify_dir checks it (a real folder, root's or this
    account's, not writable by group or others; its parents likewise)."""
    root = state_root()
    if not root or not os.path.isabs(root):
        raise Miss("state root")
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or not _trusted(st):
        raise Miss(root)
    parent = os.path.dirname(os.path.normpath(root))
    while True:
        if not _trusted(os.stat(parent)):
            raise Miss(parent)
        if parent == os.path.dirname(parent):
            return root
        parent = os.path.dirname(parent)


def parse(data: bytes) -> dict:
    fields = data.split(b"\0")
    if fields[0] != FORMAT:
        raise Miss("format")
    facts: dict = {}
    i = 1
    while i < len(fields) - 1:
        tag, n = fields[i].decode(), int(fields[i + 1])
        facts.setdefault(tag, []).append([os.fsdecode(f) for f in fields[i + 2:i + 2 + n]])
        if len(facts[tag][-1]) != n:
            raise Miss("truncated")
        i += 2 + n
    return facts


def check(facts: dict, profile_real: str, caller: dict) -> tuple:
    """The launch environment and the run record's values, if every fact still holds."""
    (real, profile_digest), = facts["profile"]
    if real != profile_real or digest(read_file(real)) != profile_digest:
        raise Miss("profile")
    if facts["euid"] != [[str(os.geteuid())]]:
        raise Miss("account")
    if [list(kv) for kv in prefixed(caller)] != facts.get("env", []):
        raise Miss("environment")
    for path, sig in facts.get("stat", []):
        if signature(path) != sig:
            raise Miss(path)
    for path, sig in facts.get("lstat", []):
        if signature(path, follow=False) != sig:
            raise Miss(path)
    for path, want in facts.get("content", []):
        if digest(read_file(path)) != want:
            raise Miss(path)
    for path, want in facts.get("state", []):
        if digest(read_file(path, trusted=True)) != want:
            raise Miss(path)
    for folder, *names in facts.get("listing", []):
        if sorted(os.listdir(folder)) != names:
            raise Miss(folder)
    env = dict(caller)
    for key, value in facts.get("set", []):
        env[key] = value
    for key, in facts.get("unset", []):
        env.pop(key, None)
    if sorted(library_candidates(env)) != sorted(p for p, _ in facts.get("library", [])):
        raise Miss("libraries")
    for path, sig in facts.get("library", []):
        if signature(path) != sig:
            raise Miss(path)
    (module, key_hex, recorded), = facts["mac"]
    mac = module_mac(module, key_hex)  # every launch: a module swapped in place never passes
    if normalise_mac(mac) != recorded:
        raise Miss("module-mac")
    return env, mac


def launch(profile_path: str, argv: list, caller: dict) -> None:
    """Exec the server if the facts hold; return (a miss) otherwise, for the full path."""
    if os.name != "posix" or not argv or not argv[0]:
        return
    try:
        profile_real = os.path.realpath(profile_path)
        root = verified_state_root()
        data = read_file(os.path.join(root, facts_name(profile_real)), trusted=True)
        if data is None:
            return
        facts = parse(data)
        env, mac = check(facts, profile_real, caller)
        (folder, mode, checkpoint), = facts["run"]
    except (Miss, OSError, ValueError, IndexError, KeyError, UnicodeError):
        return
    from . import runrecords

    runrecords.write(folder, argv, mode, mac, None if checkpoint == "-" else int(checkpoint),
                     "exec", {k: env.get(k) for k in runrecords.RECORDED_ENV})
    # ^ for `fipsboot status`, before the exec and with the same fields as on the full path
    sys.stdout.flush()
    try:
        exec_server(argv, env)
    except (OSError, ValueError):  # ValueError: an empty server name, or a NUL in an argument
        return  # the full path says why, in its words


def exec_server(argv: list, env: dict) -> None:
    """os.execvpe's search of PATH (from `env`, as execvpe does), without the `warnings` module
    os.get_exec_path imports on every start of the server. Raises as os.execvpe does: the first
    error that is not "not found" (a file that can't be run), else the last."""
    name = argv[0]
    if os.path.dirname(name):
        os.execve(name, argv, env)
    first = last = None
    for folder in env.get("PATH", os.defpath).split(os.pathsep):
        try:
            os.execve(os.path.join(folder, name), argv, env)
        except (FileNotFoundError, NotADirectoryError) as e:
            last = e
        except OSError as e:
            last = e
            first = first or e
    raise first or last
