"""The `.reg` file format of `reg export` and `reg import`: a key's values read from an
export, exactly (types as numbers, data as bytes), and the one-value files an import takes.

Every value is written as hex data (`hex(N):..`) and read from whatever form the export uses:
quoted strings and their escapes, `hex(N):`, `hex:`, `dword:`. Pure text work (no Wine), so
the Wine registry's parsing is testable alone.
"""
from __future__ import annotations

from typing import Dict, Tuple

from .regseam import REG_EXPAND_SZ, REG_MULTI_SZ, REG_SZ, Data

TYPE_NUMBERS = {REG_SZ: 1, REG_EXPAND_SZ: 2, REG_MULTI_SZ: 7}
TYPE_NAMES = {n: t for t, n in TYPE_NUMBERS.items()}
ROOT_NAMES = {"HKLM": "HKEY_LOCAL_MACHINE", "HKU": "HKEY_USERS", "HKCU": "HKEY_CURRENT_USER"}
# Raw registry values: {name as stored: (type number, data bytes)}
RawValues = Dict[str, Tuple[int, bytes]]


def _unescape(text: str) -> str:
    """A quoted .reg string's content: `\\\\`, `\\"`, `\\n`, `\\r`, `\\0` escapes."""
    out, i = [], 0
    escapes = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "0": "\0"}
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append(escapes.get(text[i + 1], text[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _quoted(line: str) -> Tuple[str, str]:
    """Split `"name"=rest` (or `@=rest`) into the unescaped name and the rest."""
    if line.startswith("@="):
        return "", line[2:]
    i = 1
    while i < len(line):
        if line[i] == "\\":
            i += 2
            continue
        if line[i] == '"':
            break
        i += 1
    return _unescape(line[1:i]), line[i + 2:]


def parse_export(text: str) -> RawValues:
    """The values of the first key in a `reg export` file (the key asked for; its subkeys
    follow in their own sections)."""
    lines = text.replace("\r\n", "\n").split("\n")
    values: RawValues = {}
    in_first, i = None, 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if line.startswith("["):
            if in_first is not None:
                break
            in_first = True
            continue
        if not in_first or not (line.startswith('"') or line.startswith("@=")):
            continue
        while line.endswith("\\") and i < len(lines):  # hex data continues on the next line
            line = line[:-1] + lines[i].strip()
            i += 1
        name, data = _quoted(line)
        if data.startswith('"'):
            values[name] = (1, (_unescape(data[1:-1]) + "\0").encode("utf-16-le"))
        elif data.startswith("hex("):
            kind, _, hexdata = data[4:].partition("):")
            values[name] = (int(kind, 16), bytes.fromhex(hexdata.replace(",", "")))
        elif data.startswith("hex:"):
            values[name] = (3, bytes.fromhex(data[4:].replace(",", "")))
        elif data.startswith("dword:"):
            values[name] = (4, int(data[6:], 16).to_bytes(4, "little"))
        else:
            values[name] = (-1, b"")
    return values


def decode(kind: int, raw: bytes) -> Data:
    text = raw.decode("utf-16-le", "surrogatepass")
    if kind == 7:
        return [s for s in text.rstrip("\0").split("\0") if s]
    return text.split("\0", 1)[0]


def encode(data: Data, kind: str) -> bytes:
    if kind == REG_MULTI_SZ:
        text = "".join(s + "\0" for s in data) + "\0"
    else:
        text = data + "\0"
    return text.encode("utf-16-le", "surrogatepass")


def import_text(root: str, path: str, line: str) -> bytes:
    """A `.reg` file that sets (or deletes) one value of one key, as reg.exe reads it."""
    text = (f"Windows Registry Editor Version 5.00\r\n\r\n"
            f"[{ROOT_NAMES[root]}\\{path}]\r\n{line}\r\n")
    return b"\xff\xfe" + text.encode("utf-16-le", "surrogatepass")


def set_line(name: str, data: Data, kind: str) -> str:
    """The line that gives the value `name` this data and type, as hex data."""
    hexdata = ",".join(f"{b:02x}" for b in encode(data, kind))
    return f'"{_escape_name(name)}"=hex({TYPE_NUMBERS[kind]:x}):{hexdata}'


def delete_line(name: str) -> str:
    """The line that deletes the value `name`."""
    return f'"{_escape_name(name)}"=-'


def _escape_name(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"')
