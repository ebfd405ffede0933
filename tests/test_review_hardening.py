"""The adversarial review of the hardening (issues 11 and 17), findings 6, 7, 8, 9, 10 and 12:
each test replays the reviewer's attack or misreading on the real test bed (a real second
account where one is involved) and checks what a person would: where root wrote, what
verify's `targets` check says."""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from helpers import fipsboot, sourced
from verifyhelpers import targets_check


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


# --- 7. targets judged as sh and systemd really read them -------------------------------------

def _evil(tmp_path) -> Path:
    evil = tmp_path / "evil.cnf"
    evil.write_text("# another account's config\n")
    return evil


@pytest.mark.parametrize("line", [
    'export OPENSSL"_CONF"={evil}',  # sh removes the quotes: OPENSSL_CONF is set
    ". {more}",  # sh runs the other file
    'OPENSSL_CONF="{cnf}" true',  # sh: only for `true`; systemd: "{cnf}true"
    "eval OPENSSL_CONF={evil}",
    "if true; then OPENSSL_CONF={evil}; fi",
])
def test_an_env_file_line_that_is_not_a_plain_assignment_fails_targets(installation30, tmp_path,
                                                                        line):
    inst = installation30
    evil = _evil(tmp_path)
    more = tmp_path / "more.env"
    more.write_text(f"OPENSSL_CONF={evil}\n")
    profile = inst.write_profile(targets=[f"envfile:{inst.envfile}"])
    fipsboot("install", "--profile", str(profile), check=0)
    assert targets_check(profile)[0] == 0
    cnf = inst.config_dir / "openssl.cnf"
    with inst.envfile.open("a") as f:
        f.write(line.format(evil=evil, more=more, cnf=cnf) + "\n")
    if "{cnf}" not in line:  # what sh really does with the file
        assert sourced(inst.envfile)["OPENSSL_CONF"] == str(evil)
    code, check = targets_check(profile)
    assert code == 1 and "can't judge" in check["reason"], check
    assert "line 4" in check["reason"] and "plain" in check["reason"]


def test_the_whole_profile_file_is_judged_not_only_fipsboots_block(installation30, tmp_path):
    inst = installation30
    profile = inst.write_profile(targets=[f"profile-file:{inst.shell_profile}"])
    inst.shell_profile.write_text("# mine\nexport EDITOR=vi\n")
    fipsboot("install", "--profile", str(profile), check=0)
    assert targets_check(profile)[0] == 0
    installed = inst.shell_profile.read_text()
    inst.shell_profile.write_text(installed + "unset OPENSSL_CONF\n")
    assert "OPENSSL_CONF" not in sourced(inst.shell_profile)
    code, check = targets_check(profile)
    assert code == 1 and "OPENSSL_CONF is None" in check["reason"], check
    inst.shell_profile.write_text(installed + f". {tmp_path / 'more.sh'}\n")
    code, check = targets_check(profile)
    assert code == 1 and "can't judge" in check["reason"], check


DEBIAN_PROFILE = """# ~/.profile: executed by the command interpreter for login shells.
if [ -n "$BASH_VERSION" ]; then
    # include .bashrc if it exists
    if [ -f "$HOME/.bashrc" ]; then
	. "$HOME/.bashrc"
    fi
fi
if [ -d "$HOME/bin" ] ; then
    PATH="$HOME/bin:$PATH"
fi
"""


def test_a_distributions_login_profile_passes_and_what_could_stop_the_block_fails(
        installation30):
    """Debian's own ~/.profile (`if` blocks, `. ~/.bashrc`) before fipsboot's block passes: the
    block's assignments win. Before the block, only what could stop them counts (a line naming
    one of the variables, `readonly`); after it, every line must be plain."""
    inst = installation30
    profile = inst.write_profile(targets=[f"profile-file:{inst.shell_profile}"])
    inst.shell_profile.write_text(DEBIAN_PROFILE)
    fipsboot("install", "--profile", str(profile), check=0)
    assert targets_check(profile)[0] == 0
    installed = inst.shell_profile.read_text()
    inst.shell_profile.write_text("readonly OPENSSL_CONF\n" + installed)
    code, check = targets_check(profile)
    assert code == 1 and "readonly" in check["reason"], check
    inst.shell_profile.write_text(installed + 'if true; then unset OPENSSL_CONF; fi\n')
    code, check = targets_check(profile)
    assert code == 1 and "can't judge" in check["reason"], check


def test_drop_in_continuation_lines_are_joined_as_systemd_does(installation30, tmp_path):
    """systemd.syntax(7): a line ending in a backslash goes on with the next one."""
    inst = installation30
    profile = inst.write_profile(targets=["systemd:gctilca"])
    fipsboot("install", "--profile", str(profile), check=0)
    override = inst.dropin.parent / "override.conf"
    override.write_text("[Service]\nEnvironment=TZ=UTC \\\n# a comment inside is skipped\n"
                        f"  OPENSSL_CONF={_evil(tmp_path)}\n")
    code, check = targets_check(profile)
    assert code == 1 and "evil.cnf" in check["reason"], check


