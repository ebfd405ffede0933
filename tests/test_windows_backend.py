"""The Windows backend against an in-memory registry (the real one exists only on Windows),
and its launch, which also runs on Linux (the Windows installation under Wine)."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
from fakeregistry import FakeRegistry

from fipsboot import environ
from fipsboot.errors import FipsbootError, HandEditError
from fipsboot.journal import Journal
from fipsboot.layout import resolve
from fipsboot.platforms import backend_for
from fipsboot.platforms.regseam import (
    HKCU,
    HKLM,
    HKU,
    REG_EXPAND_SZ,
    REG_MULTI_SZ,
    REG_SZ,
)
from fipsboot.platforms.windows import WindowsBackend
from fipsboot.platforms.wineregistry import WineRegistry
from fipsboot.platforms.winkeys import MACHINE_ENVIRONMENT_KEY
from fipsboot.platforms.winregistry import WinRegistry
from fipsboot.platforms.winservice import ServiceEnvironment
from fipsboot.platforms.winvalues import MachineEnvironment, UserEnvironment
from fipsboot.profile import parse

INSTALL_DIR = "C:\\GCTI\\ORS 8.1.401.11"
CNF = INSTALL_DIR + "\\openssl.cnf"
MODULES = INSTALL_DIR + "\\fips"
SERVICE_KEY = r"SYSTEM\CurrentControlSet\Services\ORS"
SVC_SID = "S-1-5-21-1004336348-1177238915-682003330-1001"
ADMIN_SID = "S-1-5-21-1004336348-1177238915-682003330-500"
FIPS = {"OPENSSL_CONF": CNF, "OPENSSL_MODULES": MODULES}
NONFIPS = {"OPENSSL_CONF": None, "OPENSSL_MODULES": None}


@pytest.fixture
def reg():
    """A registry as a fresh Windows has it, with the ORS service and svc_ors logged on."""
    fake = FakeRegistry(accounts={"svc_ors": SVC_SID, "admin": ADMIN_SID}, current_user="admin")
    for root, path in [(HKLM, SERVICE_KEY), (HKLM, MACHINE_ENVIRONMENT_KEY),
                       (HKU, SVC_SID + "\\Environment"), (HKCU, "Environment")]:
        fake.create_key(root, path)
    fake.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "Path", "C:\\Windows\\system32", REG_EXPAND_SZ)
    return fake


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("FIPSBOOT_STATE_DIR", str(tmp_path / "state"))
    return tmp_path / "state"


def profile(targets):
    raw = {"server": {"platform": "windows", "install-dir": INSTALL_DIR},
           "account": {"targets": targets}}
    return parse(raw, Path("/tmp/p.toml"))


def service_env(reg):
    return reg.get_value(HKLM, SERVICE_KEY, "Environment")


# --- the targets the profile names --------------------------------------------------------

def test_backend_builds_the_profiles_targets():
    p = profile(["service:ORS", "user:svc_ors", "machine"])
    backend = backend_for(p)
    assert isinstance(backend, WindowsBackend) and backend.name == "windows"
    targets = backend.targets(p)
    assert [type(t) for t in targets] == [ServiceEnvironment, UserEnvironment, MachineEnvironment]
    assert [t.spec for t in targets] == ["service:ORS", "user:svc_ors", "machine"]


@pytest.mark.skipif(sys.platform == "win32", reason="Wine is driven from Linux")
def test_each_profile_gets_its_own_registry_and_nothing_is_left_behind():
    """The registry is picked per profile and handed to the backend, its targets and its
    store: a Wine profile's is its prefix's, and a later profile without a launcher gets the
    machine's own registry again (no global remembers the earlier pick)."""
    raw = {"server": {"platform": "windows", "install-dir": INSTALL_DIR, "launcher": ["wine"]},
           "account": {"targets": ["machine"]}}
    under_wine = backend_for(parse(raw, Path("/tmp/p.toml")))
    assert isinstance(under_wine.registry, WineRegistry)
    assert under_wine.registry.launcher == ["wine"]
    (target,) = under_wine.targets(parse(raw, Path("/tmp/p.toml")))
    assert target.registry is under_wine.registry
    assert under_wine.stores()["registry"].registry is under_wine.registry
    native = backend_for(profile(["machine"]))
    assert type(native.registry) is WinRegistry


def test_the_fips_values_for_a_windows_layout_are_the_ones_tested_here():
    assert environ.values(resolve(profile([])), environ.FIPS) == FIPS


