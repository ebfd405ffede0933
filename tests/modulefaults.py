"""Damage to the FIPS module as an upgrade or a bad copy would do it: one byte flipped in the
middle of its .rodata section, found from the ELF section headers (test_verify checks the
offset against readelf). The module still loads as a library; only its MAC tells."""
from __future__ import annotations

import struct
from pathlib import Path
from typing import Tuple


def elf_section(path: Path, wanted: str) -> Tuple[int, int]:
    """(file offset, size) of a section, read from the ELF section headers."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF", f"{path} is not an ELF file"
    bits64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if bits64:
        (shoff,) = struct.unpack_from(end + "Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x3A)
        fmt = end + "IIQQQQIIQQ"
    else:
        (shoff,) = struct.unpack_from(end + "I", data, 0x20)
        shentsize, shnum, shstrndx = struct.unpack_from(end + "HHH", data, 0x2E)
        fmt = end + "IIIIIIIIII"
    headers = [struct.unpack_from(fmt, data, shoff + i * shentsize) for i in range(shnum)]
    names_at = headers[shstrndx][4]
    for h in headers:
        start = names_at + h[0]
        if data[start:data.index(b"\0", start)].decode() == wanted:
            return h[4], h[5]  # sh_offset, sh_size
    raise AssertionError(f"{path} has no {wanted} section")


def flip_rodata_byte(module: Path) -> int:
    """Flip the byte in the middle of .rodata, in place (same file, same mode); its offset."""
    offset, size = elf_section(module, ".rodata")
    assert size > 0, f"{module}: an empty .rodata section"
    where = offset + size // 2
    with open(module, "r+b") as f:
        f.seek(where)
        byte = f.read(1)
        f.seek(where)
        f.write(bytes([byte[0] ^ 0xFF]))
    return where
