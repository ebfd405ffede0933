"""The journal: every change fipsboot makes is backed up here before it is made.

One folder per installation in the state folder (FIPSBOOT_STATE_DIR, else platformdirs):

    journal.json        mode, what fipsboot last wrote (digests), the checkpoints
    backups/<id>/<n>    the bytes a file held before checkpoint <id> changed it
    lock                one fipsboot at a time per installation

The state folder tells root which paths to restore, so it is trusted only as far as it is
verified: folders are created with fixed modes whatever the umask (0755; backups/ and kept/
0700, their files 0600), and every open checks that folders and files are real (no links),
owned by root or this account and not writable by group or others (certbot's
make_or_verify_dir). Every entry is validated (kinds, types, backups inside the state folder)
before anything acts on it.

A checkpoint is one command's changes. Its state is "pending" while it is applied, "done"
after, "rolling-back" while it is undone. For each change the old state is saved and recorded
*before* the change is made, so after a kill -9 at any point `recover()` can restore it: a
pending checkpoint is rolled back, an interrupted rollback is finished. Restores are
idempotent (temp file + os.replace), and a checkpoint whose restore fails is kept (certbot's
reverter does the same).

Files are built in; other kinds of value (Windows registry values) come through a `Store`.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Protocol, Tuple

from . import fsutil, testseam
from .errors import FipsbootError, HandEditError

FORMAT = 1
MODES = (None, "fips", "non-fips")
STATUSES = ("pending", "done", "rolling-back")
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
BACKUP_RE = re.compile(r"^([0-9]{1,9})/([0-9]{1,9})$")
DIGEST_RE = re.compile(r"^[0-9a-f]{64}$")


class Store(Protocol):
    """A keyed value outside the file system (a registry value): read it, set it, delete it."""

    def get(self, key: str) -> Any: ...  # None when absent; otherwise JSON-able
    def set(self, key: str, value: Any) -> None: ...  # value None: delete


SYSTEM_STATE_DIR = Path("/var/lib/fipsboot")


def state_root() -> Path:
    """FIPSBOOT_STATE_DIR; else the machine-wide folder, where an administrator's install
    writes and where the server's own account (running `fipsboot run`) finds it; else, for an
    unprivileged user with no machine-wide state, that user's state folder."""
    if os.environ.get("FIPSBOOT_STATE_DIR"):
        return Path(os.environ["FIPSBOOT_STATE_DIR"])
    import platformdirs

    if os.name != "posix":
        return Path(platformdirs.site_data_dir("fipsboot", appauthor=False))
    if os.geteuid() == 0 or SYSTEM_STATE_DIR.is_dir():
        return SYSTEM_STATE_DIR
    return Path(platformdirs.user_state_dir("fipsboot", appauthor=False))


def current_user() -> str:
    """Who ran the command (the effective account, not what $USER claims)."""
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        import getpass

        return getpass.getuser()


def installation_key(install_dir: str) -> str:
    """The state folder's name: one per installation whatever the spelling. A Windows install
    dir is keyed on the folder Windows means (case folded, one kind of slash, `..` collapsed,
    short names resolved where possible): `C:\\GCTI\\ORS`, `c:/gcti/x/../ors` are one
    installation, one journal, one lock. A Linux one on its real path (links and `..`
    resolved: `/opt/x/../ors` and a link to /opt/ors are /opt/ors; of a path that does not
    exist, the part that does; a path that can't be resolved is an error)."""
    return _written_key(_canonical(install_dir))


def _canonical(install_dir: str) -> str:
    if install_dir[1:2] == ":":  # a drive path: a Linux install dir starts with /
        import ntpath

        from .platforms.winpaths import normalised

        return normalised(ntpath.normpath(install_dir))
    try:
        return os.path.realpath(install_dir, strict=True)
    except (FileNotFoundError, NotADirectoryError):  # not there (yet): what exists resolved
        return os.path.realpath(install_dir)
    except OSError as e:  # a link loop, a folder this account can't search
        raise FipsbootError(f"install-dir {install_dir} can't be resolved to a real folder "
                            f"({e.strerror})", "create the installation folder (or fix the "
                            "profile's install-dir) and run the command again") from None


def _earlier_keys(install_dir: str) -> List[str]:
    """Keys earlier fipsboot versions gave this installation: as written, and (Windows)
    normalised without collapsing `..`."""
    keys = [_written_key(install_dir)]
    if install_dir[1:2] == ":":
        from .platforms.winpaths import normalised

        keys.insert(0, _written_key(normalised(install_dir)))
    return keys


