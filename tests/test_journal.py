"""The journal, its transactions and `recover()`, on their own: a fake store (tests/fakestore.py)
instead of a server's files, so these run without the OpenSSL test bed.

What a user relies on: a committed change is recorded with what it replaced; a failure part-way
puts everything back; after a kill -9 (a real one, in a child process) the next command puts
back what the killed one left half done; `rollback --to` goes down to that checkpoint and no
further; a value changed by hand after fipsboot wrote it is not overwritten without force (and
is kept when forced); a follow-up not yet run is retried until it is marked done; a tampered
journal.json is refused before anything acts on it.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fakestore import KIND, FakeStore

from fipsboot.errors import FipsbootError, HandEditError
from fipsboot.journal import Journal

TESTS = Path(__file__).resolve().parent
BEFORE = {"a": "old-a", "b": "old-b"}  # "c" is absent before


@pytest.fixture
def store(tmp_path) -> FakeStore:
    s = FakeStore(tmp_path / "store.json")
    for key, value in BEFORE.items():
        s.set(key, value)
    s.sets = 0
    return s


@pytest.fixture
def folder(tmp_path) -> Path:
    return tmp_path / "state" / "installation"


def open_journal(folder: Path, store: FakeStore) -> Journal:
    """What each fipsboot command does: a journal read from disk afresh."""
    return Journal(folder, {KIND: store})


def apply(journal: Journal, command: str, values: dict, **state) -> None:
    with journal.lock(), journal.begin(command) as txn:
        for key, value in values.items():
            txn.change(KIND, key, value)
        txn.commit(**state)


def on_disk(folder: Path) -> dict:
    return json.loads((folder / "journal.json").read_text())


# --- commit ------------------------------------------------------------------------------

def test_commit_records_each_change_with_what_it_replaced(folder, store):
    apply(open_journal(folder, store), "install", {"a": "fips-a", "c": "fips-c"}, mode="fips")
    assert store.values() == {"a": "fips-a", "b": "old-b", "c": "fips-c"}
    data = on_disk(folder)
    assert data["mode"] == "fips"
    (cp,) = data["checkpoints"]
    assert (cp["id"], cp["command"], cp["status"]) == (1, "install", "done")
    assert cp["before"]["mode"] is None
    assert [(e["key"], e["before"], e["after"]) for e in cp["entries"]] == [
        ("a", "old-a", "fips-a"), ("c", None, "fips-c")]
    assert data["follow_up"] == [[KIND, "a"], [KIND, "c"]]
    assert open_journal(folder, store).mode == "fips"  # what the next command reads


def test_a_commit_that_changed_nothing_leaves_no_checkpoint(folder, store):
    journal = open_journal(folder, store)
    apply(journal, "install", {}, mode=None)
    assert on_disk(folder)["checkpoints"] == [] and store.sets == 0


def test_a_value_set_twice_keeps_the_oldest_before(folder, store):
    apply(open_journal(folder, store), "install", {"a": "first"}, mode="fips")
    journal = open_journal(folder, store)
    with journal.lock(), journal.begin("install") as txn:
        txn.change(KIND, "b", "one")
        txn.change(KIND, "b", "two")
    (entry,) = on_disk(folder)["checkpoints"][1]["entries"]
    assert (entry["before"], entry["after"]) == ("old-b", "two")
    journal.rollback()
    assert store.get("b") == "old-b"


# --- failure part-way --------------------------------------------------------------------

def test_an_exception_inside_the_transaction_puts_everything_back(folder, store):
    journal = open_journal(folder, store)
    with pytest.raises(RuntimeError, match="verification failed"):
        with journal.lock(), journal.begin("install") as txn:
            txn.change(KIND, "a", "fips-a")
            txn.change(KIND, "c", "fips-c")
            raise RuntimeError("verification failed")
    assert store.values() == BEFORE
    data = on_disk(folder)
    assert data["checkpoints"] == [] and data["mode"] is None


def test_a_store_that_fails_part_way_leaves_the_earlier_values_restored(folder, tmp_path):
    store = FakeStore(tmp_path / "store.json", refuse=("c", "fips-c"))
    store.set("a", "old-a")
    journal = open_journal(folder, store)
    with pytest.raises(OSError, match="refused the write"):
        with journal.lock(), journal.begin("install") as txn:
            txn.change(KIND, "a", "fips-a")
            txn.change(KIND, "c", "fips-c")
    assert store.values() == {"a": "old-a"}
    assert on_disk(folder)["checkpoints"] == []


def test_an_undo_that_fails_keeps_the_checkpoint_for_the_next_command(folder, tmp_path):
    """The undo can't write one value: the others are restored, the checkpoint stays, and the
    next command (once the cause is gone) finishes the undo."""
    store = FakeStore(tmp_path / "store.json")
    store.set("a", "old-a")
    store.set("c", "old-c")
    apply(open_journal(folder, store), "install", {"a": "fips-a", "c": "fips-c"}, mode="fips")
    store.refuse = ("c", "old-c")
    journal = open_journal(folder, store)
    with pytest.raises(FipsbootError, match="could not undo checkpoint 1 .*the checkpoint is kept"):
        with journal.lock():
            journal.rollback()
    assert store.values() == {"a": "old-a", "c": "fips-c"}
    assert [c["status"] for c in on_disk(folder)["checkpoints"]] == ["rolling-back"]
    store.refuse = None
    journal = open_journal(folder, store)
    with journal.lock():
        assert journal.recover()["id"] == 1
    assert store.values() == {"a": "old-a", "c": "old-c"}
    assert on_disk(folder)["checkpoints"] == [] and on_disk(folder)["mode"] is None


# --- recovery after a kill ---------------------------------------------------------------

def test_recover_rolls_back_a_pending_checkpoint_left_by_a_dead_process(folder, store):
    """The process died inside the transaction (its `with` never exited): what the journal
    saved is all the next command has, and it is enough."""
    dead = open_journal(folder, store)
    txn = dead.begin("install")
    txn.change(KIND, "a", "fips-a")
    txn.change(KIND, "c", "fips-c")
    del dead, txn
    assert store.values() != BEFORE
    journal = open_journal(folder, store)
    assert [c["status"] for c in journal.checkpoints] == ["pending"]
    with journal.lock():
        undone = journal.recover()
    assert undone["command"] == "install" and undone["status"] == "pending"
    assert store.values() == BEFORE
    data = on_disk(folder)
    assert data["checkpoints"] == [] and data["mode"] is None
    assert data["follow_up"] == [[KIND, "a"], [KIND, "c"]]  # the undo needs its follow-up too
    with journal.lock():
        assert journal.recover() is None  # nothing left: a second recover does nothing


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from fakestore import KIND, FakeStore
from fipsboot.journal import Journal

journal = Journal(Path(sys.argv[2]), {KIND: FakeStore(Path(sys.argv[3]))})
with journal.lock():
    if sys.argv[4] == "install":
        with journal.begin("install") as txn:
            for key in ("a", "b", "c"):
                txn.change(KIND, key, "fips-" + key)
            txn.commit(mode="fips")
    else:
        journal.rollback()
"""


