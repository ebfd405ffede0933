"""Windows semantics (issue 17) through the registry seam and the profile: paths as Windows
reads them, names that ignore case, REG_SZ for fipsboot's literal paths, one journal per
installation, and reasons that say what is wrong. The same cases under Wine, with a real
registry and a real openssl.exe, are in test_wine_hardening.py."""
from __future__ import annotations

import struct
from pathlib import Path

import pytest
from fakeregistry import FakeRegistry

from fipsboot import environ, verify
from fipsboot.errors import OpenSSLError, ProfileError
from fipsboot.journal import Journal, installation_key
from fipsboot.layout import resolve
from fipsboot.platforms import winstart
from fipsboot.platforms.regseam import (
    HKCU,
    HKLM,
    REG_EXPAND_SZ,
    REG_MULTI_SZ,
    REG_SZ,
    expand_environment_strings,
)
from fipsboot.platforms.windows import WindowsBackend
from fipsboot.platforms.winkeys import MACHINE_ENVIRONMENT_KEY
from fipsboot.platforms.winservice import ServiceEnvironment
from fipsboot.platforms.winvalues import MachineEnvironment, UserEnvironment
from fipsboot.profile import parse

INSTALL_DIR = "C:\\GCTI\\ORS 8.1.401.11"
SERVICE_KEY = r"SYSTEM\CurrentControlSet\Services\ORS"


@pytest.fixture
def reg():
    fake = FakeRegistry(accounts={"admin": "S-1-5-21-1-2-3-500"}, current_user="admin")
    fake.environment = {"OS": "Windows_NT", "SystemDrive": "C:"}  # what %VAR% expands with
    for root, path in [(HKLM, SERVICE_KEY), (HKLM, MACHINE_ENVIRONMENT_KEY),
                       (HKCU, "Environment")]:
        fake.create_key(root, path)
    return fake


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FIPSBOOT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def profile(server=None, targets=("machine",)):
    raw = {"server": {"platform": "windows", "install-dir": INSTALL_DIR, **(server or {})},
           "account": {"targets": list(targets)}}
    return parse(raw, Path("/tmp/p.toml"))


def fips_values(p):
    return environ.values(resolve(p), environ.FIPS)


# --- 2: fipsboot's literal paths are REG_SZ; verify compares what Windows expands -----------

def test_a_percent_path_is_written_as_reg_sz_even_over_an_expanding_value(reg):
    p = profile({"config-dir": "C:\\GCTI\\CFG%OS%"})
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", "C:\\old.cnf", REG_EXPAND_SZ)
    change = MachineEnvironment(reg).change(fips_values(p))
    assert change.new["OPENSSL_CONF"] == {"type": REG_SZ,
                                          "data": "C:\\GCTI\\CFG%OS%\\openssl.cnf"}
    # A new value with a % too: never REG_EXPAND_SZ.
    assert UserEnvironment(reg, "admin").change(fips_values(p)).new["OPENSSL_CONF"]["type"] == REG_SZ


def test_verify_compares_the_expanded_value(reg):
    p = profile({"config-dir": "C:\\GCTI\\CFG%OS%"})
    want = fips_values(p)
    layout = resolve(p)
    # What a REG_EXPAND_SZ holding fipsboot's text gives a process: CFGWindows_NT, not ours.
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", want["OPENSSL_CONF"],
                  REG_EXPAND_SZ)
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_MODULES", want["OPENSSL_MODULES"],
                  REG_SZ)
    assert MachineEnvironment(reg).read()["OPENSSL_CONF"] == "C:\\GCTI\\CFGWindows_NT\\openssl.cnf"
    check = verify.check_targets(layout, [MachineEnvironment(reg)], environ.FIPS, {})
    assert not check.ok and "OPENSSL_CONF" in check.reason
    # The same text as REG_SZ is exactly the path: it passes; install makes it so.
    change = MachineEnvironment(reg).change(want)
    assert change.changed and change.new["OPENSSL_CONF"]["type"] == REG_SZ
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert verify.check_targets(layout, [MachineEnvironment(reg)], environ.FIPS, {}).ok


