"""The adversarial review of the hardening (issues 11 and 17), findings 6, 7, 8, 9, 10 and 12:
each test replays the reviewer's attack or misreading on the real test bed (a real second
account where one is involved) and checks what a person would: where root wrote, what
verify's `targets` check says."""
# ruff: noqa: F811  (login_account: a fixture imported from test_robustness)
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from conftest import fipsboot
from test_robustness import login_account  # noqa: F401


def _as(account, path: Path) -> None:
    os.lchown(path, account.pw_uid, account.pw_gid)


# --- 6. no write through a folder link another account planted -------------------------------

def test_rollback_force_never_writes_through_a_folder_link_the_account_planted(
        installation30, login_account, tmp_path):
    """The account owns the folder holding its profile file; after install it swaps the
    folder for a link to a root-owned folder. Neither rollback nor rollback --force (nor
    reset) may write, chmod or remove anything there."""
    inst = installation30
    home = Path(login_account.pw_dir)
    cfg = home / "cfg"
    cfg.mkdir()
    _as(login_account, cfg)
    target = cfg / ".profile"
    target.write_text("PATH=/usr/bin\n")
    _as(login_account, target)
    rootdir = tmp_path / "root only"
    rootdir.mkdir()
    (rootdir / ".profile").write_text("# root's\n")
    profile = inst.write_profile(targets=[f"profile-file:{target}"])
    fipsboot("install", "--profile", str(profile), check=0)
    cfg.rename(home / "cfg.old")  # what the account can do in its own home
    cfg.symlink_to(rootdir)
    _as(login_account, cfg)
    for command in (["rollback"], ["rollback", "--force"], ["reset", "--force"]):
        r = fipsboot(*command, "--profile", str(profile))
        assert r.returncode == 1, (command, r.stdout, r.stderr)
        assert "symbolic link" in r.stderr and "owned by uid" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
        assert sorted(p.name for p in rootdir.iterdir()) == [".profile"]
        assert (rootdir / ".profile").read_text() == "# root's\n"
        assert stat.S_IMODE((rootdir / ".profile").stat().st_mode) == 0o644
    cfg.unlink()
    cfg.symlink_to(home / "cfg.old")  # a link root made is followed
    fipsboot("rollback", "--profile", str(profile), check=0)
    assert (home / "cfg.old" / ".profile").read_text() == "PATH=/usr/bin\n"


# --- 12. no restore through a hard link ------------------------------------------------------

def test_restore_never_chmods_a_hard_linked_file(installation30, login_account, tmp_path):
    """A second name for a root-only file whose bytes equal the backup: the restore's
    `bytes equal, fix the mode` path would chmod the root-only file to the backup's 0644."""
    inst = installation30
    home = Path(login_account.pw_dir)
    target = home / ".profile"
    target.write_text("PATH=/usr/bin\n")
    _as(login_account, target)
    secret = tmp_path / "root-only"
    secret.write_text("PATH=/usr/bin\n")
    secret.chmod(0o600)
    profile = inst.write_profile(targets=[f"profile:{login_account.pw_name}"])
    fipsboot("install", "--profile", str(profile), check=0)
    target.unlink()
    os.link(secret, target)  # fs.protected_hardlinks=0, or a file the account may link
    r = fipsboot("rollback", "--profile", str(profile))
    assert r.returncode == 3, r.stderr  # the bytes differ from what fipsboot wrote
    for _ in range(2):
        r = fipsboot("rollback", "--profile", str(profile), "--force")
        assert r.returncode == 1 and "hard links" in r.stderr, r.stderr
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert secret.stat().st_uid == 0 and secret.read_text() == "PATH=/usr/bin\n"
    r = fipsboot("install", "--profile", str(profile))
    assert r.returncode == 1 and "hard links" in r.stderr, r.stderr


# --- 10. one installation, one journal, whatever the spelling ---------------------------------

def test_two_spellings_of_install_dir_share_one_journal_and_an_old_key_is_found(
        installation30, state_dir, tmp_path):
    inst = installation30
    (inst.root / "GCTI" / "x").mkdir()
    link = tmp_path / "ors link"
    link.symlink_to(inst.install_dir)
    plain = inst.write_profile(targets=[f"envfile:{inst.envfile}"])
    fipsboot("install", "--profile", str(plain), check=0)
    for spelling in (inst.root / "GCTI" / "x" / ".." / inst.install_dir.name, link):
        text = plain.read_text().replace(json.dumps(str(inst.install_dir)),
                                         json.dumps(str(spelling)))
        other = inst.root / "other.toml"
        other.write_text(text)
        fipsboot("install", "--profile", str(other), check=0)
        (journal,) = state_dir.glob("*/journal.json")  # one journal (and lock) for both
    assert len(json.loads(journal.read_text())["checkpoints"]) == 3
    # a journal an earlier fipsboot keyed on the link's spelling is still this installation's
    from fipsboot.journal import _written_key

    (folder,) = [p.parent for p in state_dir.glob("*/journal.json")]
    folder.rename(state_dir / _written_key(str(link)))
    r = fipsboot("reset", "--profile", str(other), "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(list(state_dir.glob("*/journal.json"))) == 1
