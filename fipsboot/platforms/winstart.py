"""Why openssl.exe could not start: the DLL it (or a DLL beside it) imports that is missing.

Windows reports a missing DLL as STATUS_DLL_NOT_FOUND (0xC0000135), which Wine's exit status
truncates to 53; "`openssl list -providers` failed (53)" told the operator nothing and
suggested reinstalling the FIPS module. Here the import tables of openssl.exe and of the DLLs
beside it are read (the PE format, no Windows call needed) and each imported DLL is looked for
where Windows' loader looks: the program's folder, then System32.
"""
from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import List, Optional, Set

# NTSTATUS codes a process that never started ends with, and their low byte (Wine's status).
START_FAILURES = {0xC0000135: "a DLL it needs was not found (STATUS_DLL_NOT_FOUND)",
                  0xC0000139: "a DLL lacks a function it needs (STATUS_ENTRYPOINT_NOT_FOUND)",
                  0xC000007B: "a DLL is not a valid image for it (STATUS_INVALID_IMAGE_FORMAT)",
                  0xC0000142: "a DLL failed to initialise (STATUS_DLL_INIT_FAILED)"}


def start_failure(returncode: int) -> Optional[str]:
    """What a process's exit status says about it never starting, or None."""
    code = returncode & 0xFFFFFFFF
    if code in START_FAILURES:
        return START_FAILURES[code]
    for status, what in START_FAILURES.items():  # Wine: only the low byte survives
        if code == status & 0xFF:
            return what
    return None


def imported_dlls(image: bytes) -> List[str]:
    """The DLL names in a PE image's import table ([] when it isn't a PE image)."""
    try:
        if image[:2] != b"MZ":
            return []
        pe = struct.unpack_from("<I", image, 0x3C)[0]
        if image[pe:pe + 4] != b"PE\0\0":
            return []
        coff = pe + 4
        sections, optional_size = struct.unpack_from("<H", image, coff + 2)[0], \
            struct.unpack_from("<H", image, coff + 16)[0]
        optional = coff + 20
        magic = struct.unpack_from("<H", image, optional)[0]
        directories = optional + (112 if magic == 0x20B else 96)
        import_rva = struct.unpack_from("<I", image, directories + 8)[0]
        table = optional + optional_size
        spans = [struct.unpack_from("<IIII", image, table + 40 * i + 8) for i in range(sections)]

        def offset(rva: int) -> int:
            for vsize, vaddr, rawsize, rawptr in spans:
                if vaddr <= rva < vaddr + max(vsize, rawsize):
                    return rva - vaddr + rawptr
            raise ValueError(rva)

        names, entry = [], offset(import_rva) if import_rva else None
        while entry is not None:
            name_rva = struct.unpack_from("<I", image, entry + 12)[0]
            if name_rva == 0:
                break
            start = offset(name_rva)
            names.append(image[start:image.index(b"\0", start)].decode("ascii", "replace"))
            entry += 20
        return names
    except (struct.error, ValueError):
        return []


def missing_dlls(program: Path, system_dirs: List[Path]) -> List[str]:
    """"NAME (needed by WHO)" for each DLL that the program or a DLL beside it imports and
    that is in none of the places the loader looks."""
    missing: List[str] = []
    seen: Set[str] = set()
    todo = [program]
    while todo:
        image_path = todo.pop()
        try:
            image = image_path.read_bytes()
        except OSError:
            continue
        for name in imported_dlls(image):
            folded = name.casefold()
            if folded in seen or folded.startswith(("api-ms-", "ext-ms-")):
                continue  # API sets: resolved by the loader itself
            seen.add(folded)
            beside = _find(program.parent, name)
            if beside is not None:
                todo.append(beside)
            elif not any(_find(d, name) for d in system_dirs):
                missing.append(f"{name} (needed by {image_path.name})")
    return missing


def _find(folder: Path, name: str) -> Optional[Path]:
    """`name` in `folder`, ignoring case as Windows does."""
    try:
        for entry in folder.iterdir():
            if entry.name.casefold() == name.casefold():
                return entry
    except OSError:
        pass
    return None


def explain(program: Path, system_dirs: List[Path], returncode: int,
            shown: Optional[str] = None) -> Optional[str]:
    """Why `program` did not start, for a person; None when its status says it did.
    `shown`: the program's path as the profile names it."""
    what = start_failure(returncode)
    if what is None:
        return None
    if not program.exists():
        return f"{program.name} could not start: {shown or program} does not exist"
    missing = missing_dlls(program, system_dirs)
    if missing:
        return f"{program.name} could not start: missing " + ", ".join(missing)
    return f"{program.name} could not start: {what} (exit status {returncode})"


def check_started(layout, results) -> None:
    """Raise the reason when the installation's openssl.exe never started."""
    from ..errors import OpenSSLError

    program = layout.host(layout.openssl)
    if layout.profile.launcher:  # Wine: the prefix's own system folder
        from ..layout import wine_prefix

        system = [wine_prefix() / "drive_c" / "windows" / "system32"]
    else:
        system = [Path(os.environ.get("SystemRoot", "C:\\Windows")) / "System32"]
    for r in results:
        reason = explain(program, system, r.returncode, layout.openssl)
        if reason:
            raise OpenSSLError(reason + f" ({' '.join(r.args[-2:])})",
                               fix=f"put what is missing in {program.parent} (Windows loads "
                                   f"openssl.exe's DLLs from its own folder), or restore the "
                                   f"server's installation")