def test_an_expanding_value_without_percent_in_ours_keeps_its_type(reg):
    p = profile()
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", "%SystemDrive%\\x.cnf",
                  REG_EXPAND_SZ)
    assert MachineEnvironment(reg).read()["OPENSSL_CONF"] == "C:\\x.cnf"
    change = MachineEnvironment(reg).change(fips_values(p))
    assert change.new["OPENSSL_CONF"]["type"] == REG_EXPAND_SZ


def test_expansion_follows_windows_rules():
    env = {"OS": "Windows_NT", "A": "x"}
    assert expand_environment_strings("%os%\\%A%", env) == "Windows_NT\\x"
    assert expand_environment_strings("%NOPE%%A%", env) == "%NOPE%x"
    assert expand_environment_strings("50%", env) == "50%"
    assert expand_environment_strings("%NOPE%", env) == "%NOPE%"


# --- 3, 6, 7, 11: paths Windows would read as another file are refused, the rule named ------

@pytest.mark.parametrize("key", ["install-dir", "fips-module", "openssl", "config-dir"])
@pytest.mark.parametrize("path", ["\\\\server\\share\\ors", "//server/share/ors",
                                  "\\/server/share/ors", "/\\server\\share\\ors",
                                  "\\\\?\\C:\\ors", "\\\\.\\C:\\ors"])
def test_unc_and_device_paths_are_refused_in_every_spelling(key, path):
    name = {"fips-module": "\\fips.dll", "openssl": "\\openssl.exe"}.get(key, "")
    with pytest.raises(ProfileError, match=f"{key}.*(UNC|device)"):
        profile({key: path + name})


@pytest.mark.parametrize("path, rule", [
    ("C:\\GCTI.\\ORS", "ends in '.'"),
    ("C:\\GCTI \\ORS", "ends in ' '"),
    ('C:\\GC"TI\\ORS', "does not allow"),
    ("C:\\GCTI\\OR|S", "does not allow"),
    ("C:\\GCTI\\a:b", "does not allow"),
    ("C:GCTI", "not an absolute path on a drive"),
])
def test_paths_windows_reads_differently_are_refused_with_the_rule(path, rule):
    with pytest.raises(ProfileError, match="config-dir") as e:
        profile({"config-dir": path})
    assert rule in str(e.value) and path in str(e.value).replace("\\\\", "\\")


def test_non_ascii_paths_are_refused_up_front_with_the_reason():
    with pytest.raises(ProfileError, match="install-dir.*non-ASCII.*ANSI code page"):
        parse({"server": {"platform": "windows", "install-dir": "C:\\GCTI\\José"}},
              Path("/p.toml"))


def test_the_servers_own_options_file_may_be_non_ascii():
    """openssl.exe never opens it: only fipsboot does, with Windows' wide API."""
    switch = {"file": "C:\\GCTI\\José\\ors.cfg", "section": "s", "key": "k"}
    assert profile({"fips-switch": switch}).fips_switch.file == switch["file"]


def test_a_config_dir_whose_staging_passes_max_path_is_refused_naming_the_length():
    long_dir = "C:\\" + "\\".join(["d" * 57] * 3 + ["d" * 56])  # 233: the issue's case
    assert len(long_dir) == 233
    with pytest.raises(ProfileError, match=r"config-dir.*271 characters.*limit of 259"):
        profile({"config-dir": long_dir})
    ok = "C:\\" + "d" * (259 - 38 - 3)
    assert profile({"config-dir": ok}).config_dir == ok


def test_linux_paths_keep_their_rules():
    p = parse({"server": {"platform": "linux", "install-dir": "/opt/José ."}}, Path("/p.toml"))
    assert p.install_dir == "/opt/José ."