def _written_key(install_dir: str) -> str:
    tail = "".join(c if c.isalnum() else "-" for c in install_dir)[-40:].strip("-")
    return f"{hashlib.sha256(install_dir.encode()).hexdigest()[:12]}-{tail}"


class Journal:
    def __init__(self, folder: Path, stores: Optional[Dict[str, Store]] = None):
        self.folder = folder
        self._rolled_back_here = False
        from .inifile import STORE, IniStore

        self.stores = {STORE: IniStore(), **(stores or {})}
        self.data = self._load()

    @classmethod
    def for_installation(cls, install_dir: str, stores=None) -> Journal:
        folder = state_root() / installation_key(install_dir)
        # A journal under an earlier key (as written, before keys were normalised or
        # resolved) is still this one's.
        if not os.path.lexists(folder):
            for key in _earlier_keys(install_dir):
                if os.path.lexists(state_root() / key):
                    folder = state_root() / key
                    break
        return cls(folder, stores)

    # --- persistent state ----------------------------------------------------------------

    def _load(self) -> dict:
        try:
            if os.path.lexists(self.folder):
                fsutil.verify_dir(self.folder)
            raw = fsutil.read_state_file(self.folder / "journal.json")
        except PermissionError:
            raise FipsbootError(f"cannot read the journal {self.folder / 'journal.json'}: "
                                "permission denied",
                                "run as the user who ran `fipsboot install`, or let this "
                                "account read the state folder") from None
        if raw is None:
            return {"format": FORMAT, "mode": None, "managed": {}, "extra": {}, "checkpoints": [],
                    "follow_up": [], "rollback_open": None}
        try:
            data = json.loads(raw)
        except ValueError as e:
            raise FipsbootError(f"journal {self.folder / 'journal.json'} is unreadable: {e}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise FipsbootError(f"journal {self.folder} is not in the format this fipsboot reads "
                                f"({FORMAT})")
        data.setdefault("follow_up", [])
        data.setdefault("rollback_open", None)
        shape = {"mode": (str, type(None)), "managed": dict, "extra": dict, "checkpoints": list,
                 "follow_up": list}
        bad = [k for k, t in shape.items() if not isinstance(data.get(k), t)]
        bad += [f"checkpoint {c!r:.40}" for c in data.get("checkpoints") or []
                if not (isinstance(c, dict) and {"id", "command", "status", "entries", "before"}
                        <= set(c))]
        if not bad:
            bad = self._invalid(data)
        if bad:
            raise FipsbootError(f"journal {self.folder / 'journal.json'} is damaged ({', '.join(bad)}); "
                                "nothing was changed",
                                "restore it from a backup, or move the folder aside to start over "
                                "(fipsboot then no longer knows what it wrote)")
        return data

    @staticmethod
    def _invalid(data: dict) -> List[str]:
        """What in a journal fipsboot must not act on: every value has the type and form that
        fipsboot writes, and every backup lies inside this installation's state folder."""
        bad = []
        if data["mode"] not in MODES:
            bad.append(f"mode {data['mode']!r:.40}")
        if not (data["rollback_open"] is None or (isinstance(data["rollback_open"], dict)
                                                  and type(data["rollback_open"].get("to")) is int)):
            bad.append("rollback_open")
        for cp in data["checkpoints"]:
            if type(cp["id"]) is not int or cp["status"] not in STATUSES or not isinstance(
                    cp["entries"], list) or not isinstance(cp["before"], dict):
                bad.append(f"checkpoint {cp.get('id')!r:.20}")
                continue
            for entry in cp["entries"]:
                problem = _entry_problem(entry, cp["id"])
                if problem:
                    bad.append(f"checkpoint {cp['id']}: {problem}")
        return bad

    def _save(self) -> None:
        fsutil.make_or_verify_dir(self.folder, 0o755)
        fsutil.atomic_write(self.folder / "journal.json",
                            json.dumps(self.data, indent=1, sort_keys=True).encode(), 0o644)

    @property
    def exists(self) -> bool:
        return (self.folder / "journal.json").exists()

    @property
    def mode(self) -> Optional[str]:
        return self.data["mode"]

    @property
    def managed(self) -> Dict[str, str]:
        """Digest of what fipsboot last wrote, per file or value it manages."""
        return self.data["managed"]

    @property
    def extra(self) -> Dict[str, Any]:
        return self.data["extra"]

    @property
    def checkpoints(self) -> List[dict]:
        return self.data["checkpoints"]

    @property
    def follow_up(self) -> List[List[str]]:
        """[kind, key] of changes whose follow-up (daemon-reload, WM_SETTINGCHANGE) has not
        run yet. Recorded in the same save as the change or the undo, so a kill in between
        loses nothing; outside the checkpoints' snapshots, so a rollback doesn't drop it."""
        return self.data["follow_up"]

    def follow_up_done(self, done: List[List[str]]) -> None:
        self.data["follow_up"] = [k for k in self.follow_up if k not in done]
        self._save()

    def _need_follow_up(self, entries: List[dict]) -> None:
        for entry in entries:
            item = [entry["kind"], entry["key"]]
            if entry["kind"] != "dir" and item not in self.follow_up:
                self.follow_up.append(item)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One fipsboot at a time; the journal is re-read once the lock is held, so nothing
        another command saved meanwhile is overwritten."""
        with fsutil.exclusive_lock(self.folder / "lock", f"the installation ({self.folder.name})"):
            fsutil.sweep_temp_files(self.folder, folder=True)  # a killed save's temp file
            self.data = self._load()
            yield

    # --- applying a change ---------------------------------------------------------------

    def begin(self, command: str) -> Transaction:
        self.recover()
        self.data["rollback_open"] = None  # a new change: an earlier rollback is over
        cid = max((c["id"] for c in self.checkpoints), default=0) + 1
        checkpoint = {"id": cid, "command": command, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                      "user": current_user(), "status": "pending", "entries": [],
                      "before": json.loads(json.dumps(self._state()))}
        self.checkpoints.append(checkpoint)
        self._save()
        return Transaction(self, checkpoint)

    def _state(self) -> dict:
        return {k: self.data[k] for k in ("mode", "managed", "extra")}

    def recover(self) -> Optional[dict]:
        """Finish what a killed fipsboot left: undo a pending checkpoint, finish a rollback."""
        if not self.checkpoints or self.checkpoints[-1]["status"] == "done":
            return None
        return self._undo(self.checkpoints[-1])

    def edited_since(self, cp: dict) -> List[dict]:
        """Entries changed after checkpoint `cp` wrote them: restoring would lose that edit."""
        edited = []
        for entry in cp["entries"]:
            if "after" not in entry:
                continue
            if entry["kind"] == "file":
                now = fsutil.digest(fsutil.read(Path(entry["key"])))
            elif entry["kind"] == "dir":
                continue
            else:
                now = self.stores[entry["kind"]].get(entry["key"])
            if now != entry["after"]:
                edited.append(entry)
        return edited

    def edits_lost_by(self, target: int) -> List[dict]:
        """Entries a rollback down to checkpoint `target` would overwrite although they were
        changed after fipsboot wrote them. Only the newest write of each key counts: older
        ones are restored over by the newer checkpoint's undo."""
        edited, seen = [], set()
        for cp in reversed(self.checkpoints):
            if cp["id"] < target:
                break
            edited += [e for e in self.edited_since(cp) if e["key"] not in seen]
            seen.update(e["key"] for e in cp["entries"])
        return edited

    def rollback_target(self, to: Optional[int]) -> int:
        """The checkpoint a rollback goes down to: `to`, or the newest."""
        ids = [c["id"] for c in self.checkpoints]
        if not ids:
            raise FipsbootError("nothing to roll back: the journal has no checkpoint",
                                "nothing to do: `fipsboot rollback --list` shows the journal")
        target = ids[-1] if to is None else to
        if target not in ids:
            raise FipsbootError(f"no checkpoint {target} (have: {', '.join(map(str, ids))})",
                                "pick one of those: `fipsboot rollback --list` shows them")
        return target

    def rollback(self, to: Optional[int] = None, force: bool = False) -> List[dict]:
        """Undo checkpoints newest first, down to and including `to` (default: the newest).
        A rollback interrupted by a kill is finished first and is the only one done: whatever
        the arguments, the rerun of a killed rollback undoes only what that rollback meant to
        (`rollback_open`, saved with its first undo and cleared by `rollback_finished` once its
        follow-up ran), never one checkpoint more."""
        interrupted = self.data["rollback_open"]
        if interrupted is not None and not self._rolled_back_here:
            undone = [self.recover()] if self.checkpoints and \
                self.checkpoints[-1]["status"] != "done" else []
            while self.checkpoints and self.checkpoints[-1]["id"] >= interrupted["to"]:
                cp = self.checkpoints[-1]
                cp["status"] = "rolling-back"
                self._save()
                undone.append(self._undo(cp))
            return [c for c in undone if c is not None]
        recovered = self.recover()
        if recovered is not None and recovered["status"] == "rolling-back" and to is None:
            return [recovered]
        if not self.checkpoints and recovered is not None:
            return [recovered]
        target = self.rollback_target(to)
        edited = self.edits_lost_by(target)
        if edited and not force:
            raise HandEditError(
                "changed since fipsboot wrote it: "
                + ", ".join(dict.fromkeys(e["key"] for e in edited))
                + ". Nothing was changed.",
                "rerun with --force to roll back anyway; the edited copies are kept in "
                f"{self.folder / 'kept'}")
        for entry in edited:
            self._keep_copy(entry)
        undone = [recovered] if recovered is not None else []
        self.data["rollback_open"] = {"to": target}
        self._rolled_back_here = True  # this process's own marker is no interrupted rollback
        while self.checkpoints and self.checkpoints[-1]["id"] >= target:
            cp = self.checkpoints[-1]
            cp["status"] = "rolling-back"
            self._save()
            undone.append(self._undo(cp))
        return undone

    def rollback_finished(self) -> None:
        """The rollback and its follow-up are complete: a rerun now starts a new rollback."""
        if self.data["rollback_open"] is not None:
            self.data["rollback_open"] = None
            self._save()

    def _keep_copy(self, entry: dict) -> None:
        """Save what a forced rollback is about to overwrite: a file's bytes, or a registry
        value's current state as JSON. Copies never replace each other."""
        key = entry["key"]
        if entry["kind"] == "file":
            data, suffix = fsutil.read(Path(key)), Path(key).name
        else:
            data = json.dumps({"kind": entry["kind"], "key": key,
                               "value": self.stores[entry["kind"]].get(key)}, indent=1).encode()
            suffix = entry["kind"] + ".json"
        if data is None:
            return
        kept = self.folder / "kept"
        fsutil.make_or_verify_dir(kept, 0o700)
        stem = (time.strftime("%Y%m%dT%H%M%S-") + hashlib.sha256(key.encode()).hexdigest()[:8])
        n = 0
        while True:
            target = kept / f"{stem}-{n}-{suffix}"
            try:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                n += 1
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            return

    def _undo(self, cp: dict) -> dict:
        """Restore every entry of `cp`, newest first. What already holds its old state is not
        touched; an entry that can't be restored doesn't stop the others. If any failed, the
        checkpoint stays (the next command retries it) and the failures are raised together."""
        for entry in cp["entries"]:  # temp files of writes a kill interrupted
            if entry["kind"] in ("file", "dir"):
                fsutil.sweep_temp_files(Path(entry["key"]), folder=entry["kind"] == "dir")
        failures = []
        for entry in reversed(cp["entries"]):
            try:
                testseam.step("restore")
                self._restore(entry)
            except testseam.InjectedFailure:
                raise
            except (OSError, FipsbootError, KeyError) as e:
                failures.append(f"{entry['key']}: {e}")
        if failures:
            raise FipsbootError(
                f"could not undo checkpoint {cp['id']} ({cp['command']}) completely: "
                + "; ".join(failures) + ". Everything else was restored; the checkpoint is kept",
                "fix the cause named and run any fipsboot command for this installation "
                "again: it finishes the undo")
        for key, value in cp["before"].items():
            self.data[key] = value
        self._need_follow_up(cp["entries"])
        self.checkpoints.remove(cp)
        self._save()
        import shutil

        shutil.rmtree(self.folder / "backups" / str(cp["id"]), ignore_errors=True)
        return cp

    def _restore(self, entry: dict) -> None:
        if entry["kind"] == "dir":
            try:
                fsutil.remove_folder(Path(entry["key"]))
            except OSError:
                pass  # gone already, or holds files that are not fipsboot's
        elif entry["kind"] == "file":
            path = Path(entry["key"])
            if entry["backup"] is None:
                fsutil.remove(path)
            else:
                data = fsutil.read_state_file(self.folder / "backups" / entry["backup"])
                if data is None:
                    raise FipsbootError(f"its backup {entry['backup']} is missing")
                fsutil.restore(path, data, entry["mode"], entry.get("owner"))
        else:
            self.stores[entry["kind"]].set(entry["key"], entry["before"])


