"""Each journal store on its own, on a temp folder (no OpenSSL, no server): the file store,
the folder store, the server's INI value and the adapter that makes any get/set store (the
Windows registry, tests/fakestore.py) a journal store; then files through the journal itself,
including a journal.json as the earlier fipsboot wrote it.

What a user relies on: a file's bytes, mode and owner before a change come back exactly after
a rollback; a link or FIFO in a file's place is refused, never followed; a set-id bit is never
handed back; a folder fipsboot created goes again, one that holds someone else's file stays; a
hand edit is seen; a forced rollback keeps what it overwrote.
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from fakestore import KIND, FakeStore

from fipsboot import fsutil
from fipsboot.backups import Backups
from fipsboot.errors import FipsbootError, HandEditError
from fipsboot.filestore import FileStore, FolderStore
from fipsboot.inifile import STORE as INI
from fipsboot.inifile import IniStore, store_key
from fipsboot.journal import Journal
from fipsboot.stores import ValueStore, journal_stores

OTHER = (12345, 23456)  # an owner that is not root's (chown needs root: the tests run as root)
ROOT = os.geteuid() == 0


@pytest.fixture
def state(tmp_path) -> Path:
    folder = tmp_path / "state"
    fsutil.make_or_verify_dir(folder, 0o755)
    return folder


@pytest.fixture
def backups(state) -> Backups:
    return Backups(state)


@pytest.fixture
def target(tmp_path) -> Path:
    path = tmp_path / "etc" / "ors.cfg"
    path.parent.mkdir()
    path.write_bytes(b"old bytes\n")
    path.chmod(0o640)
    return path


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def entry_of(store, kind: str, key: str, backups: Backups, checkpoint: int = 1, n: int = 0):
    return {"kind": kind, "key": key, **store.snapshot(key, backups.slot(checkpoint, n))}


# --- the file store --------------------------------------------------------------------------

def test_file_snapshot_then_restore_gives_back_bytes_mode_and_owner(target, backups):
    files = FileStore()
    if ROOT:
        os.chown(target, *OTHER)
    entry = entry_of(files, "file", str(target), backups)
    assert entry["backup"] == "1/0" and entry["mode"] == 0o640
    assert entry["owner"] == [target.stat().st_uid, target.stat().st_gid]
    saved = backups.folder / "1" / "0"
    assert saved.read_bytes() == b"old bytes\n" and mode_of(saved) == 0o600
    assert mode_of(backups.folder) == 0o700 and mode_of(saved.parent) == 0o700
    assert files.problem(entry, 1) is None

    files.change(str(target), b"new\n", mode=0o644)
    assert target.read_bytes() == b"new\n" and mode_of(target) == 0o644
    target.chmod(0o666)
    if ROOT:
        os.chown(target, 0, 0)
    files.restore(entry, backups)
    assert target.read_bytes() == b"old bytes\n" and mode_of(target) == 0o640
    if ROOT:
        assert (target.stat().st_uid, target.stat().st_gid) == OTHER
    files.restore(entry, backups)  # idempotent
    assert target.read_bytes() == b"old bytes\n"


def test_file_that_was_not_there_is_removed_by_restore(tmp_path, backups):
    files, path = FileStore(), tmp_path / "new.conf"
    entry = entry_of(files, "file", str(path), backups)
    assert entry == {"kind": "file", "key": str(path), "backup": None, "mode": None,
                     "owner": None}
    assert not backups.folder.exists()  # nothing to back up: no backup written
    files.change(str(path), b"x")
    files.restore(entry, backups)
    assert not path.exists()
    files.restore(entry, backups)  # already gone: fine


def test_file_digest_is_what_after_records_and_keep_is_the_bytes(target):
    files = FileStore()
    assert files.digest(str(target)) == files.after(b"old bytes\n") == fsutil.digest(b"old bytes\n")
    assert files.digest(str(target.with_name("absent"))) is None == files.after(None)
    assert files.keep({"key": str(target)}) == (b"old bytes\n", "ors.cfg")
    assert files.keep({"key": str(target.with_name("absent"))}) is None


def test_file_change_none_removes_and_a_new_file_needs_its_folder(tmp_path):
    files, path = FileStore(), tmp_path / "a" / "b.conf"
    assert files.needs(str(path), b"x") == [("dir", str(path.parent), True)]
    assert files.needs(str(path), None) == []
    path.parent.mkdir()
    files.change(str(path), b"x")
    assert mode_of(path) == 0o644
    files.change(str(path), None)
    assert not path.exists()


def test_set_id_bits_are_never_recorded_nor_restored(target, backups):
    files = FileStore()
    target.chmod(0o4755 | stat.S_ISGID)
    entry = entry_of(files, "file", str(target), backups)
    assert entry["mode"] == 0o755 and files.problem(entry, 1) is None
    target.write_bytes(b"changed")
    files.restore(entry, backups)
    assert mode_of(target) == 0o755
    assert "set-id" in files.problem({**entry, "mode": 0o4755}, 1)


def test_a_link_in_the_files_place_is_refused_never_followed(tmp_path, target, backups):
    files, link = FileStore(), tmp_path / "etc" / "link.cfg"
    link.symlink_to(target)
    with pytest.raises(FipsbootError, match="symbolic link"):
        files.snapshot(str(link), backups.slot(1, 0))
    with pytest.raises(FipsbootError, match="symbolic link"):
        files.digest(str(link))
    entry = {"kind": "file", "key": str(link), "backup": "1/0", "mode": 0o600, "owner": [0, 0]}
    Backups(backups.state_folder).slot(1, 0).save(b"planted")
    with pytest.raises(FipsbootError, match="symbolic link"):
        files.restore(entry, backups)
    assert target.read_bytes() == b"old bytes\n" and mode_of(target) == 0o640
    assert link.is_symlink()


def test_a_fifo_in_the_files_place_is_refused_without_hanging(tmp_path, backups):
    files, fifo = FileStore(), tmp_path / "fifo.cfg"
    os.mkfifo(fifo)
    with pytest.raises(FipsbootError, match="FIFO"):
        files.snapshot(str(fifo), backups.slot(1, 0))
    with pytest.raises(FipsbootError, match="FIFO"):
        files.keep({"key": str(fifo)})


def test_a_file_with_a_second_name_is_not_restored(tmp_path, target, backups):
    files = FileStore()
    entry = entry_of(files, "file", str(target), backups)
    target.write_bytes(b"new")
    os.link(target, tmp_path / "second-name")
    with pytest.raises(FipsbootError, match="hard links"):
        files.restore(entry, backups)
    assert (tmp_path / "second-name").read_bytes() == b"new"


def test_a_missing_or_untrusted_backup_is_an_error(target, backups):
    files = FileStore()
    entry = entry_of(files, "file", str(target), backups)
    (backups.folder / "1" / "0").chmod(0o666)
    with pytest.raises(FipsbootError, match="writable by group or others"):
        files.restore(entry, backups)
    (backups.folder / "1" / "0").unlink()
    with pytest.raises(FipsbootError, match="backup 1/0 is missing"):
        files.restore(entry, backups)


@pytest.mark.parametrize("fields, message", [
    ({"key": "etc/ors.cfg"}, "not an absolute path"),
    ({"backup": "2/0"}, "not a backup of this checkpoint"),
    ({"backup": "1/../../etc/shadow"}, "not a backup of this checkpoint"),
    ({"mode": 0o2755}, "set-id"),
    ({"mode": "0644"}, "mode"),
    ({"owner": [0]}, "owner"),
    ({"after": "x" * 64}, "digest"),
])
def test_file_entries_fipsboot_did_not_write_are_refused(fields, message):
    entry = {"kind": "file", "key": "/etc/ors.cfg", "backup": "1/0", "mode": 0o644,
             "owner": [0, 0], "after": "0" * 64, **fields}
    assert message in FileStore().problem(entry, 1)


def test_sweep_removes_only_the_files_own_temp_files(target):
    mine = target.with_name(f".{target.name}.0a1b2c3d{fsutil.TMP_SUFFIX}")
    other = target.with_name(f".other.0a1b2c3d{fsutil.TMP_SUFFIX}")
    mine.write_text("half")
    other.write_text("half")
    FileStore().sweep({"key": str(target)})
    assert not mine.exists() and other.exists()


# --- the folder store ------------------------------------------------------------------------

def test_folder_store_records_only_a_missing_folder_and_removes_it_when_empty(tmp_path, backups):
    folders, new = FolderStore(), tmp_path / "a" / "b"
    assert folders.needs(str(new), True) == [("dir", str(tmp_path / "a"), True)]
    assert folders.needs(str(tmp_path / "a"), True) == []
    assert folders.snapshot(str(tmp_path), backups.slot(1, 0)) is None  # exists: not ours
    assert folders.snapshot(str(tmp_path / "a"), backups.slot(1, 0)) == {}
    folders.change(str(tmp_path / "a"), True)
    assert mode_of(tmp_path / "a") == 0o755
    (tmp_path / "a" / "someone-elses").write_text("x")
    folders.restore({"kind": "dir", "key": str(tmp_path / "a")}, backups)
    assert (tmp_path / "a" / "someone-elses").exists()  # not empty: left alone
    (tmp_path / "a" / "someone-elses").unlink()
    folders.restore({"kind": "dir", "key": str(tmp_path / "a")}, backups)
    assert not (tmp_path / "a").exists()
    folders.restore({"kind": "dir", "key": str(tmp_path / "a")}, backups)  # gone: fine
    assert folders.problem({"kind": "dir", "key": "rel/dir"}, 1)
    assert not folders.follow_up and not folders.detects_edits


# --- the INI value and the get/set adapter -----------------------------------------------------

def test_ini_value_snapshot_restore_digest_and_keep(tmp_path, backups):
    cfg = tmp_path / "ors.cfg"
    cfg.write_bytes(b"# kept\n[scxml]\nother = 1\n")
    ini = journal_stores()[INI]
    key = store_key(cfg, "scxml", "fips-enabled")
    entry = entry_of(ini, INI, key, backups)
    assert entry["before"] == {"value": None, "section": True} and ini.problem(entry, 1) is None
    new = {"value": "true", "section": True}
    ini.change(key, new)
    assert cfg.read_bytes() == b"# kept\n[scxml]\nother = 1\nfips-enabled = true\n"
    assert ini.digest(key) == ini.after(new) == new
    data, name = ini.keep(entry)
    assert name == "ini.json" and json.loads(data)["value"] == new
    ini.restore(entry, backups)
    assert cfg.read_bytes() == b"# kept\n[scxml]\nother = 1\n"


def test_ini_sweep_removes_a_killed_writes_temp_file(tmp_path):
    cfg = tmp_path / "ors.cfg"
    cfg.write_text("[s]\n")
    temp = tmp_path / f".ors.cfg.0a1b2c3d{fsutil.TMP_SUFFIX}"
    temp.write_text("half")
    journal_stores()[INI].sweep({"key": store_key(cfg, "s", "k")})
    assert not temp.exists()
    assert isinstance(journal_stores()[INI].values, IniStore)


def test_value_adapter_records_before_and_sets_it_back(tmp_path, backups):
    fake = FakeStore(tmp_path / "values.json")
    fake.set("a", "old")
    store = ValueStore(KIND, fake)
    entry = entry_of(store, KIND, "a", backups)
    assert entry == {"kind": KIND, "key": "a", "before": "old"}
    store.change("a", "new")
    assert store.digest("a") == store.after("new") == "new"
    assert json.loads(store.keep(entry)[0]) == {"kind": KIND, "key": "a", "value": "new"}
    store.restore(entry, backups)
    assert fake.values() == {"a": "old"}
    store.restore({"kind": KIND, "key": "b", "before": None}, backups)  # absent: deleted
    assert "records no value before" in store.problem({"kind": KIND, "key": "a"}, 1)
    store.sweep(entry)  # a store with nothing to sweep


def test_journal_stores_adapts_get_set_stores_and_keeps_full_ones(tmp_path):
    fake = FakeStore(tmp_path / "values.json")
    stores = journal_stores({KIND: fake, "whole": FolderStore()})
    assert {"file", "dir", INI, KIND, "whole"} <= set(stores)
    assert isinstance(stores[KIND], ValueStore) and stores[KIND].values is fake
    assert isinstance(stores["whole"], FolderStore)


# --- files through the journal ---------------------------------------------------------------

@pytest.fixture
def journal(state) -> Journal:
    return Journal(state / "installation")


def install(journal: Journal, path: Path, data: bytes) -> None:
    with journal.lock(), journal.begin("install") as txn:
        txn.change("file", str(path), data, mode=None, owner=None)
        txn.commit(mode="fips", managed={str(path): fsutil.digest(data)})


def test_a_file_write_is_journaled_and_rolled_back_with_the_folders_it_made(tmp_path, journal):
    path = tmp_path / "etc" / "x" / "y" / "drop.conf"
    (tmp_path / "etc").mkdir()
    install(journal, path, b"fips\n")
    (cp,) = json.loads((journal.folder / "journal.json").read_text())["checkpoints"]
    assert [(e["kind"], e["key"]) for e in cp["entries"]] == [
        ("dir", str(tmp_path / "etc" / "x")), ("dir", str(path.parent)), ("file", str(path))]
    assert cp["entries"][2]["after"] == fsutil.digest(b"fips\n")
    assert "after" not in cp["entries"][0]
    assert journal.follow_up == [["file", str(path)]]  # a folder needs no follow-up
    with journal.lock():
        journal.rollback()
    assert not (tmp_path / "etc" / "x").exists() and (tmp_path / "etc").is_dir()


def test_each_store_says_what_changed_and_folders_are_not_named(tmp_path, target, journal):
    """What `rollback --list` and the report show of a checkpoint comes from its stores."""
    old = fsutil.digest(target.read_bytes())
    new_file = tmp_path / "made" / "new.conf"
    with journal.lock(), journal.begin("install") as txn:
        txn.change("file", str(target), b"fips\n", mode=None, owner=None)
        txn.change("file", str(new_file), b"new\n", mode=None, owner=None)
        txn.commit(mode="fips")
    (cp,) = journal.checkpoints
    assert journal.named_changes(cp) == [str(target), str(new_file)]
    said = {d["what"]: d for d in journal.describe(cp)}
    assert said[str(target)] == {"what": str(target), "kind": "file", "before": f"sha256:{old}",
                                 "after": f"sha256:{fsutil.digest(b'fips' + chr(10).encode())}"}
    assert said[str(new_file)]["before"] == "absent"
    assert said[str(new_file.parent)] == {"what": str(new_file.parent), "kind": "folder",
                                          "before": None, "after": "created"}


def test_a_hand_edited_file_stops_rollback_and_force_keeps_a_copy(target, journal):
    install(journal, target, b"fips\n")
    target.write_bytes(b"by hand\n")
    with journal.lock(), pytest.raises(HandEditError, match="changed since fipsboot wrote it"):
        journal.rollback()
    assert target.read_bytes() == b"by hand\n"
    with journal.lock():
        journal.rollback(force=True)
    assert target.read_bytes() == b"old bytes\n" and mode_of(target) == 0o640
    (kept,) = (journal.folder / "kept").iterdir()
    assert kept.name.endswith("-ors.cfg") and kept.read_bytes() == b"by hand\n"
    assert mode_of(kept) == 0o600 and not (journal.folder / "backups" / "1").exists()


def test_an_entry_of_a_kind_with_no_store_here_keeps_its_checkpoint(journal, state):
    with journal.lock(), journal.begin("install") as txn:
        txn.commit(mode="fips")
    data = json.loads((journal.folder / "journal.json").read_text())
    data["checkpoints"][0]["entries"].append({"kind": "registry", "key": "machine",
                                               "before": None, "after": {}})
    (journal.folder / "journal.json").write_text(json.dumps(data))
    journal = Journal(journal.folder)
    with journal.lock(), pytest.raises(FipsbootError, match="no store of kind 'registry'"):
        journal.rollback(force=True)
    assert len(Journal(journal.folder).checkpoints) == 1


def test_a_journal_written_by_the_earlier_fipsboot_is_recovered(tmp_path, state, target):
    """journal.json as fipsboot wrote it before stores (a kill left it pending): a created
    folder, a file that existed (backup, mode, owner), one that did not, an INI value."""
    folder = state / "installation"
    (folder / "backups" / "1").mkdir(parents=True, mode=0o700)
    (folder / "backups").chmod(0o700)
    (folder / "backups" / "1").chmod(0o700)
    backup = folder / "backups" / "1" / "1"
    backup.write_bytes(b"old bytes\n")
    backup.chmod(0o600)
    made, new = tmp_path / "made", tmp_path / "made" / "new.conf"
    made.mkdir()
    new.write_bytes(b"fips")
    cfg = tmp_path / "ors.cfg"
    cfg.write_text("[scxml]\nfips-enabled = true\n")
    key = store_key(cfg, "scxml", "fips-enabled")
    target.write_bytes(b"fips\n")
    entries = [{"kind": "dir", "key": str(made)},
               {"kind": "file", "key": str(target), "backup": "1/1", "mode": 0o640,
                "owner": [0, 0], "after": fsutil.digest(b"fips\n")},
               {"kind": "file", "key": str(new), "backup": None, "mode": None, "owner": None},
               {"kind": INI, "key": key, "before": {"value": "false", "section": True},
                "after": {"value": "true", "section": True}}]
    (folder / "journal.json").write_text(json.dumps({
        "format": 1, "mode": None, "managed": {}, "extra": {}, "follow_up": [],
        "rollback_open": None,
        "checkpoints": [{"id": 1, "command": "install", "time": "", "user": "root",
                         "status": "pending", "entries": entries,
                         "before": {"mode": None, "managed": {}, "extra": {}}}]}))
    journal = Journal(folder)
    with journal.lock():
        assert journal.recover()["command"] == "install"
    assert target.read_bytes() == b"old bytes\n" and mode_of(target) == 0o640
    assert not made.exists() and cfg.read_text() == "[scxml]\nfips-enabled = false\n"
    data = json.loads((folder / "journal.json").read_text())
    assert data["checkpoints"] == [] and [k for k, _ in data["follow_up"]] == ["file", "file", INI]