# --- 4: environment names ignore case on Windows -------------------------------------------

def test_a_second_spelling_in_the_service_environment_fails_the_targets_check(reg):
    p = profile(targets=["service:ORS"])
    want = fips_values(p)
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  [f"OPENSSL_CONF={want['OPENSSL_CONF']}",
                   f"OPENSSL_MODULES={want['OPENSSL_MODULES']}",
                   "openssl_conf=C:\\evil.cnf"], REG_MULTI_SZ)
    check = verify.check_targets(resolve(p), [ServiceEnvironment(reg, "ORS")], environ.FIPS, {})
    assert not check.ok and "evil" in check.reason
    change = ServiceEnvironment(reg, "ORS").change(want)  # install puts one spelling back
    assert [e for e in change.new["Environment"]["data"] if "evil" in e] == []


@pytest.mark.parametrize("mode", [environ.FIPS, environ.NONFIPS])
def test_run_strips_every_spelling_of_the_variables(mode):
    layout = resolve(profile())
    base = {"Openssl_Conf": "C:\\evil.cnf", "openssl_modules": "C:\\evil", "Path": "C:\\x"}
    env = environ.launch_env(base, layout, mode)
    ours = {k: v for k, v in env.items() if k.upper().startswith("OPENSSL")}
    if mode == environ.FIPS:
        assert ours == fips_values(profile())
    else:
        assert ours == {}
    assert env["Path"] == "C:\\x"


def test_linux_keeps_names_case_sensitive(tmp_path):
    p = parse({"server": {"platform": "linux", "install-dir": "/opt/ors"}}, Path("/p.toml"))
    env = environ.launch_env({"Openssl_Conf": "x"}, resolve(p), environ.NONFIPS)
    assert env["Openssl_Conf"] == "x"


def test_rollback_gives_back_the_exact_spelling_type_and_data(reg, state):
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "Openssl_Conf", "%SystemDrive%\\old.cnf",
                  REG_EXPAND_SZ)
    reg.set_value(HKLM, SERVICE_KEY, "environment",
                  ["LOGDIR=C:\\logs\\0001", "USER_NAME=José", "openssl_modules=C:\\m"],
                  REG_MULTI_SZ)
    before = reg.dump()
    backend = WindowsBackend(reg)
    targets = backend.targets(profile(targets=["service:ORS", "machine"]))
    journal = Journal.for_installation(INSTALL_DIR, backend.stores())
    for values in (fips_values(profile()), {"OPENSSL_CONF": None, "OPENSSL_MODULES": None}):
        changes = [t.change(values) for t in targets]
        with journal.begin("step") as txn:
            for c in changes:
                if c.changed:
                    txn.change(c.kind, c.key, c.new)
    assert "Openssl_Conf" not in reg.values(HKLM, MACHINE_ENVIRONMENT_KEY)
    journal.rollback()
    journal.rollback()
    assert reg.dump() == before
    assert "Openssl_Conf" in reg.values(HKLM, MACHINE_ENVIRONMENT_KEY)


# --- 5: one installation, one journal, one lock ---------------------------------------------

@pytest.mark.parametrize("other", ["c:\\gcti\\ors 8.1.401.11", "C:/GCTI/ORS 8.1.401.11/",
                                   "C:\\GCTI\\\\ORS 8.1.401.11"])
def test_every_spelling_of_the_install_dir_is_one_journal_and_one_lock(other, state):
    assert installation_key(other) == installation_key(INSTALL_DIR)
    first = Journal.for_installation(INSTALL_DIR)
    with first.lock():
        from fipsboot.errors import BusyError

        with pytest.raises(BusyError):
            with Journal.for_installation(other).lock():
                pass


def test_linux_install_dirs_stay_case_sensitive():
    assert installation_key("/opt/ORS") != installation_key("/opt/ors")


