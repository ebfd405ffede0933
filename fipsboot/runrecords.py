"""Run records: what `fipsboot run` launched, kept in the installation's state folder.

`run` writes one record just before it hands over to the server (on Linux the exec keeps the
PID, so the record names the server itself; on Windows the server is the wrapper's child).
`status` reads them back. A record is only a lead, never proof: it names a PID and that
process's start time, and a record whose PID is gone or now belongs to another process
(another start time) is pruned.

The writer sits in the server's start-up path: it uses only modules the wrapper has already
imported, writes one small file (temp name, O_EXCL|O_NOFOLLOW, fixed mode, then rename) and
gives up silently when the account can't write the state folder (the verdict cache does the
same): a missing record must never stop a verified server.

    <state>/<installation>/runs/<pid>-<start ticks>.json     (0644, folder 0755)
"""
from __future__ import annotations

import os
import stat
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: the writer runs on the warm path, which imports neither
    from pathlib import Path
    from typing import List, Optional, Tuple

FOLDER = "runs"
FORMAT = 1
FILE_MODE = 0o644
DIR_MODE = 0o755
MAX_BYTES = 64 * 1024  # a record is a few hundred bytes; anything bigger is not ours


def linux_start(pid: int) -> Tuple[Optional[int], Optional[float]]:
    """(start in clock ticks since boot, start in wall-clock seconds) from /proc/PID/stat.
    The wall-clock start comes from the boot clock, not from /proc/stat's boot time as
    psutil's create_time does: that has whole seconds, so create_time can be a second early."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])  # field 22 of proc(5), counted after "pid (comm)"
        since = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
        return ticks, time.time() - since
    except (OSError, ValueError, IndexError, AttributeError):
        return None, None


def safe_folder(folder: Path, create: bool) -> bool:
    """Whether `folder` is a real folder only its owner (root or this account) can write.
    A link, a foreign owner or group/world write means another account could plant records."""
    try:
        st = os.lstat(folder)
    except FileNotFoundError:
        if not create:
            return False
        try:
            os.mkdir(folder, DIR_MODE)
            os.chmod(folder, DIR_MODE)  # not the umask's choice
        except OSError:
            return False
        st = os.lstat(folder)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or stat.S_IMODE(st.st_mode) & 0o022:
        return False
    return os.name != "posix" or st.st_uid in (0, os.geteuid())


def write(journal_folder: str | Path, argv: List[str], mode: str, module_mac: Optional[str],
          checkpoint: Optional[int], launch: str,
          environment: Optional[dict] = None) -> Optional[str]:
    """Record this process (which is about to become, or to start, the server). Never raises
    for lack of permission: returns None when nothing could be written."""
    pid = os.getpid()
    ticks, start = linux_start(pid) if os.name == "posix" else (None, None)
    record = {"format": FORMAT, "pid": pid, "start_ticks": ticks, "start_time": start,
              "argv": list(argv), "mode": mode, "module_mac": module_mac,
              "checkpoint": checkpoint, "time": time.time(),
              "uid": os.geteuid() if hasattr(os, "geteuid") else None, "launch": launch,
              "environment": environment}
    folder = os.path.join(journal_folder, FOLDER)
    try:
        if not os.path.isdir(journal_folder) or not safe_folder(folder, create=True):
            return None
        name = f"{pid}-{ticks if ticks is not None else int(time.time())}.json"
        final, tmp = os.path.join(folder, name), os.path.join(folder, f".{name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        try:
            os.unlink(tmp)  # left by a wrapper killed here with the same PID: ours to replace
        except FileNotFoundError:
            pass
        fd = os.open(tmp, flags, FILE_MODE)
        try:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, FILE_MODE)
            os.write(fd, to_json(record).encode())
        finally:
            os.close(fd)
        os.replace(tmp, final)
        return final
    except (OSError, ValueError):
        return None


def to_json(value) -> str:
    """JSON for a record (str, int, float, None, lists, a dict), as json.dumps(sort_keys=True)
    reads back, without the json module: that brings `re` into the server's start-up."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(to_json, value)) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_json(str(k))}: {to_json(value[k])}"
                               for k in sorted(value)) + "}"
    out = []
    for ch in str(value):
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        elif code > 0xFFFF:  # outside the BMP: a surrogate pair, as JSON spells it
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        else:
            out.append(f"\\u{code:04x}")
    return '"' + "".join(out) + '"'


