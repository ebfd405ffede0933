"""The `.reg` format the Wine registry reads and writes (regfile.py), without Wine: what
`reg export` prints is read exactly, and the one-value files given to `reg import` read back
as the value they were made from."""
from __future__ import annotations

import pytest

from fipsboot.platforms.regfile import (
    decode,
    delete_line,
    encode,
    import_text,
    parse_export,
    set_line,
)

EXPORT = "\r\n".join([
    "Windows Registry Editor Version 5.00",
    "",
    r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\ORS]",
    r'"Quoted"="C:\\GCTI \"ORS\"\0x"',
    '"Multi"=hex(7):41,00,3d,00,31,00,00,00,42,00,3d,00,\\',
    "  32,00,00,00,00,00",
    '"Count"=dword:0000002a',
    '"Bytes"=hex:01,02',
    '@="default"',
    "",
    r"[HKEY_LOCAL_MACHINE\SYSTEM\CurrentControlSet\Services\ORS\Sub]",
    '"Other"="not the key asked for"',
    ""])


def test_an_export_is_read_exactly_and_only_for_the_key_asked_for():
    values = parse_export(EXPORT)
    assert set(values) == {"Quoted", "Multi", "Count", "Bytes", ""}
    assert decode(*values["Quoted"]) == 'C:\\GCTI "ORS"'  # a REG_SZ ends at its first NUL
    assert values["Quoted"][1] == 'C:\\GCTI "ORS"\0x\0'.encode("utf-16-le")
    assert decode(*values["Multi"]) == ["A=1", "B=2"]
    assert values["Count"] == (4, (42).to_bytes(4, "little"))
    assert values["Bytes"] == (3, b"\x01\x02")
    assert decode(*values[""]) == "default"


@pytest.mark.parametrize("name, data, kind", [
    ("Environment", ["LOGDIR=C:\\logs\\0001", "USER_NAME=José", 'Q="x"\\'], "REG_MULTI_SZ"),
    ('Mixed_"Case"\\', "%OS%\\é", "REG_EXPAND_SZ"),
    ("OPENSSL_CONF", "C:\\GCTI\\openssl.cnf", "REG_SZ"),
    ("Empty", [], "REG_MULTI_SZ")])
def test_an_import_file_reads_back_as_the_value_it_was_made_from(name, data, kind):
    raw = import_text("HKLM", r"SYSTEM\CurrentControlSet\Services\ORS", set_line(name, data, kind))
    assert raw[:2] == b"\xff\xfe"
    text = raw[2:].decode("utf-16-le")
    assert text.startswith("Windows Registry Editor Version 5.00\r\n\r\n"
                           "[HKEY_LOCAL_MACHINE\\SYSTEM\\CurrentControlSet\\Services\\ORS]\r\n")
    (stored, (number, data_bytes)), = parse_export(text).items()
    assert stored == name and data_bytes == encode(data, kind)
    assert decode(number, data_bytes) == data


def test_a_deletion_line_names_the_value_escaped():
    assert delete_line('a"b\\c') == '"a\\"b\\\\c"=-'
