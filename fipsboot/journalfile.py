"""journal.json on disk: read, validated before anything acts on it, and written atomically.

    {"format": 1, "mode": null | "fips" | "non-fips",
     "managed": {key: digest of what fipsboot last wrote}, "extra": {...},
     "checkpoints": [{"id", "command", "time", "user", "status", "entries", "before"}],
     "follow_up": [[kind, key]], "rollback_open": null | {"to": id}}

The state folder tells root which paths to restore, so it is trusted only as far as it is
verified: its folders are real, owned by root or this account and not writable by others
(fsutil.verify_dir, read_state_file), and every value has the type and form fipsboot writes;
each entry's own fields are checked by its store (stores.py), so a backup named outside the
state folder, a relative path or a set-id mode is refused before anything is restored.
"""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Dict, List

from . import fsutil
from .errors import FipsbootError

FORMAT = 1
MODES = (None, "fips", "non-fips")
STATUSES = ("pending", "done", "rolling-back")
KIND_RE = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
SHAPE = {"mode": (str, type(None)), "managed": dict, "extra": dict, "checkpoints": list,
         "follow_up": list}
CHECKPOINT_FIELDS = {"id", "command", "status", "entries", "before"}


def empty() -> dict:
    return {"format": FORMAT, "mode": None, "managed": {}, "extra": {}, "checkpoints": [],
            "follow_up": [], "rollback_open": None}


def load(folder: Path, stores: Dict[str, Any]) -> dict:
    """The journal in `folder` (an empty one when there is none yet), or FipsbootError."""
    path = folder / "journal.json"
    try:
        if os.path.lexists(folder):
            fsutil.verify_dir(folder)
        raw = fsutil.read_state_file(path)
    except PermissionError:
        raise FipsbootError(f"cannot read the journal {path}: permission denied",
                            "run as the user who ran `fipsboot install`, or let this "
                            "account read the state folder") from None
    if raw is None:
        return empty()
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise FipsbootError(f"journal {path} is unreadable: {e}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise FipsbootError(f"journal {folder} is not in the format this fipsboot reads "
                            f"({FORMAT})")
    data.setdefault("follow_up", [])
    data.setdefault("rollback_open", None)
    bad = problems(data, stores)
    if bad:
        raise FipsbootError(f"journal {path} is damaged ({', '.join(bad)}); nothing was changed",
                            "restore it from a backup, or move the folder aside to start over "
                            "(fipsboot then no longer knows what it wrote)")
    return data


def problems(data: dict, stores: Dict[str, Any]) -> List[str]:
    """What in a journal fipsboot must not act on."""
    bad = [k for k, t in SHAPE.items() if not isinstance(data.get(k), t)]
    bad += [f"checkpoint {c!r:.40}" for c in data.get("checkpoints") or []
            if not (isinstance(c, dict) and CHECKPOINT_FIELDS <= set(c))]
    if bad:
        return bad
    if data["mode"] not in MODES:
        bad.append(f"mode {data['mode']!r:.40}")
    rollback_open = data["rollback_open"]
    if not (rollback_open is None
            or (isinstance(rollback_open, dict) and type(rollback_open.get("to")) is int)):
        bad.append("rollback_open")
    for cp in data["checkpoints"]:
        if type(cp["id"]) is not int or cp["status"] not in STATUSES or not isinstance(
                cp["entries"], list) or not isinstance(cp["before"], dict):
            bad.append(f"checkpoint {cp.get('id')!r:.20}")
            continue
        for entry in cp["entries"]:
            problem = entry_problem(entry, cp["id"], stores)
            if problem:
                bad.append(f"checkpoint {cp['id']}: {problem}")
    return bad


def entry_problem(entry: Any, checkpoint: int, stores: Dict[str, Any]) -> str:
    """Why a checkpoint entry is not one fipsboot wrote ("" when it is): a kind and a key,
    and what the entry's store checks of its own fields. An entry of a kind this platform has
    no store for is left to its restore, which fails and keeps the checkpoint."""
    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str) \
            or not KIND_RE.match(entry["kind"]) or not isinstance(entry.get("key"), str):
        return f"entry {entry!r:.60}"
    store = stores.get(entry["kind"])
    return (store.problem(entry, checkpoint) or "") if store is not None else ""


def save(folder: Path, data: dict) -> None:
    fsutil.make_or_verify_dir(folder, 0o755)
    fsutil.atomic_write(folder / "journal.json",
                        json.dumps(data, indent=1, sort_keys=True).encode(), 0o644)