def test_systemd_ignores_export_lines_of_an_environment_file(installation30):
    """src/basic/env-file.c reads `export OPENSSL_CONF` as the name, which is not a valid
    variable name; systemd drops the assignment. sh reads it. The env file keeps `export`
    (issue 11 item 8) and judged on its own it passes; named by the unit it fails."""
    inst = installation30
    inst.envfile.write_text('export OPENSSL_CONF="/old.cnf"\n')
    both = inst.write_profile(targets=["systemd:gctilca", f"envfile:{inst.envfile}"])
    fipsboot("install", "--profile", str(both), check=0)
    assert inst.envfile.read_text().startswith("export OPENSSL_CONF=")
    assert targets_check(both)[0] == 0
    (inst.systemd_dir / "gctilca.service").write_text(
        f"[Service]\nExecStart=/bin/true\nEnvironmentFile={inst.envfile}\n")
    code, check = targets_check(both)
    assert code == 1 and "systemd ignores `export OPENSSL_CONF=...`" in check["reason"], check
    inst.envfile.write_text(inst.envfile.read_text().replace("export ", ""))
    assert targets_check(both)[0] == 0


# --- 8. every drop-in systemd reads for the unit ------------------------------------------------

def _installed_under_a_system_root(inst):
    """A root folder laid out as a host's (fipsboot's unit folder: its etc/systemd/system) and
    the profile of systemd:gctilca installed there: (that root, the profile)."""
    root = inst.root / "host"
    (root / "etc/systemd/system").mkdir(parents=True)
    profile = inst.write_profile(targets=["systemd:gctilca"])
    profile.write_text(profile.read_text().replace(
        json.dumps(str(inst.systemd_dir)), json.dumps(str(root / "etc/systemd/system"))))
    fipsboot("install", "--profile", str(profile), check=0)
    return root, profile


def test_a_template_units_drop_ins_and_file_are_judged(installation30, tmp_path):
    inst = installation30
    profile = inst.write_profile(targets=["systemd:ors@1"])
    fipsboot("install", "--profile", str(profile), check=0)
    assert (inst.systemd_dir / "ors@1.service.d" / "50-fipsboot.conf").is_file()
    assert targets_check(profile)[0] == 0
    evil = _evil(tmp_path)
    for folder in ("ors@.service.d", "service.d"):
        override = inst.systemd_dir / folder / "override.conf"
        override.parent.mkdir()
        override.write_text(f"[Service]\nEnvironment=OPENSSL_CONF={evil}\n")
        code, check = targets_check(profile)
        assert code == 1 and str(evil) in check["reason"], (folder, check)
        override.unlink()
    # the template file itself, read first: its EnvironmentFile= overrides the drop-ins
    env = tmp_path / "ors.env"
    env.write_text(f"OPENSSL_CONF={evil}\n")
    (inst.systemd_dir / "ors@.service").write_text(f"[Service]\nEnvironmentFile={env}\n")
    code, check = targets_check(profile)
    assert code == 1 and str(evil) in check["reason"], check


@pytest.mark.parametrize("folder", ["etc/systemd/system.control", "run/systemd/system.control",
                                    "run/systemd/transient", "run/systemd/generator.early",
                                    "usr/lib/systemd/system"])
def test_drop_ins_in_every_folder_of_the_unit_search_path_are_judged(installation30, tmp_path,
                                                                      folder):
    inst = installation30
    root, profile = _installed_under_a_system_root(inst)
    assert targets_check(profile)[0] == 0
    evil = _evil(tmp_path)
    override = root / folder / "gctilca.service.d" / "override.conf"
    override.parent.mkdir(parents=True)
    override.write_text(f"[Service]\nEnvironment=OPENSSL_CONF={evil}\n")
    code, check = targets_check(profile)
    if folder == "usr/lib/systemd/system":  # read before fipsboot's (same name order: o > 5)
        assert code == 1 and str(evil) in check["reason"], check
        override.rename(override.with_name("10-vendor.conf"))  # sorted before 50-fipsboot
        assert targets_check(profile)[0] == 0
        return
    assert code == 1 and str(evil) in check["reason"], check
    override.unlink()
    # a 50-fipsboot.conf in a folder of higher priority masks fipsboot's own
    (override.parent / "50-fipsboot.conf").write_text("[Service]\n")
    code, check = targets_check(profile)
    assert code == 1 and "OPENSSL_CONF is None" in check["reason"], check


# --- 9. links to unit files and drop-ins are read through (for judging only) -------------------