def test_a_journal_keyed_as_written_before_is_still_found(state):
    from fipsboot.journal import _written_key

    legacy = state / _written_key(INSTALL_DIR)
    legacy.mkdir(parents=True)
    assert Journal.for_installation(INSTALL_DIR).folder == legacy


# --- 7: openssl.exe that can't start says why -----------------------------------------------

def pe_importing(*dlls: str) -> bytes:
    """A minimal PE32+ image whose import table names `dlls`."""
    image = bytearray(0x400)
    image[:2] = b"MZ"
    struct.pack_into("<I", image, 0x3C, 0x80)
    image[0x80:0x84] = b"PE\0\0"
    coff = 0x84
    struct.pack_into("<HH", image, coff, 0x8664, 1)
    struct.pack_into("<H", image, coff + 16, 240)
    optional = coff + 20
    struct.pack_into("<H", image, optional, 0x20B)
    struct.pack_into("<II", image, optional + 112 + 8, 0x1000, 20 * (len(dlls) + 1))
    section = optional + 240
    struct.pack_into("<IIII", image, section + 8, 0x200, 0x1000, 0x200, 0x200)
    names = 0x1000 + 20 * (len(dlls) + 1)
    for i, dll in enumerate(dlls):
        struct.pack_into("<I", image, 0x200 + 20 * i + 12, names)
        start = names - 0x1000 + 0x200
        image[start:start + len(dll) + 1] = dll.encode() + b"\0"
        names += len(dll) + 1
    return bytes(image)


def test_a_missing_dll_is_named(tmp_path):
    tools, system = tmp_path / "tools", tmp_path / "system32"
    tools.mkdir()
    system.mkdir()
    (tools / "openssl.exe").write_bytes(pe_importing("libcrypto-3-x64.dll", "KERNEL32.dll",
                                                     "libssl-3-x64.dll"))
    (tools / "libssl-3-x64.dll").write_bytes(pe_importing("libcrypto-3-x64.dll", "WS2_32.dll"))
    (system / "kernel32.dll").write_bytes(b"")
    (system / "ws2_32.dll").write_bytes(b"")
    reason = winstart.explain(tools / "openssl.exe", [system], 53)  # Wine's status
    assert reason == ("openssl.exe could not start: missing libcrypto-3-x64.dll "
                      "(needed by openssl.exe)")
    (tools / "LIBCRYPTO-3-x64.dll").write_bytes(pe_importing("KERNEL32.dll"))
    assert "STATUS_DLL_NOT_FOUND" in winstart.explain(tools / "openssl.exe", [system],
                                                      0xC0000135)
    assert winstart.explain(tools / "openssl.exe", [system], 1) is None  # it ran


def test_the_probe_reports_the_missing_dll(tmp_path, monkeypatch):
    """Through OpenSSL.run_together: the check that fails names the DLL, not "failed (53)"."""
    from fipsboot import processes
    from fipsboot.openssl import OpenSSL
    from fipsboot.processes import Result

    prefix = tmp_path / "prefix"
    tools = prefix / "dosdevices" / "c:" / "GCTI" / "ORS 8.1.401.11" / "tools"
    tools.mkdir(parents=True)
    (prefix / "drive_c" / "windows" / "system32").mkdir(parents=True)
    (tools / "openssl.exe").write_bytes(pe_importing("libcrypto-3-x64.dll"))
    monkeypatch.setenv("WINEPREFIX", str(prefix))
    monkeypatch.setattr(processes, "run_together",
                        lambda jobs, *a: [Result(list(j[0]), 53, "", "") for j in jobs])
    layout = resolve(profile({"launcher": ["wine"]}))
    with pytest.raises(OpenSSLError, match="missing libcrypto-3-x64.dll") as e:
        OpenSSL(layout, {}).run(["list", "-providers"], {})
    assert "tools" in e.value.fix
    checks = verify.live_checks(OpenSSL(layout, {}), {}, sha256=False)
    assert "could not start" in checks[0].reason and "reinstall" not in checks[0].fix