def last_checkpoint(journal) -> Optional[int]:
    return journal.checkpoints[-1]["id"] if journal.checkpoints else None


def record_launch(job: dict, checks) -> None:
    """The one call `run` makes: record the launch it is about to do."""
    mac = next((c.details.get("mac") for c in checks or () if c.name == "module-mac"), None)
    launch = "child" if job["layout"].windows else "exec"
    # The variables the server is started with: status's evidence where the server overwrites
    # its own environment block (Redis does, for its process title).
    env = {k: job["env"].get(k) for k in RECORDED_ENV}
    write(job["journal"].folder, job["argv"], job["mode"], mac, last_checkpoint(job["journal"]),
          launch, env)


# --- reading (status) -----------------------------------------------------------------

RECORDED_ENV = ("OPENSSL_CONF", "OPENSSL_MODULES")
FIELDS = {"format": int, "pid": int, "argv": list, "mode": str, "time": (int, float),
          "launch": str}


def validate(data) -> Optional[str]:
    """Why `data` is not a record this fipsboot wrote, or None."""
    if not isinstance(data, dict):
        return "not an object"
    for key, kind in FIELDS.items():
        if not isinstance(data.get(key), kind) or isinstance(data.get(key), bool):
            return f"{key} missing or of the wrong type"
    if data["format"] != FORMAT:
        return f"format {data['format']} (this fipsboot reads {FORMAT})"
    if data["pid"] <= 0 or not all(isinstance(a, str) for a in data["argv"]):
        return "bad pid or argv"
    if data["launch"] not in ("exec", "child"):
        return f"unknown launch {data['launch']!r}"
    for key, kind in (("start_ticks", int), ("start_time", (int, float)), ("module_mac", str),
                      ("checkpoint", int), ("uid", int), ("environment", dict)):
        if data.get(key) is not None and not isinstance(data[key], kind):
            return f"{key} of the wrong type"
    env = data.get("environment") or {}
    if set(env) - set(RECORDED_ENV) or not all(v is None or isinstance(v, str)
                                               for v in env.values()):
        return "environment of the wrong form"
    return None


def read_all(journal_folder: Path) -> Tuple[List[Tuple[Path, dict]], List[str]]:
    """Every valid record, and a note per file that was refused (left alone, not trusted)."""
    folder = journal_folder / FOLDER
    records, notes = [], []
    if not folder.exists():
        return records, notes
    if not safe_folder(folder, create=False):
        return records, [f"{folder} is a link, not owned by root or this account, or writable "
                         "by others: its run records are not trusted"]
    try:
        names = sorted(os.listdir(folder))
    except OSError as e:
        return records, [f"cannot list {folder}: {e.strerror}"]
    for name in names:
        if not name.endswith(".json") or name.startswith("."):
            continue
        path = folder / name
        try:
            # O_NONBLOCK: a FIFO named *.json must not hang the open (fstat then refuses it).
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0)
                         | getattr(os, "O_NONBLOCK", 0))
        except OSError as e:
            notes.append(f"run record {path}: {e.strerror} (not trusted)")
            continue
        try:
            st = os.fstat(fd)
            if (not stat.S_ISREG(st.st_mode) or stat.S_IMODE(st.st_mode) & 0o022
                    or (os.name == "posix" and st.st_uid not in (0, os.geteuid()))
                    or st.st_size > MAX_BYTES):
                notes.append(f"run record {path}: not a plain file written by root or this "
                             "account with mode 0644 (not trusted)")
                continue
            raw = os.read(fd, MAX_BYTES + 1)
        finally:
            os.close(fd)
        import json

        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        why = validate(data)
        if why:
            notes.append(f"run record {path}: {why} (not trusted)")
            continue
        records.append((path, data))
    return records, notes


def prune(path: Path) -> bool:
    """Remove a record whose process is gone (best effort: another account may own it)."""
    try:
        os.unlink(path)
        return True
    except OSError:
        return False