def child(folder: Path, store: FakeStore, command: str, kill_at: int) -> int:
    """Run one journaled command in a child process that SIGKILLs itself at step `kill_at`
    (fipsboot/testseam.py); its exit status (-9: killed)."""
    env = {**os.environ, "FIPSBOOT_TEST_KILL_AT": str(kill_at)}
    return subprocess.run([sys.executable, "-c", CHILD, str(TESTS), str(folder), str(store.path),
                           command], env=env, timeout=60).returncode


def test_a_command_killed_at_any_step_is_undone_by_the_next(tmp_path):
    kills = 0
    for step in range(1, 30):
        store = FakeStore(tmp_path / f"store-{step}.json")
        for key, value in BEFORE.items():
            store.set(key, value)
        folder = tmp_path / f"state-{step}"
        code = child(folder, store, "install", step)
        if code == 0:  # past the last step: the command completed
            assert store.values() == {"a": "fips-a", "b": "fips-b", "c": "fips-c"}
            break
        assert code == -9
        kills += 1
        journal = open_journal(folder, store)
        with journal.lock():
            journal.recover()
        assert store.values() == BEFORE, f"killed at step {step}"
        assert on_disk(folder)["checkpoints"] == [] and on_disk(folder)["mode"] is None
    assert kills >= 7  # 3 records, 3 writes, the commit: each one was a kill point