# --- service:NAME -------------------------------------------------------------------------

def test_service_environment_is_created(reg):
    change = ServiceEnvironment(reg, "ORS").change(FIPS)
    assert (change.kind, change.key, change.action) == ("registry", "service:ORS", "create")
    assert change.old is None
    assert change.new == {"Environment": {"type": REG_MULTI_SZ, "data": [
        f"OPENSSL_CONF={CNF}", f"OPENSSL_MODULES={MODULES}"]}}
    assert change.variables == {"OPENSSL_CONF": [None, CNF], "OPENSSL_MODULES": [None, MODULES]}
    assert change.notes == ["restart service ORS for the server to get the new environment"]
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert service_env(reg) == ([f"OPENSSL_CONF={CNF}", f"OPENSSL_MODULES={MODULES}"],
                                REG_MULTI_SZ)
    assert ServiceEnvironment(reg, "ORS").read() == FIPS


def test_service_merge_keeps_other_entries_in_order(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  ["TZ=UTC", "OPENSSL_CONF=C:\\old\\openssl.cnf", "GCTI_LOG=D:\\logs"],
                  REG_MULTI_SZ)
    target = ServiceEnvironment(reg, "ORS")
    change = target.change(FIPS)
    assert change.action == "update"
    assert change.new["Environment"]["data"] == [
        "TZ=UTC", f"OPENSSL_CONF={CNF}", "GCTI_LOG=D:\\logs", f"OPENSSL_MODULES={MODULES}"]
    assert change.variables["OPENSSL_CONF"] == ["C:\\old\\openssl.cnf", CNF]
    assert change.managed_now != change.managed_new


def test_service_names_match_any_case_and_duplicates_go(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  ["openssl_conf=C:\\old.cnf", "A=1", "OPENSSL_CONF=C:\\other.cnf"], REG_MULTI_SZ)
    # Issue 17 (4): two spellings with different values are ambiguous, never "the first".
    assert ServiceEnvironment(reg, "ORS").read()["OPENSSL_CONF"].startswith("<ambiguous")
    change = ServiceEnvironment(reg, "ORS").change({"OPENSSL_CONF": CNF})
    assert change.new["Environment"]["data"] == [f"OPENSSL_CONF={CNF}", "A=1"]


def test_service_already_right_is_unchanged(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  ["A=1", f"OPENSSL_MODULES={MODULES}", f"OPENSSL_CONF={CNF}"], REG_MULTI_SZ)
    change = ServiceEnvironment(reg, "ORS").change(FIPS)
    assert change.action == "unchanged" and change.managed_now == change.managed_new


def test_service_non_fips_removes_only_our_entries(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  ["TZ=UTC", f"OPENSSL_CONF={CNF}", f"OPENSSL_MODULES={MODULES}", "B=2"],
                  REG_MULTI_SZ)
    change = ServiceEnvironment(reg, "ORS").change(NONFIPS)
    assert change.new == {"Environment": {"type": REG_MULTI_SZ, "data": ["TZ=UTC", "B=2"]}}
    assert change.variables == {"OPENSSL_CONF": [CNF, None], "OPENSSL_MODULES": [MODULES, None]}


