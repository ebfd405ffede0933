"""The server's own options file (ORS: `[scxml] fips-enabled`): one value read and set,
every other byte kept, whatever the file's encoding. A journal store, so install/reset record
the value before changing it and rollback puts exactly that back."""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Optional

from . import fsutil

STORE = "ini"
SECTION_RE = re.compile(r"\s*\[\s*([^\]]+?)\s*\]")
KEY_RE = re.compile(r"(\s*)([^=\s]+)(\s*=\s*)(.*?)(\s*)$")


def store_key(path: Path, section: str, key: str) -> str:
    return json.dumps([str(path), section, key])


def path_of(store_key_: str) -> str:
    return json.loads(store_key_)[0]


def get_value(text: str, section: str, key: str) -> Optional[str]:
    current = None
    for line in text.splitlines():
        m = SECTION_RE.match(line)
        if m:
            current = m.group(1)
            continue
        m = KEY_RE.match(line)
        if current == section and m and m.group(2) == key:
            return m.group(4)
    return None


def set_value(text: str, section: str, key: str, value: str) -> str:
    """Set `key` in `[section]`, keeping every other byte of the file."""
    lines = text.splitlines(keepends=True)
    current, insert_at = None, None
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m:
            if current == section and insert_at is None:
                insert_at = i
            current = m.group(1)
            continue
        m = KEY_RE.match(line.rstrip("\r\n"))
        if current == section and m and m.group(2) == key:
            ending = line[len(line.rstrip("\r\n")):]
            lines[i] = m.group(1) + key + m.group(3) + value + m.group(5) + ending
            return "".join(lines)
    if current == section and insert_at is None:
        insert_at = len(lines)
    if insert_at is None:
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        return "".join(lines) + f"[{section}]\n{key} = {value}\n"
    if insert_at and not lines[insert_at - 1].endswith("\n"):
        lines[insert_at - 1] += "\n"
    lines.insert(insert_at, f"{key} = {value}\n")
    return "".join(lines)




def remove_value(text: str, section: str, key: str, drop_empty_section: bool) -> str:
    """Remove `key` from `[section]` (and the section, when it was not there before fipsboot
    and is empty now)."""
    lines = text.splitlines(keepends=True)
    current, header = None, None
    for i, line in enumerate(lines):
        m = SECTION_RE.match(line)
        if m:
            current = m.group(1)
            if current == section:
                header = i
            continue
        m = KEY_RE.match(line.rstrip("\r\n"))
        if current == section and m and m.group(2) == key:
            del lines[i]
            break
    if drop_empty_section and header is not None:
        rest = lines[header + 1:]
        body = []
        for line in rest:
            if SECTION_RE.match(line):
                break
            body.append(line)
        if not any(b.strip() for b in body):
            del lines[header:header + 1 + len(body)]
    return "".join(lines)


class IniStore:
    """Journal store (through stores.ValueStore): the key names file, section and key; the
    value is {"value": str or None, "section": bool} (None: the key is absent). The file is
    read and written through fsutil (no links followed, atomic writes)."""

    def get(self, key: str) -> dict:
        path, section, name = json.loads(key)
        data = fsutil.read(Path(path)) or b""
        text = data.decode("utf-8", "surrogateescape")
        has_section = any((m := SECTION_RE.match(line)) and m.group(1) == section
                          for line in text.splitlines())
        return {"value": get_value(text, section, name), "section": has_section}

    def set(self, key: str, snapshot: Optional[dict]) -> None:
        path, section, name = json.loads(key)
        data = fsutil.read(Path(path))
        if data is None:
            return  # the server's file is gone: nothing to put back
        text = data.decode("utf-8", "surrogateescape")
        if snapshot is None or snapshot["value"] is None:
            new = remove_value(text, section, name,
                               drop_empty_section=not (snapshot or {}).get("section", True))
        else:
            new = set_value(text, section, name, snapshot["value"])
        if new != text:
            fsutil.atomic_write(Path(path), new.encode("utf-8", "surrogateescape"))

    def sweep(self, key: str) -> None:
        """Remove the temp file a write killed before its rename left beside the file."""
        fsutil.sweep_temp_files(Path(path_of(key)))