def test_a_killed_rollback_is_finished_by_the_rerun_and_goes_no_further(tmp_path):
    """Two checkpoints; the rollback of the newest is killed at each of its steps; rerunning
    `rollback` finishes that one and leaves the older checkpoint alone."""
    kills = 0
    for step in range(1, 30):
        store = FakeStore(tmp_path / f"store-{step}.json")
        folder = tmp_path / f"state-{step}"
        apply(open_journal(folder, store), "install", {"a": "fips-a", "b": "fips-b"},
              mode="fips")
        apply(open_journal(folder, store), "reset", {"a": "non-a", "b": "non-b"},
              mode="non-fips")
        code = child(folder, store, "rollback", step)
        if code == 0:
            break
        assert code == -9
        kills += 1
        journal = open_journal(folder, store)
        with journal.lock():
            journal.rollback()
            journal.rollback_finished()
        assert store.values() == {"a": "fips-a", "b": "fips-b"}, f"killed at step {step}"
        data = on_disk(folder)
        assert data["mode"] == "fips" and [c["command"] for c in data["checkpoints"]] == ["install"]
    assert kills >= 2  # each entry's restore was a kill point
    assert store.values() == {"a": "fips-a", "b": "fips-b"}


# --- rollback --to -----------------------------------------------------------------------

def three_checkpoints(folder: Path, store: FakeStore) -> None:
    for n, mode in ((1, "fips"), (2, "non-fips"), (3, "fips")):
        apply(open_journal(folder, store), f"command-{n}", {"a": f"a{n}", f"k{n}": "x"},
              mode=mode)


def test_rollback_to_undoes_down_to_that_checkpoint_and_no_further(folder, store):
    three_checkpoints(folder, store)
    journal = open_journal(folder, store)
    with journal.lock():
        undone = journal.rollback(to=2)
    assert [c["id"] for c in undone] == [3, 2]
    assert store.values() == {**BEFORE, "a": "a1", "k1": "x"}
    data = on_disk(folder)
    assert [c["id"] for c in data["checkpoints"]] == [1] and data["mode"] == "fips"


def test_rollback_without_to_undoes_only_the_newest(folder, store):
    three_checkpoints(folder, store)
    journal = open_journal(folder, store)
    with journal.lock():
        assert [c["id"] for c in journal.rollback()] == [3]
    assert store.get("a") == "a2" and store.get("k3") is None
    assert on_disk(folder)["mode"] == "non-fips"


def test_rollback_to_a_checkpoint_that_is_not_there_changes_nothing(folder, store):
    three_checkpoints(folder, store)
    before, raw = store.values(), (folder / "journal.json").read_bytes()
    journal = open_journal(folder, store)
    with journal.lock(), pytest.raises(FipsbootError, match=r"no checkpoint 9 \(have: 1, 2, 3\)"):
        journal.rollback(to=9)
    assert store.values() == before and (folder / "journal.json").read_bytes() == raw


def test_rollback_with_no_checkpoint_says_so(folder, store):
    journal = open_journal(folder, store)
    with journal.lock(), pytest.raises(FipsbootError, match="nothing to roll back"):
        journal.rollback()
    assert store.sets == 0


# --- hand edits --------------------------------------------------------------------------

def test_a_hand_edit_stops_the_rollback_and_nothing_changes(folder, store):
    apply(open_journal(folder, store), "install", {"a": "fips-a", "c": "fips-c"}, mode="fips")
    store.set("a", "by-hand")
    journal = open_journal(folder, store)
    (cp,) = journal.checkpoints
    assert [e["key"] for e in journal.edited_since(cp)] == ["a"]
    raw, sets = (folder / "journal.json").read_bytes(), store.sets
    with journal.lock(), pytest.raises(HandEditError, match="changed since fipsboot wrote it: a"):
        journal.rollback()
    assert store.get("a") == "by-hand" and store.get("c") == "fips-c" and store.sets == sets
    assert (folder / "journal.json").read_bytes() == raw
    assert not (folder / "kept").exists()


def test_a_forced_rollback_keeps_the_hand_edited_value(folder, store):
    apply(open_journal(folder, store), "install", {"a": "fips-a"}, mode="fips")
    store.set("a", "by-hand")
    journal = open_journal(folder, store)
    with journal.lock():
        journal.rollback(force=True)
    assert store.values() == BEFORE
    (kept,) = (folder / "kept").iterdir()
    assert json.loads(kept.read_text()) == {"kind": KIND, "key": "a", "value": "by-hand"}
    assert kept.stat().st_mode & 0o777 == 0o600


