"""The server's own options file (ORS: `[scxml] fips-enabled`): one value read and set,
every other byte kept, whatever the file's encoding. A journal store, so install/reset record
the value before changing it and rollback puts exactly that back.

The file is split into lines by cnfsyntax.options_lines (the one parser of OpenSSL-style INI,
with the rules this file has always been read by: physical lines, no comments, see there); an
edit replaces the span of one value, or inserts or deletes whole lines, and leaves every other
byte as it was."""
from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional, Tuple

from . import fsutil
from .cnfsyntax import BLANK, KEY, SECTION, Line, in_sections, options_lines
from .cnfsyntax import OPTIONS_SECTION_RE as SECTION_RE  # noqa: F401  (IniStore reads it)

STORE = "ini"


def store_key(path: Path, section: str, key: str) -> str:
    return json.dumps([str(path), section, key])


def path_of(store_key_: str) -> str:
    return json.loads(store_key_)[0]


def _find(text: str, section: str, key: str) -> Tuple[List[Line], Optional[Line]]:
    """The file's lines and the first `key` of `[section]` (under any of its headers)."""
    placed = list(in_sections(options_lines(text), None))
    found = next((line for where, line in placed
                  if line.kind == KEY and where == section and line.name == key), None)
    return [line for _, line in placed], found


def get_value(text: str, section: str, key: str) -> Optional[str]:
    found = _find(text, section, key)[1]
    return found.raw if found is not None else None


def set_value(text: str, section: str, key: str, value: str) -> str:
    """Set `key` in `[section]`, keeping every other byte of the file: the value's span is
    replaced; a new key goes at the end of the section's first body (before the next header),
    a new section at the end of the file."""
    lines, found = _find(text, section, key)
    if found is not None:
        start, end = found.value
        return text[:start] + value + text[end:]
    after = _first_body_end(lines, section)
    if after is None:
        sep = "\n" if text and not text.endswith("\n") else ""
        return text + sep + f"[{section}]\n{key} = {value}\n"
    sep = "\n" if after and not text[:after].endswith("\n") else ""
    return text[:after] + sep + f"{key} = {value}\n" + text[after:]


def _first_body_end(lines: List[Line], section: str) -> Optional[int]:
    """Where the first `[section]`'s lines end (the start of the next header, or the end of
    the file), None when the file has no `[section]`."""
    inside = False
    for line in lines:
        if line.kind == SECTION:
            if inside:
                return line.start
            inside = line.name == section
    return lines[-1].end if inside else None


def remove_value(text: str, section: str, key: str, drop_empty_section: bool) -> str:
    """Remove `key` from `[section]` (and the section, when it was not there before fipsboot
    and is empty now: its header and its blank lines)."""
    lines, found = _find(text, section, key)
    header = None
    for line in lines:
        if line is found:
            text = text[:line.start] + text[line.end:]
            break
        if line.kind == SECTION and line.name == section:
            header = line  # the last header of the section before the key
    if drop_empty_section and header is not None:
        body = []
        for line in options_lines(text[header.end:]):
            if line.kind == SECTION:
                break
            body.append(line)
        if all(line.kind == BLANK for line in body):
            end = header.end + (body[-1].end if body else 0)
            text = text[:header.start] + text[end:]
    return text


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
