"""Issue 17 under Wine: the registry read and written exactly, Wine's registry environment,
and an openssl.exe that can't start. Keys are compared as `reg export` bytes.

The service key (FipsbootHardening) and the installation (C:\\FipsbootHardening) are this
file's own, so other Wine tests in the shared prefix don't trip over them; the machine's and
the account's Environment keys are shared with every Wine test, so each test cleans up."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile

import pytest
from helpers import build, fipsboot

pytestmark = pytest.mark.wine

SERVICE = "FipsbootHardening"
SERVICE_KEY = rf"HKLM\System\CurrentControlSet\Services\{SERVICE}"
MACHINE_KEY = r"HKLM\System\CurrentControlSet\Control\Session Manager\Environment"
USER_KEY = r"HKCU\Environment"
FULL = {"HKLM": "HKEY_LOCAL_MACHINE", "HKCU": "HKEY_CURRENT_USER"}
TYPES = {"REG_SZ": 1, "REG_EXPAND_SZ": 2, "REG_MULTI_SZ": 7}
PROFILE = """[server]
platform = "windows"
launcher = ["wine"]
install-dir = 'C:\\FipsbootHardening\\ORS 8.1.401.11'
config-dir = 'C:\\FipsbootHardening\\CFG'
[account]
targets = {targets}
"""


def reg(w, *args) -> subprocess.CompletedProcess:
    return subprocess.run([w["wine"], "reg", *args], capture_output=True, timeout=120)


def export(w, key: str) -> bytes:
    """The key as `reg export` writes it (b"" when it does not exist)."""
    folder = tempfile.mkdtemp(dir=os.path.join(w["prefix"], "drive_c", "windows", "temp"))
    try:
        r = reg(w, "export", key, f"C:\\windows\\temp\\{os.path.basename(folder)}\\k.reg", "/y")
        if r.returncode:
            return b""
        with open(os.path.join(folder, "k.reg"), "rb") as f:
            return f.read()
    finally:
        subprocess.run(["rm", "-rf", folder])


def put(w, key: str, values: dict) -> None:
    """Set values exactly ({name: (type, data) or None to delete}) through a .reg file."""
    root, _, path = key.partition("\\")
    lines = ["Windows Registry Editor Version 5.00", "", f"[{FULL[root]}\\{path}]"]
    for name, value in values.items():
        quoted = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if value is None:
            lines.append(f"{quoted}=-")
            continue
        kind, data = value
        text = "".join(s + "\0" for s in data) + "\0" if kind == "REG_MULTI_SZ" else data + "\0"
        hexdata = ",".join(f"{b:02x}" for b in text.encode("utf-16-le"))
        lines.append(f"{quoted}=hex({TYPES[kind]:x}):{hexdata}")
    folder = tempfile.mkdtemp(dir=os.path.join(w["prefix"], "drive_c", "windows", "temp"))
    try:
        with open(os.path.join(folder, "v.reg"), "wb") as f:
            f.write(b"\xff\xfe" + "\r\n".join(lines + [""]).encode("utf-16-le"))
        r = reg(w, "import", f"C:\\windows\\temp\\{os.path.basename(folder)}\\v.reg")
        assert r.returncode == 0, r.stderr
    finally:
        subprocess.run(["rm", "-rf", folder])


@pytest.fixture
def wine(testbed, wineserver, tmp_path, state_dir, monkeypatch):
    """C:\\FipsbootHardening\\ORS 8.1.401.11 with openssl.exe and fips.dll in the prefix."""
    win = build(testbed, "windows-3.0")
    prefix = testbed["wine"]["prefix"]
    monkeypatch.setenv("WINEPREFIX", prefix)
    monkeypatch.setenv("WINEDEBUG", "-all")
    top = os.path.join(prefix, "drive_c", "FipsbootHardening")
    shutil.rmtree(top, ignore_errors=True)
    install = os.path.join(top, "ORS 8.1.401.11")
    for folder in ("fips", "tools"):
        os.makedirs(os.path.join(install, folder))
    os.makedirs(os.path.join(top, "CFG"))
    shutil.copy2(win / "fips" / "fips.dll", os.path.join(install, "fips"))
    for f in (win / "bin").iterdir():
        shutil.copy2(f, os.path.join(install, "tools"))
    w = {"wine": testbed["wine"]["wine"], "prefix": prefix, "tmp": tmp_path,
         "openssl": os.path.join(install, "tools", "openssl.exe")}
    yield w
    shutil.rmtree(top, ignore_errors=True)
    reg(w, "delete", SERVICE_KEY, "/f")
    # The shared keys keep no value of this file's (the names ignore case).
    for key in (MACHINE_KEY, USER_KEY):
        put(w, key, {"OPENSSL_CONF": None, "OPENSSL_MODULES": None,
                     "FIPSBOOT_HARDENING_NOTE": None})


def hex_text(text: str) -> str:
    """How `reg export` writes `text` in hex data."""
    return ",".join(f"{b:02x}" for b in text.encode("utf-16-le"))


def flat(exported: bytes) -> str:
    """An export's text with its hex data's line breaks taken out."""
    return exported.decode("utf-16").replace("\\\r\n  ", "")


def profile(w, targets) -> str:
    path = w["tmp"] / "p.toml"
    path.write_text(PROFILE.format(targets=json.dumps(targets)))
    return str(path)


def test_registry_round_trip_is_byte_identical_under_wine(wine):
    """Items 9, 4, 2 and 10: `\\0` inside an entry, non-ASCII, REG_EXPAND_SZ and mixed-case
    names survive install -> reset -> rollback x2 byte for byte; a machine OPENSSL_CONF left
    from a by-hand setup (which Wine hands every process) does not stop the install that
    replaces it."""
    w = wine
    reg(w, "add", SERVICE_KEY, "/f")
    put(w, SERVICE_KEY, {"Environment": ("REG_MULTI_SZ", [
        "LOGDIR=C:\\logs\\0001", "USER_NAME=José", "openssl_modules=C:\\old"])})
    put(w, MACHINE_KEY, {"Openssl_Conf": ("REG_EXPAND_SZ", "%SystemRoot%\\by-hand.cnf")})
    put(w, USER_KEY, {"FIPSBOOT_HARDENING_NOTE": ("REG_EXPAND_SZ", "Ünïcode %TEMP%\\0x")})
    keys = (SERVICE_KEY, MACHINE_KEY, USER_KEY)
    before = {k: export(w, k) for k in keys}
    assert hex_text("USER_NAME=José") in flat(before[SERVICE_KEY])
    p = profile(w, [f"service:{SERVICE}", "machine", "user:" + __import__("getpass").getuser()])

    r = fipsboot("install", "--profile", p, "--json", timeout=600)
    assert json.loads(r.stdout).get("status") == "installed", r.stdout
    # The two entries are still two, exact, in their place.
    assert hex_text("LOGDIR=C:\\logs\\0001\0USER_NAME=José\0") in flat(export(w, SERVICE_KEY))
    checks = {c["name"]: c for c in json.loads(fipsboot(
        "verify", "--profile", p, "--json", check=0, timeout=600).stdout)["checks"]}
    assert checks["targets"]["ok"] and checks["providers"]["ok"], checks

    fipsboot("reset", "--profile", p, check=0, timeout=600)
    assert "OPENSSL" not in export(w, MACHINE_KEY).decode("utf-16").upper()
    fipsboot("rollback", "--profile", p, check=0, timeout=600)
    fipsboot("rollback", "--profile", p, check=0, timeout=600)
    after = {k: export(w, k) for k in keys}
    for key in keys:
        assert after[key] == before[key], key


def test_a_failed_install_undoes_exactly_and_leaves_no_pending_checkpoint(wine):
    """Items 9 and 10: a user OPENSSL_CONF that no target replaces fails install with its
    name and place (Wine would hand it to the server); the undo puts the service's exact
    value back and leaves nothing pending, so the next command runs."""
    w = wine
    reg(w, "add", SERVICE_KEY, "/f")
    put(w, SERVICE_KEY, {"Environment": ("REG_MULTI_SZ", ["USER_NAME=José",
                                                          "LOGDIR=C:\\logs\\0001"])})
    put(w, USER_KEY, {"OPENSSL_CONF": ("REG_SZ", "C:\\nowhere\\openssl.cnf")})
    before = export(w, SERVICE_KEY)
    p = profile(w, [f"service:{SERVICE}"])
    r = fipsboot("install", "--profile", p, "--json", check=1, timeout=600)
    error = json.loads(r.stdout)
    assert "HKCU\\Environment [OPENSSL_CONF]" in error["error"], error
    assert "target" in error["fix"]
    assert export(w, SERVICE_KEY) == before
    listing = json.loads(fipsboot("rollback", "--profile", p, "--list", "--json",
                                  check=0).stdout)
    assert all(c.get("status") != "pending" for c in listing.get("checkpoints", [])), listing
    put(w, USER_KEY, {"OPENSSL_CONF": None})
    r = fipsboot("install", "--profile", p, "--json", timeout=600)
    assert json.loads(r.stdout)["status"] == "installed"


def test_a_cached_run_notices_a_user_openssl_conf_under_wine(wine):
    """Item 10: after one good run, a user OPENSSL_CONF (the server's account can write it)
    would reach the server through Wine: the cached verdict must not let it start."""
    w = wine
    p = profile(w, [])
    fipsboot("install", "--profile", p, timeout=600)
    r = fipsboot("run", "--profile", p, "--", w["wine"], "cmd", "/c", "exit 0", timeout=600)
    assert r.returncode == 0, r.stderr
    put(w, USER_KEY, {"OPENSSL_CONF": ("REG_SZ", "C:\\nowhere\\openssl.cnf")})
    r = fipsboot("run", "--profile", p, "--", w["wine"], "cmd", "/c", "exit 0", timeout=600)
    assert r.returncode == 78, (r.returncode, r.stderr)
    put(w, USER_KEY, {"OPENSSL_CONF": None})


def test_a_missing_dll_is_named_under_wine(wine):
    """Item 7: openssl.exe that can't start says so and names the DLL."""
    w = wine
    p = profile(w, [])
    fipsboot("install", "--profile", p, timeout=600)
    os.remove(os.path.join(os.path.dirname(w["openssl"]), "libcrypto-3-x64.dll"))
    checks = {c["name"]: c for c in json.loads(fipsboot(
        "verify", "--profile", p, "--json", check=1, timeout=600).stdout)["checks"]}
    reason = checks["providers"]["reason"]
    assert "openssl.exe could not start" in reason and "libcrypto-3-x64.dll" in reason, reason
    assert "reinstall" not in checks["providers"]["fix"].lower()


def test_the_wine_registry_seam_reads_and_writes_values_exactly(wine):
    """Item 9 at the seam: `\\0` inside an entry, non-ASCII, quotes and backslashes, an
    expanding value and a mixed-case name go through Wine's registry and come back as they
    were; what `reg export` shows is what was written."""
    from fipsboot.platforms.wineregistry import WineRegistry

    w = wine
    reg(w, "add", SERVICE_KEY, "/f")
    registry = WineRegistry([w["wine"]])
    path = SERVICE_KEY.partition("\\")[2]
    entries = ["LOGDIR=C:\\logs\\0001", "USER_NAME=José", 'Q="x"\\', "Ünïcode=日本"]
    registry.set_value("HKLM", path, "Environment", entries, "REG_MULTI_SZ")
    assert registry.get_value("HKLM", path, "environment") == (entries, "REG_MULTI_SZ")
    assert hex_text("\0".join(entries) + "\0\0") in flat(export(w, SERVICE_KEY))
    registry.set_value("HKLM", path, "Mixed_Case", "%OS%\\é", "REG_EXPAND_SZ")
    assert registry.values("HKLM", path)["Mixed_Case"] == ("%OS%\\é", "REG_EXPAND_SZ")
    assert registry.expand("%OS%\\é") == "Windows_NT\\é"
    registry.delete_value("HKLM", path, "MIXED_CASE")
    assert "Mixed_Case" not in registry.values("HKLM", path)