def test_only_the_newest_write_of_a_key_counts_as_edited(folder, store):
    """Checkpoint 2 rewrote `a` after checkpoint 1: a hand edit after 2 is one edit, and the
    value checkpoint 1 wrote is not "edited" just because checkpoint 2 changed it."""
    apply(open_journal(folder, store), "install", {"a": "one"}, mode="fips")
    apply(open_journal(folder, store), "reset", {"a": "two"}, mode="non-fips")
    journal = open_journal(folder, store)
    assert journal.edits_lost_by(1) == []
    store.set("a", "by-hand")
    assert [e["after"] for e in journal.edits_lost_by(1)] == ["two"]


# --- follow-up ---------------------------------------------------------------------------

def test_a_follow_up_is_kept_until_it_is_done_and_survives_a_rollback(folder, store):
    apply(open_journal(folder, store), "install", {"a": "fips-a"}, mode="fips")
    journal = open_journal(folder, store)  # the follow-up failed: the next command sees it
    assert journal.follow_up == [[KIND, "a"]]
    with journal.lock():
        journal.rollback()
    assert open_journal(folder, store).follow_up == [[KIND, "a"]]  # once, not twice
    journal = open_journal(folder, store)
    with journal.lock():
        journal.follow_up_done([[KIND, "a"]])
    assert on_disk(folder)["follow_up"] == []
    apply(open_journal(folder, store), "install", {"a": "fips-a"}, mode="fips")
    assert on_disk(folder)["follow_up"] == [[KIND, "a"]]  # a new change needs it again


# --- a tampered journal.json -------------------------------------------------------------

def _entry(**fields):
    def tamper(data):
        data["checkpoints"][0]["entries"].append(
            {"kind": "file", "key": "/etc/ors.cfg", "backup": None, "mode": 0o644,
             "owner": [0, 0], **fields})
    return tamper


def _set(path, value):
    def tamper(data):
        *parents, last = path
        for p in parents:
            data = data[p]
        data[last] = value
    return tamper


TAMPERED = {
    "mode": (_set(["mode"], "fips; rm -rf /"), "damaged .*mode"),
    "managed not a table": (_set(["managed"], []), "damaged .*managed"),
    "checkpoint id": (_set(["checkpoints", 0, "id"], "1"), "damaged .*checkpoint"),
    "checkpoint status": (_set(["checkpoints", 0, "status"], "applied"), "damaged .*checkpoint"),
    "checkpoint without before": (lambda d: d["checkpoints"][0].pop("before"),
                                  "damaged .*checkpoint"),
    "entry kind": (lambda d: d["checkpoints"][0]["entries"].append({"kind": "../x", "key": "a"}),
                   "damaged .*entry"),
    "relative file": (_entry(key="etc/ors.cfg"), "is not an absolute path"),
    "another checkpoint's backup": (_entry(backup="7/0"), "is not a backup of this checkpoint"),
    "backup outside": (_entry(backup="1/../../../etc/shadow"), "is not a backup of this"),
    "set-id mode": (_entry(mode=0o4755), "set-id bits are never restored"),
    "owner": (_entry(owner=[-1, 0]), "owner"),
    "digest": (_entry(after="not-a-digest"), "digest"),
    "rollback_open": (_set(["rollback_open"], {"to": "1"}), "damaged .*rollback_open"),
    "format": (_set(["format"], 2), "not in the format this fipsboot reads"),
}


@pytest.mark.parametrize("case", TAMPERED, ids=list(TAMPERED))
def test_a_tampered_journal_is_refused_before_anything_acts_on_it(folder, store, case):
    apply(open_journal(folder, store), "install", {"a": "fips-a"}, mode="fips")
    data = on_disk(folder)
    tamper, message = TAMPERED[case]
    tamper(data)
    (folder / "journal.json").write_text(json.dumps(data))
    raw, values, sets = (folder / "journal.json").read_bytes(), store.values(), store.sets
    with pytest.raises(FipsbootError, match=message) as e:
        journal = open_journal(folder, store)
        with journal.lock():
            journal.rollback(force=True)
    assert case == "format" or "nothing was changed" in str(e.value)
    assert (folder / "journal.json").read_bytes() == raw
    assert store.values() == values and store.sets == sets


def test_a_journal_that_is_not_json_is_refused(folder, store):
    folder.mkdir(parents=True, mode=0o755)
    (folder / "journal.json").write_text('{"format": 1, "mode": ')
    with pytest.raises(FipsbootError, match="is unreadable"):
        open_journal(folder, store)
    assert store.sets == 0