class Transaction:
    """One command's changes. Use as a context manager: an exception rolls everything back."""

    def __init__(self, journal: Journal, checkpoint: dict):
        self.journal = journal
        self.checkpoint = checkpoint
        self._touched: Dict[str, dict] = {}
        self._committed = False

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            if not self._committed:
                self.commit()
        else:
            self.journal._undo(self.checkpoint)
        return False

    def _record(self, entry: dict) -> None:
        self.checkpoint["entries"].append(entry)
        self.journal._save()

    def ensure_dir(self, folder: Path) -> None:
        """Create missing folders, recorded so that a rollback removes them (when empty)."""
        missing = []
        while not folder.exists():
            missing.append(folder)
            folder = folder.parent
        for d in reversed(missing):
            testseam.step(f"record dir {d}")
            self._record({"kind": "dir", "key": str(d)})
            fsutil.make_folder(d, 0o755)

    def write_file(self, path: Path, data: bytes, mode: Optional[int] = None,
                   owner: Optional[Tuple[int, int]] = None) -> None:
        self._backup_file(path)["after"] = fsutil.digest(data)
        testseam.step(f"write {path}")
        fsutil.atomic_write(path, data, mode, owner=owner)

    def remove_file(self, path: Path) -> None:
        self._backup_file(path)["after"] = None
        testseam.step(f"remove {path}")
        fsutil.remove(path)

    def _backup_file(self, path: Path) -> dict:
        key = str(path)
        if key in self._touched:  # keep the oldest copy
            return self._touched[key]
        old, st = fsutil.read_with_stat(path)  # one open file: its bytes, mode and owner
        backup = None
        mode = owner = None
        if old is not None:
            backup = f"{self.checkpoint['id']}/{len(self.checkpoint['entries'])}"
            target = self.journal.folder / "backups" / backup
            fsutil.make_or_verify_dir(self.journal.folder / "backups", 0o700)
            fsutil.make_or_verify_dir(target.parent, 0o700)
            testseam.step(f"backup {path}")
            fsutil.atomic_write(target, old, 0o600, exact_mode=True)
            mode = st.st_mode & 0o7777
            owner = [st.st_uid, st.st_gid]
        testseam.step(f"record {path}")
        entry = {"kind": "file", "key": key, "backup": backup, "mode": mode, "owner": owner}
        self._record(entry)
        self._touched[key] = entry
        return entry

    def set_value(self, kind: str, key: str, value: Any) -> None:
        store = self.journal.stores[kind]
        ident = f"{kind}:{key}"
        if ident not in self._touched:
            testseam.step(f"record {ident}")
            self._touched[ident] = {"kind": kind, "key": key, "before": store.get(key)}
            self._record(self._touched[ident])
        self._touched[ident]["after"] = value
        testseam.step(f"set {ident}")
        store.set(key, value)

    def commit(self, **state: Any) -> None:
        for key, value in state.items():
            self.journal.data[key] = value
        self._committed = True
        self.journal._need_follow_up(self.checkpoint["entries"])
        if not self.checkpoint["entries"] and self.checkpoint["before"] == self.journal._state():
            self.journal.checkpoints.remove(self.checkpoint)  # nothing happened: no checkpoint
        else:
            self.checkpoint["status"] = "done"
        testseam.step("commit")
        self.journal._save()