def test_service_value_that_existed_stays_even_when_emptied(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment", [f"OPENSSL_CONF={CNF}"], REG_MULTI_SZ)
    change = ServiceEnvironment(reg, "ORS").change(NONFIPS)
    assert change.new == {"Environment": {"type": REG_MULTI_SZ, "data": []}}


def test_service_without_environment_stays_without_one(reg):
    change = ServiceEnvironment(reg, "ORS").change(NONFIPS)
    assert change.old is None and change.new is None and change.action == "unchanged"


def test_missing_service_is_a_clear_error(reg):
    with pytest.raises(FipsbootError, match=r"service:NOPE: no such service"):
        ServiceEnvironment(reg, "NOPE").change(FIPS)
    with pytest.raises(FipsbootError, match="no such service"):
        WindowsBackend(reg).stores()["registry"].get("service:NOPE")


def test_service_environment_of_another_type_is_refused(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment", "OPENSSL_CONF=x", REG_SZ)
    with pytest.raises(FipsbootError, match="not REG_MULTI_SZ"):
        ServiceEnvironment(reg, "ORS").change(FIPS)


# --- user:NAME ----------------------------------------------------------------------------

def test_user_environment_goes_to_the_accounts_hive(reg):
    change = UserEnvironment(reg, "svc_ors").change(FIPS)
    assert (change.kind, change.key, change.action) == ("registry", "user:svc_ors", "create")
    assert change.new == {"OPENSSL_CONF": {"type": REG_SZ, "data": CNF},
                          "OPENSSL_MODULES": {"type": REG_SZ, "data": MODULES}}
    assert "svc_ors must log on again" in change.notes[0]
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert reg.values(HKU, SVC_SID + "\\Environment") == {
        "OPENSSL_CONF": (CNF, REG_SZ), "OPENSSL_MODULES": (MODULES, REG_SZ)}
    assert reg.values(HKCU, "Environment") == {}


def test_user_keeps_the_existing_value_type(reg):
    reg.set_value(HKU, SVC_SID + "\\Environment", "OPENSSL_CONF", "%SystemDrive%\\old.cnf",
                  REG_EXPAND_SZ)
    reg.set_value(HKU, SVC_SID + "\\Environment", "TEMP", "%USERPROFILE%\\Temp", REG_EXPAND_SZ)
    change = UserEnvironment(reg, "svc_ors").change(FIPS)
    assert change.old == {"OPENSSL_CONF": {"type": REG_EXPAND_SZ,
                                           "data": "%SystemDrive%\\old.cnf"}}
    assert change.new["OPENSSL_CONF"] == {"type": REG_EXPAND_SZ, "data": CNF}
    assert change.variables["OPENSSL_CONF"] == ["%SystemDrive%\\old.cnf", CNF]


def test_current_user_goes_to_hkcu(reg):
    change = UserEnvironment(reg, "ADMIN").change(FIPS)  # account names ignore case
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert reg.values(HKCU, "Environment") == {
        "OPENSSL_CONF": (CNF, REG_SZ), "OPENSSL_MODULES": (MODULES, REG_SZ)}


def test_hive_not_loaded_is_a_clear_error(reg):
    reg.accounts["ors2"] = "S-1-5-21-1-2-3-1002"
    with pytest.raises(FipsbootError, match=r"hive is not loaded \(HKU\\S-1-5-21-1-2-3-1002"):
        UserEnvironment(reg, "ors2").change(FIPS)


def test_unknown_account_is_an_error(reg):
    with pytest.raises(FipsbootError, match="no such account"):
        UserEnvironment(reg, "nobody").read()


def test_user_non_fips_removes_only_our_values(reg):
    env = SVC_SID + "\\Environment"
    reg.set_value(HKU, env, "OPENSSL_CONF", CNF, REG_SZ)
    reg.set_value(HKU, env, "TEMP", "%USERPROFILE%\\Temp", REG_EXPAND_SZ)
    change = UserEnvironment(reg, "svc_ors").change(NONFIPS)
    assert (change.action, change.new) == ("remove", None)
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert reg.values(HKU, env) == {"TEMP": ("%USERPROFILE%\\Temp", REG_EXPAND_SZ)}


# --- machine ------------------------------------------------------------------------------

def test_machine_environment(reg):
    change = MachineEnvironment(reg).change(FIPS)
    assert (change.kind, change.key, change.action) == ("registry", "machine", "create")
    store = WindowsBackend(reg).stores()["registry"]
    store.set(change.key, change.new)
    assert reg.values(HKLM, MACHINE_ENVIRONMENT_KEY) == {
        "Path": ("C:\\Windows\\system32", REG_EXPAND_SZ),
        "OPENSSL_CONF": (CNF, REG_SZ), "OPENSSL_MODULES": (MODULES, REG_SZ)}
    removal = MachineEnvironment(reg).change(NONFIPS)
    store.set(removal.key, removal.new)
    assert reg.values(HKLM, MACHINE_ENVIRONMENT_KEY) == {
        "Path": ("C:\\Windows\\system32", REG_EXPAND_SZ)}


@pytest.mark.parametrize("make", [lambda r: ServiceEnvironment(r, "ORS"),
                                  lambda r: UserEnvironment(r, "svc_ors"),
                                  MachineEnvironment], ids=["service:ORS", "user:svc_ors", "machine"])
def test_ld_library_path_is_never_written(reg, make):
    change = make(reg).change({**FIPS, "LD_LIBRARY_PATH": "C:\\x"})
    assert set(change.variables) == {"OPENSSL_CONF", "OPENSSL_MODULES"}
    assert "LD_LIBRARY_PATH" not in json.dumps(change.new)
    WindowsBackend(reg).stores()["registry"].set(change.key, change.new)
    assert "LD_LIBRARY_PATH" not in repr(reg.dump())


# --- the journal's store: exact round trips -------------------------------------------------

def test_store_round_trip_is_exact(reg):
    reg.set_value(HKLM, SERVICE_KEY, "Environment", ["Z=1", "OPENSSL_CONF=a"], REG_MULTI_SZ)
    reg.set_value(HKU, SVC_SID + "\\Environment", "OPENSSL_MODULES", "%X%\\m", REG_EXPAND_SZ)
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", "C:\\m.cnf", REG_SZ)
    store = WindowsBackend(reg).stores()["registry"]
    keys = ["service:ORS", "user:svc_ors", "machine", "user:admin"]
    before = reg.dump()
    snapshots = {k: json.loads(json.dumps(store.get(k))) for k in keys}  # as the journal keeps them
    assert snapshots["service:ORS"] == {"Environment": {"type": REG_MULTI_SZ,
                                                        "data": ["Z=1", "OPENSSL_CONF=a"]}}
    assert snapshots["user:svc_ors"] == {"OPENSSL_MODULES": {"type": REG_EXPAND_SZ,
                                                             "data": "%X%\\m"}}
    assert snapshots["user:admin"] is None
    for key in keys:
        target = WindowsBackend(reg).targets(profile([key]))[0]
        change = target.change(FIPS)
        store.set(key, change.new)
    assert reg.dump() != before
    for key in keys:
        store.set(key, snapshots[key])
        assert store.get(key) == snapshots[key]
    assert reg.dump() == before


@pytest.mark.parametrize("key", ["service:ORS", "user:svc_ors", "machine"])
def test_absent_created_restored_to_absent(reg, key):
    store = WindowsBackend(reg).stores()["registry"]
    before = reg.dump()
    assert store.get(key) is None
    change = WindowsBackend(reg).targets(profile([key]))[0].change(FIPS)
    store.set(key, change.new)
    assert store.get(key) == change.new
    store.set(key, None)
    assert store.get(key) is None and reg.dump() == before


def test_store_refuses_a_snapshot_for_another_target(reg):
    with pytest.raises(FipsbootError, match="does not manage"):
        WindowsBackend(reg).stores()["registry"].set(
            "machine", {"Environment": {"type": REG_MULTI_SZ, "data": ["A=1"]}})


# --- after_apply: WM_SETTINGCHANGE --------------------------------------------------------

@pytest.mark.parametrize("targets, broadcasts", [
    (["machine"], 1), (["user:svc_ors"], 1), (["service:ORS"], 0),
    (["service:ORS", "machine", "user:svc_ors"], 1)])
def test_broadcast_follows_machine_and_user_changes_only(reg, targets, broadcasts):
    backend = WindowsBackend(reg)
    changes = [t.change(FIPS) for t in backend.targets(profile(targets))]
    notes = backend.after_apply(changes)
    assert reg.broadcasts == broadcasts
    assert bool(notes) == bool(broadcasts)


def test_no_broadcast_when_nothing_changed(reg):
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", CNF, REG_SZ)
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_MODULES", MODULES, REG_SZ)
    backend = WindowsBackend(reg)
    assert backend.after_apply([MachineEnvironment(reg).change(FIPS)]) == []
    assert reg.broadcasts == 0


# --- end to end through the journal -------------------------------------------------------

def apply_through_journal(backend, targets, desired):
    journal = Journal.for_installation(INSTALL_DIR, backend.stores())
    changes = [t.change(desired) for t in targets]
    with journal.begin("install") as txn:
        for change in changes:
            if change.changed:
                txn.change(change.kind, change.key, change.new)
    return journal, changes


def test_journal_rollback_restores_the_registry_exactly(reg, state):
    reg.set_value(HKLM, SERVICE_KEY, "Environment",
                  ["TZ=UTC", "OPENSSL_CONF=C:\\old.cnf"], REG_MULTI_SZ)
    reg.set_value(HKU, SVC_SID + "\\Environment", "OPENSSL_CONF", "%OLD%", REG_EXPAND_SZ)
    before = reg.dump()
    backend = WindowsBackend(reg)
    targets = backend.targets(profile(["service:ORS", "user:svc_ors", "machine"]))
    journal, _ = apply_through_journal(backend, targets, FIPS)
    assert [t.read() for t in targets] == [FIPS] * 3
    assert (state / journal.folder.name / "journal.json").exists()
    Journal.for_installation(INSTALL_DIR, backend.stores()).rollback()  # a later process
    assert reg.dump() == before


def test_a_hand_edit_after_apply_stops_the_rollback(reg, state):
    backend = WindowsBackend(reg)
    journal, _ = apply_through_journal(backend, [MachineEnvironment(reg)], FIPS)
    reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", "C:\\by-hand.cnf", REG_SZ)
    edited = reg.dump()
    with pytest.raises(HandEditError, match="machine"):
        journal.rollback()
    assert reg.dump() == edited


def test_install_then_reset_then_rollback_twice(reg, state):
    backend = WindowsBackend(reg)
    targets = backend.targets(profile(["service:ORS", "machine"]))
    before = reg.dump()
    apply_through_journal(backend, targets, FIPS)
    after_install = reg.dump()
    journal, _ = apply_through_journal(backend, targets, NONFIPS)
    assert service_env(reg) == ([], REG_MULTI_SZ)
    journal.rollback()
    assert reg.dump() == after_install
    journal.rollback()
    assert reg.dump() == before


def test_failure_inside_the_transaction_restores_the_registry(reg, state):
    before = reg.dump()
    backend = WindowsBackend(reg)
    journal = Journal.for_installation(INSTALL_DIR, backend.stores())
    change = MachineEnvironment(reg).change(FIPS)
    with pytest.raises(RuntimeError):
        with journal.begin("install") as txn:
            txn.change(change.kind, change.key, change.new)
            raise RuntimeError("verification failed")
    assert reg.dump() == before


# --- the real registry off Windows -------------------------------------------------------

@pytest.mark.skipif(sys.platform == "win32", reason="checks the behaviour off Windows")
def test_real_registry_off_windows_says_so():
    real = WinRegistry()
    assert real.broadcast_setting_change() is False
    with pytest.raises(FipsbootError, match="only be reached on Windows"):
        real.get_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF")


def test_fake_refuses_what_the_registry_could_not_give_back(reg):
    with pytest.raises(FipsbootError, match="NUL"):
        reg.set_value(HKLM, MACHINE_ENVIRONMENT_KEY, "OPENSSL_CONF", "a\0b", REG_SZ)
    with pytest.raises(FipsbootError, match="key does not exist"):
        reg.set_value(HKLM, r"SYSTEM\CurrentControlSet\Services\NOPE", "Environment", [],
                      REG_MULTI_SZ)


# --- launch -------------------------------------------------------------------------------

def test_launch_returns_the_servers_exit_code():
    argv = [sys.executable, "-c", "import sys; sys.exit(7)"]
    assert WindowsBackend(FakeRegistry()).launch(argv, {"PATH": ""}) == 7


def test_launch_passes_the_environment():
    code = "import os, sys; sys.exit(0 if os.environ.get('OPENSSL_CONF') == 'x' else 1)"
    assert WindowsBackend(FakeRegistry()).launch([sys.executable, "-c", code], {"OPENSSL_CONF": "x"}) == 0


def test_launch_of_a_missing_program_is_a_clear_error(tmp_path):
    with pytest.raises(FipsbootError, match="cannot start"):
        WindowsBackend(FakeRegistry()).launch([str(tmp_path / "no-such-server.exe")], {})


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_launch_forwards_ctrl_c_to_the_server(tmp_path):
    ready = tmp_path / "ready"
    child = (
        "import signal, sys, time, pathlib\n"
        "signal.signal(signal.SIGINT, lambda *a: sys.exit(3))\n"
        f"pathlib.Path({str(ready)!r}).touch()\n"
        "time.sleep(30)\n"
        "sys.exit(9)\n")

    def press_ctrl_c():
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Like a terminal's Ctrl-C: to fipsboot only (the server has its own session).
        os.kill(os.getpid(), signal.SIGINT)

    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when the suite runs under nohup or &
    presser = threading.Thread(target=press_ctrl_c)
    presser.start()
    try:
        code = WindowsBackend(FakeRegistry()).launch([sys.executable, "-c", child], {})
    finally:
        presser.join()
    assert code == 3
    assert signal.getsignal(signal.SIGINT) is before  # the handler that was there, given back


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_launch_reports_a_server_killed_by_a_signal_as_128_plus_n():
    argv = [sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"]
    assert WindowsBackend(FakeRegistry()).launch(argv, {}) == 128 + signal.SIGTERM
