"""The one OpenSSL-style INI parser (fipsboot/cnfsyntax.py) and its three readers: openssl.cnf
(cnfreader), fipsmodule.cnf (fipsmodule.parse) and the server's options file (inifile).

Where it matters, what fipsboot reads is pinned against the real openssl of the test bed:
`fipsinstall -verify` (which reads fipsmodule.cnf's module-mac with OpenSSL's own parser) and
`req` (whose subject is taken, value for value, from a config section)."""
from __future__ import annotations

import os
import subprocess

import pytest
from helpers import LINUX_VERSIONS, build

from fipsboot import cnfreader, cnfsyntax, fipsmodule
from fipsboot.cnfsyntax import BLANK, DIRECTIVE, KEY, OTHER, SECTION
from fipsboot.inifile import get_value, remove_value, set_value

# --- the line splitter ----------------------------------------------------------------------

def test_openssl_lines_are_classified_with_their_spans():
    text = ("# note\n[ fips_sect ]\r\nk = \"a # b\" # c\nlong = x\\\n  y\n"
            "other::z = 1\n.include=/x.cnf\ngarbage\n\n")
    got = list(cnfsyntax.lines(text))
    assert [(g.kind, g.number) for g in got] == [
        (BLANK, 1), (SECTION, 2), (KEY, 3), (KEY, 4), (KEY, 6), (DIRECTIVE, 7), (OTHER, 8),
        (BLANK, 9)]
    assert "".join(text[g.start:g.end] for g in got) == text  # spans tile the text
    section, quoted, long, other, include, garbage = got[1:7]
    assert section.name == "fips_sect"
    assert (quoted.name, quoted.raw, text[slice(*quoted.value)]) == ("k", '"a # b"', '"a # b"')
    assert cnfsyntax.value(quoted.raw) == "a # b"
    assert long.raw == "x  y" and text[slice(*long.value)] == "x\\\n  y"
    assert (other.prefix, other.name, other.raw) == ("other", "z", "1")
    assert (include.directive, include.raw) == (".include", "/x.cnf")
    assert "no `=`" in garbage.why


def test_openssl_value_reads_quotes_and_escapes_as_str_copy():
    assert cnfsyntax.value('"  a b  "') == "  a b  "  # quotes keep their spaces
    assert cnfsyntax.value("a\\tb\\n") == "a\tb\n"  # outside quotes these are controls
    assert cnfsyntax.value('"a\\tb"') == "atb"  # inside quotes an escape is the character
    assert cnfsyntax.value("x\\") == "x"  # a lone trailing backslash is dropped
    assert cnfsyntax.value("'q' x `b`") == "q x b"


def test_options_lines_keep_todays_rules_for_the_servers_file():
    """The options file is not an OpenSSL config: physical lines (a Windows path ending in a
    backslash does not join the next line), no comment syntax, a header whatever follows it."""
    text = "[scxml] ; ors\ndir = C:\\GCTI\\\nfips-enabled = false # off\n"
    got = list(cnfsyntax.options_lines(text))
    assert [g.kind for g in got] == [SECTION, KEY, KEY]
    assert got[0].name == "scxml" and got[1].raw == "C:\\GCTI\\"
    assert get_value(text, "scxml", "fips-enabled") == "false # off"


def test_options_file_edits_keep_every_other_byte_whatever_the_encoding():
    raw = ("[scxml]\r\n; caf\xe9 \xff\xfe\r\nfips-enabled = false\r\n[log]\r\nv = 1"
           ).encode("latin-1")
    text = raw.decode("utf-8", "surrogateescape")
    out = set_value(text, "scxml", "fips-enabled", "true").encode("utf-8", "surrogateescape")
    assert out == raw.replace(b"= false", b"= true")
    added = set_value(text, "new", "k", "v").encode("utf-8", "surrogateescape")
    assert added == raw + b"\n[new]\nk = v\n"
    gone = remove_value(set_value(text, "new", "k", "v"), "new", "k", drop_empty_section=True)
    assert gone.encode("utf-8", "surrogateescape") == raw + b"\n"
    kept = remove_value(text, "scxml", "fips-enabled", drop_empty_section=True)
    assert kept.encode("utf-8", "surrogateescape") == raw.replace(b"fips-enabled = false\r\n",
                                                                  b"")


# --- fipsmodule.cnf as OpenSSL reads it -------------------------------------------------------

def test_fipsmodule_parse_reads_as_openssl():
    text = ("[fips_sect]\nactivate = 1\nmodule-mac = AA\nmodule-mac = \"B:B\" # c\n"
            "install-status = 'x # y'\nsecurity-checks = \\\n1\n[other]\nfips_sect::z = 2\n")
    cnf = fipsmodule.parse(text)
    assert cnf.values == {"activate": "1", "module-mac": "B:B", "install-status": "x # y",
                          "security-checks": "1", "z": "2"}
    assert not cnf.problems


@pytest.mark.parametrize("line", [".include /etc/x.cnf", ".pragma dollarid:on", "x = $y",
                                  "garbage", "[$sect]"])
def test_fipsmodule_parse_reports_what_openssl_would_refuse_or_read_differently(line):
    cnf = fipsmodule.parse(f"[fips_sect]\nactivate = 1\n{line}\n")
    assert cnf.problems and cnf.problems[0] in fipsmodule.key_problems(cnf)


def test_fipsmodule_parse_without_its_section_says_why():
    with pytest.raises(ValueError, match=r"\[fips_sect\] not found.*no `=`"):
        fipsmodule.parse("broken\n")


# --- pinned against the real openssl ------------------------------------------------------------

