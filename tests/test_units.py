"""Unit tests of the pure pieces: quoting, escaping, merging, the MAC, INI edits."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import build, sourced

from fipsboot import environ, fipsmodule, opensslcnf
from fipsboot.errors import FipsbootError
from fipsboot.inifile import set_value as set_ini_value
from fipsboot.layout import resolve
from fipsboot.platforms.shelltargets import EnvFile, ProfileBlock, login_profile, sh_double_quote
from fipsboot.platforms.systemd import SystemdDropIn, systemd_quote, systemd_unquote
from fipsboot.profile import parse

TRICKY = ["/opt/a b/c", '/opt/q"uote', "/opt/d$ollar", "/opt/back`tick", "/opt/b\\slash",
          "/opt/s'ingle", "/opt/per%cent", "/opt/hash#x"]


@pytest.mark.parametrize("value", TRICKY)
def test_env_file_reads_back_the_same_in_sh_and_in_fipsboot(tmp_path, value):
    target = EnvFile(str(tmp_path / "env"))
    change = target.change({"OPENSSL_CONF": value, "OPENSSL_MODULES": None})
    (tmp_path / "env").write_bytes(change.new)
    assert sourced(tmp_path / "env") == {"OPENSSL_CONF": value}
    assert target.read() == {"OPENSSL_CONF": value}


@pytest.mark.parametrize("value", TRICKY)
def test_profile_block_reads_back_the_same_in_sh(tmp_path, value):
    path = tmp_path / ".profile"
    path.write_text("umask 022\n")
    target = ProfileBlock(path, f"profile-file:{path}")
    path.write_bytes(target.change({"OPENSSL_CONF": value, "OPENSSL_MODULES": None}).new)
    assert sourced(path) == {"OPENSSL_CONF": value}
    assert path.read_text().startswith("umask 022\n")


@pytest.mark.parametrize("value", TRICKY)
def test_systemd_quoting_round_trips(value):
    word = systemd_quote(f"OPENSSL_CONF={value}")
    assert word.startswith('"') and "%" not in word.replace("%%", "")
    assert systemd_unquote(word) == f"OPENSSL_CONF={value}"


def test_drop_in_parse_reads_what_it_renders(tmp_path):
    target = SystemdDropIn("gctilca", str(tmp_path))
    desired = {"OPENSSL_CONF": '/a b/"c"', "OPENSSL_MODULES": "/m%1", "LD_LIBRARY_PATH": "/x:/y"}
    target.path.parent.mkdir()
    target.path.write_bytes(target.change(desired).new)
    assert target.read() == desired
    target.path.write_bytes(target.change({**desired, "OPENSSL_CONF": None,
                                           "OPENSSL_MODULES": None}).new)
    assert target.read() == {"LD_LIBRARY_PATH": "/x:/y"}
    assert "UnsetEnvironment=OPENSSL_CONF OPENSSL_MODULES" in target.path.read_text()


def test_line_breaks_are_refused():
    with pytest.raises(Exception, match="line break"):
        sh_double_quote("a\nb")


def test_login_profile_follows_the_accounts_shell_and_home():
    import pwd

    root = pwd.getpwnam("root")
    chosen = login_profile("root")
    assert chosen.parent == Path(root.pw_dir)
    assert chosen.name in (".bash_profile", ".bash_login", ".profile")
    with pytest.raises(Exception, match="no such account"):
        login_profile("no-such-user-fipsboot")


@pytest.mark.parametrize("path", ["/a b/c", "/x$y/z", "/h#sh/q", "/q'\"/r", "C:/GCTI/ORS 8/x"])
def test_openssl_escape_round_trips(path):
    assert opensslcnf.unescape(opensslcnf.escape(path)) == path


@pytest.mark.parametrize("path", ["/a\nb", "/a\tb", " /lead", "/trail "])
def test_openssl_escape_refuses_what_it_cannot_express(path):
    with pytest.raises(FipsbootError, match="control character|space"):
        opensslcnf.escape(path)


def test_unescape_reads_hand_written_forms():
    assert opensslcnf.unescape('"/a b/f.cnf"') == "/a b/f.cnf"
    assert opensslcnf.unescape("/a/f.cnf # note") == "/a/f.cnf"


def test_search_path_merge():
    merged = environ.merge_search_path(["/f", "/lib"], "/old/fips:/lib:/u:/u:", {"/old/fips"})
    assert merged == "/f:/lib:/u"


def test_ini_edit_keeps_every_other_byte():
    text = "[scxml]\r\nfips-enabled = false\r\nx=1\r\n[log]\r\nv = 1\r\n"
    out = set_ini_value(text, "scxml", "fips-enabled", "true")
    assert out == text.replace("= false", "= true")
    added = set_ini_value("[log]\nv = 1\n", "scxml", "fips-enabled", "true")
    assert added == "[log]\nv = 1\n[scxml]\nfips-enabled = true\n"
    inserted = set_ini_value("[scxml]\nx = 1\n[log]\n", "scxml", "fips-enabled", "false")
    assert inserted == "[scxml]\nx = 1\nfips-enabled = false\n[log]\n"


def test_windows_layout_renders_forward_slashes_and_native_values():
    profile = parse({"server": {"platform": "windows",
                                "install-dir": "C:\\GCTI\\ORS 8.1.401.11",
                                "config-dir": "C:\\GCTI\\ORS_FIPS_CFG"}}, Path("/p.toml"))
    layout = resolve(profile)
    cnf = opensslcnf.render(layout, layout.fipsmodule_cnf)
    assert ".include C:/GCTI/ORS_FIPS_CFG/fipsmodule.cnf" in cnf
    assert environ.values(layout, environ.FIPS) == {
        "OPENSSL_CONF": "C:\\GCTI\\ORS_FIPS_CFG\\openssl.cnf",
        "OPENSSL_MODULES": "C:\\GCTI\\ORS 8.1.401.11\\fips"}


def test_unc_paths_are_refused():
    with pytest.raises(Exception, match="UNC"):
        parse({"server": {"platform": "windows", "install-dir": "\\\\host\\share\\ors"}},
              Path("/p.toml"))


@pytest.mark.parametrize("version", ["3.0", "3.5"])
def test_module_mac_matches_fipsinstall_and_cryptography(testbed, tmp_path, version):
    """The in-process MAC equals fipsinstall's and cryptography's (in a clean process)."""
    d = build(testbed, f"linux-{version}")
    module = d / "fips" / "fips.so"
    (tmp_path / "empty.cnf").write_text("")
    subprocess.run([str(d / "bin" / "openssl"), "fipsinstall", "-module", str(module), "-out",
                    str(tmp_path / "f.cnf")], check=True, capture_output=True,
                   env={"LD_LIBRARY_PATH": str(d / "lib64"),
                        "OPENSSL_CONF": str(tmp_path / "empty.cnf")})
    written = fipsmodule.parse((tmp_path / "f.cnf").read_text()).module_mac
    ours = fipsmodule.module_mac(module, fipsmodule_default_key())
    code = ("import sys; from cryptography.hazmat.primitives import hashes, hmac; "
            "h = hmac.HMAC(bytes.fromhex(sys.argv[2]), hashes.SHA256()); "
            "h.update(open(sys.argv[1], 'rb').read()); print(h.finalize().hex())")
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENSSL")}
    theirs = subprocess.run([sys.executable, "-c", code, str(module), fipsmodule_default_key()],
                            capture_output=True, text=True, check=True, env=env).stdout.strip()
    assert ours == written
    assert fipsmodule.normalise_mac(ours) == theirs


def fipsmodule_default_key() -> str:
    from fipsboot.profile import DEFAULT_FIPS_KEY

    return DEFAULT_FIPS_KEY