def _entry_problem(entry: Any, cid: int) -> Optional[str]:
    """Why a checkpoint entry is not one fipsboot wrote, or None."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str) \
            or not KIND_RE.match(entry["kind"]) or not isinstance(entry.get("key"), str):
        return f"entry {entry!r:.60}"
    kind, key = entry["kind"], entry["key"]
    if kind in ("file", "dir"):
        if not os.path.isabs(key) or "\0" in key:
            return f"{kind} {key!r:.60} is not an absolute path"
    if kind != "file":
        return None
    backup, mode, owner = entry.get("backup"), entry.get("mode"), entry.get("owner")
    m = BACKUP_RE.match(backup) if isinstance(backup, str) else None
    if backup is not None and not (m and int(m.group(1)) == cid):
        return f"backup {backup!r:.60} of {key} is not a backup of this checkpoint"
    if not (mode is None or (type(mode) is int and 0 <= mode <= 0o1777)):
        return f"mode {mode!r:.20} of {key} (set-id bits are never restored)"
    if not (owner is None or (isinstance(owner, list) and len(owner) == 2
                              and all(type(i) is int and i >= 0 for i in owner))):
        return f"owner {owner!r:.30} of {key}"
    after = entry.get("after")
    if not (after is None or (isinstance(after, str) and DIGEST_RE.match(after))):
        return f"digest {after!r:.20} of {key}"
    return None