def _openssl(d, args, tmp_path):
    (tmp_path / "empty.cnf").write_text("")
    return subprocess.run([str(d / "bin" / "openssl"), *args], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "LANG": "C",
                               "LD_LIBRARY_PATH": str(d / "lib64"),
                               "OPENSSL_CONF": str(tmp_path / "empty.cnf")})


def _mac_variants(mac: str):
    """(name, how the module-mac line is written, whether OpenSSL reads the right MAC); a
    line after a blank one goes at the end of the file."""
    half = len(mac) // 2
    wrong = ("00" if not mac.startswith("00") else "11") + mac[2:]
    return [
        ("plain", f"module-mac = {mac}", True),
        ("double quotes", f'module-mac = "{mac}"', True),
        ("single quotes and a comment", f"module-mac = '{mac}' # note", True),
        ("backticks", f"module-mac = `{mac}`", True),
        ("a quote in the comment", f'module-mac = {mac} # "x', True),
        ("escaped colons", "module-mac = " + mac.replace(":", "\\:"), True),
        ("continued line", f"module-mac = {mac[:half]}\\\n{mac[half:]}", True),
        ("a # inside quotes", f'module-mac = "{mac} #"', False),
        ("repeated, right last", f"module-mac = {wrong}\nmodule-mac = {mac}", True),
        ("repeated, wrong last", f"module-mac = {mac}\nmodule-mac = {wrong}", False),
        ("written from another section", f"module-mac = {wrong}\n\n[other]\n"
                                         f"fips_sect::module-mac = {mac}", True),
    ]


@pytest.mark.parametrize("version", LINUX_VERSIONS)
def test_fipsmodule_cnf_module_mac_reads_as_fipsinstall_verify_reads_it(testbed, tmp_path,
                                                                        version):
    d = build(testbed, f"linux-{version}")
    module = d / "fips" / "fips.so"
    written = tmp_path / "fipsmodule.cnf"
    r = _openssl(d, ["fipsinstall", "-module", str(module), "-out", str(written)], tmp_path)
    assert r.returncode == 0, r.stderr
    text = written.read_text()
    mac = fipsmodule.parse(text).module_mac
    line = f"module-mac = {mac}"
    assert line in text.splitlines()
    actual = fipsmodule.normalise_mac(fipsmodule.module_mac(module, _default_key()))
    for name, variant, right in _mac_variants(mac):
        edited = tmp_path / "edited.cnf"
        here, _, tail = variant.partition("\n\n")
        edited.write_text(text.replace(line, here) + tail)
        verify = _openssl(d, ["fipsinstall", "-verify", "-module", str(module), "-in",
                              str(edited)], tmp_path)
        ours = fipsmodule.parse(edited.read_text()).module_mac
        assert (verify.returncode == 0) is right, (name, verify.stderr)
        assert (fipsmodule.normalise_mac(ours or "") == actual) is right, (name, ours)


REQ_VALUES = {  # a value as written: what OpenSSL reads (a certificate subject's CN)
    '"a # b"  x\\ty \\# # c': "a # b  x\ty #",
    "'q' x `b`": "q x b",
    '"  spaced  "': "  spaced  ",
    "a\\\\b": "a\\b",
    "tail\\ ": "tail",
    "x\\\n  y": "x  y",
    '"\\t"': "t",
}


@pytest.mark.parametrize("version", LINUX_VERSIONS)
def test_values_read_as_openssl_req_reads_them(testbed, tmp_path, version):
    d = build(testbed, f"linux-{version}")
    key = tmp_path / "k.pem"
    r = _openssl(d, ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                     "-out", str(key)], tmp_path)
    assert r.returncode == 0, r.stderr
    for written, expected in REQ_VALUES.items():
        text = (f"[req]\nprompt = no\ndistinguished_name = dn\n[dn]\nO = first\n"
                f"CN = {written}\nO = second\n")
        cnf = tmp_path / "req.cnf"
        cnf.write_text(text)
        r = _openssl(d, ["req", "-new", "-key", str(key), "-config", str(cnf), "-noout",
                         "-subject", "-nameopt", "sep_multiline,-esc_2253,-esc_ctrl,-esc_msb,utf8"],
                     tmp_path)
        assert r.returncode == 0, (written, r.stderr)
        subject = dict(line.lstrip(" ").split("=", 1) for line in r.stdout.splitlines()[1:])
        ours = cnfreader.Config()
        cnfreader.read_text(ours, text, "req.cnf")
        assert subject["CN"] == expected == ours.get("dn", "CN"), written
        assert subject["O"] == "second" == ours.get("dn", "O")  # a repeated key: the last


def _default_key() -> str:
    from fipsboot.profile import DEFAULT_FIPS_KEY

    return DEFAULT_FIPS_KEY


def test_openssl_cnf_follows_only_the_plain_include_and_notes_each_spelling():
    cnf = cnfreader.Config()
    followed = []

    def follow(include, section):
        followed.append(include)
        return section

    text = (".include /f.cnf\n[a]\na::.include /f.cnf\nb::.include /f.cnf\n.include=/f.cnf\n"
            ".includeX /f.cnf\n.pragma=dollarid:on\n.include \"/f \\$x.cnf\"\n.include $d/f.cnf\n")
    cnfreader.read_text(cnf, text, "openssl.cnf", follow=follow)
    # A prefix naming the current section is ignored by OpenSSL and followed, as before.
    assert followed == ["/f.cnf", "/f.cnf", "/f.cnf", "/f $x.cnf"]
    assert [p.split(":", 2)[1] for p in cnf.problems] == ["4", "6", "7", "9"]