def test_a_linked_unit_file_and_a_drop_in_masked_by_dev_null(installation30, tmp_path,
                                                              login_account):
    inst = installation30
    root, profile = _installed_under_a_system_root(inst)
    evil = _evil(tmp_path)
    # `systemctl link /opt/ors/gctilca.service` makes this link; its EnvironmentFile= counts
    vendor = tmp_path / "opt" / "gctilca.service"
    vendor.parent.mkdir()
    env = tmp_path / "vendor.env"
    env.write_text(f"OPENSSL_CONF={evil}\n")
    vendor.write_text(f"[Service]\nExecStart=/bin/true\nEnvironmentFile={env}\n")
    (root / "etc/systemd/system/gctilca.service").symlink_to(vendor)
    code, check = targets_check(profile)
    assert code == 1 and str(evil) in check["reason"], check
    assert "point the profile at the real file" not in check["reason"]
    env.write_text("TZ=UTC\n")
    assert targets_check(profile)[0] == 0
    # a vendor drop-in that breaks FIPS, masked by a link to /dev/null of the same name
    vendor_dropin = root / "usr/lib/systemd/system/gctilca.service.d/override.conf"
    vendor_dropin.parent.mkdir(parents=True)
    vendor_dropin.write_text(f"[Service]\nEnvironment=OPENSSL_CONF={evil}\n")
    assert targets_check(profile)[0] == 1
    mask = root / "etc/systemd/system/gctilca.service.d/override.conf"
    mask.symlink_to(os.devnull)
    assert targets_check(profile)[0] == 0
    # a link another account made is not read through: reported, not trusted
    mask.unlink()
    mask.symlink_to(tmp_path / "opt" / "nothing.conf")
    os.lchown(mask, login_account.pw_uid, login_account.pw_gid)
    code, check = targets_check(profile)
    assert code == 1 and "owned by uid" in check["reason"] and "can't be judged" in check["reason"]


# --- the readers against the real systemd of a test host ----------------------------------------

ENV_FILE_CASES = (
    'export OPENSSL_CONF="/from/export.cnf"\n'
    'OPENSSL_MODULES="/a b/fips" true\n'
    "LD_LIBRARY_PATH=/x # not a comment for systemd\n"
    "FB_SPACED = spaced  \n"
    "FB_CONT=one\\\ntwo\n"
    "FB_QUOTES='a'\"b\"c\n"
    'FB_MIDQUOTE=a"b"c\n'
    'FB_MULTI="first\nsecond"\n'
    "; FB_SEMI=comment\n"
    "#FB_HASH=comment \\\n"
    "FB_AFTER=after\n"
    "1FB=bad\n"
    'FB_ESC="\\$x \\q"\n'
)
UNIT_CASES = (
    "[Service]\n"
    "Environment=FB_A=1 \\\n"
    "# a comment inside is skipped\n"
    "  FB_B=2 \"FB_C=three words\" FB_D=a\\x41%%\n"
)


def _host_env(host, *properties: str) -> dict:
    r = host.run(["systemd-run", "--quiet", "--wait", "--pipe", "--collect",
                  *[f"--property={p}" for p in properties], "/usr/bin/env", "-0"])
    return dict(item.split("=", 1) for item in r.stdout.split("\0") if "=" in item)


def test_the_readers_agree_with_a_real_systemd(fleet):
    """What systemd itself hands a service from an EnvironmentFile= and from a drop-in with a
    continuation line is what fipsboot's readers say it gets."""
    from fipsboot.platforms import envsyntax

    host = fleet.hosts[0]
    host.write("/tmp/fb-cases.env", ENV_FILE_CASES)
    got = _host_env(host, "EnvironmentFile=/tmp/fb-cases.env")
    ours = {k: v for _, k, v in envsyntax.systemd_env_file(ENV_FILE_CASES)}
    names = {"OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH"} | {
        k for k in list(got) + list(ours) if k.startswith("FB")}
    assert {k: got.get(k) for k in names} == {k: ours.get(k) for k in names}
    assert "OPENSSL_CONF" not in got  # `export NAME=` is dropped
    assert got["OPENSSL_MODULES"] == "/a b/fipstrue"
    # a unit file with a continuation line, started by systemd
    host.write("/etc/systemd/system/fbcases.service",
               UNIT_CASES + "Type=oneshot\nExecStart=/bin/sh -c 'env -0 > /tmp/fbcases.out'\n")
    host.run("systemctl daemon-reload && systemctl start fbcases.service")
    out = host.run("cat /tmp/fbcases.out").stdout
    started = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
    lines = envsyntax.unit_lines(UNIT_CASES)
    words = envsyntax.environment_words(lines[1].partition("=")[2])
    ours = dict(w.replace("%%", "%").split("=", 1) for w in words)
    assert {k: started.get(k) for k in ours} == ours == {
        "FB_A": "1", "FB_B": "2", "FB_C": "three words", "FB_D": "aA%"}
    host.run("rm -f /etc/systemd/system/fbcases.service /tmp/fbcases.out /tmp/fb-cases.env && "
             "systemctl daemon-reload")
