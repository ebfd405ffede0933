"""Smoke tests that prove the test bed is real OpenSSL with a working FIPS provider, and
reproduce the OpenSSL behaviours fipsboot is built around."""
from __future__ import annotations

import os
import subprocess

import pytest
from helpers import providers_with_env

FIPS_CNF = """config_diagnostics = 1
openssl_conf = openssl_init
.include {include}
[openssl_init]
providers = provider_sect
alg_section = algorithm_sect
[provider_sect]
fips = fips_sect
base = base_sect
[base_sect]
activate = 1
[algorithm_sect]
default_properties = fips=yes
"""


def run(openssl, args, env, stdin=b""):
    return subprocess.run([str(openssl), *args], capture_output=True, input=stdin,
                          env={"PATH": os.environ["PATH"], "LANG": "C", **env})


def test_fipsinstall_and_hand_written_config(installation, tmp_path):
    inst = installation
    lib = {"LD_LIBRARY_PATH": f"{inst.module.parent}:{inst.lib64}"}
    empty = tmp_path / "empty.cnf"
    empty.write_text("")
    out = inst.config_dir / "fipsmodule.cnf"
    r = run(inst.openssl, ["fipsinstall", "-module", str(inst.module), "-out", str(out)],
            {**lib, "OPENSSL_CONF": str(empty)})
    assert r.returncode == 0, r.stderr
    assert b"INSTALL PASSED" in r.stderr and out.exists()
    assert b": Pass" in r.stderr  # the self-test report goes to stderr
    cnf = inst.config_dir / "openssl.cnf"
    cnf.write_text(FIPS_CNF.format(include=out))
    env = {**lib, "OPENSSL_CONF": str(cnf), "OPENSSL_MODULES": str(inst.module.parent)}
    listing = providers_with_env(inst.openssl, env)
    assert "  fips\n" in listing and "status: active" in listing.split("  fips\n")[1]
    version = run(inst.openssl, ["version"], lib).stdout.decode()
    assert f"OpenSSL {inst.version}." in version
    md5 = run(inst.openssl, ["dgst", "-md5"], env, b"x")
    assert md5.returncode != 0 and b"unsupported" in md5.stderr.lower()
    assert run(inst.openssl, ["dgst", "-sha256"], env, b"x").returncode == 0


def test_injected_self_test_failure_fails_install(installation, tmp_path):
    inst = installation
    out = tmp_path / "fipsmodule.cnf"
    (tmp_path / "empty.cnf").write_text("")
    r = run(inst.openssl, ["fipsinstall", "-module", str(inst.module), "-out", str(out),
                           "-corrupt_desc", "SHA2", "-corrupt_type", "KAT_Digest"],
            {"LD_LIBRARY_PATH": str(inst.lib64), "OPENSSL_CONF": str(tmp_path / "empty.cnf")})
    assert r.returncode != 0 and b"INSTALL FAILED" in r.stderr and not out.exists()


# --- Windows build under Wine ----------------------------------------------------------

def wine_run(w, args, env, stdin=b""):
    return subprocess.run([w["wine"], w["openssl"], *args], capture_output=True, input=stdin,
                          env={**os.environ, **env}, timeout=120)


@pytest.mark.wine
def test_wine_fips_with_forward_slashes_and_backslash_failure(wine_install):
    w = wine_install
    cfg = os.path.join(w["gcti"], "ORS_FIPS_CFG")
    open(os.path.join(cfg, "empty.cnf"), "w").close()
    r = wine_run(w, ["fipsinstall", "-out", r"C:\GCTI\ORS_FIPS_CFG\fipsmodule.cnf",
                     "-module", r"C:\GCTI\ORS 8.1.401.11\fips\fips.dll"],
                 {"OPENSSL_CONF": r"C:\GCTI\ORS_FIPS_CFG\empty.cnf"})
    assert b"INSTALL PASSED" in r.stderr, r.stderr
    env = {"OPENSSL_CONF": r"C:\GCTI\ORS_FIPS_CFG\openssl.cnf",
           "OPENSSL_MODULES": r"C:\GCTI\ORS 8.1.401.11\fips"}
    with open(os.path.join(cfg, "openssl.cnf"), "w") as f:
        f.write(FIPS_CNF.format(include="C:/GCTI/ORS_FIPS_CFG/fipsmodule.cnf"))
    listing = wine_run(w, ["list", "-providers"], env).stdout.decode().replace("\r\n", "\n")
    assert "  fips\n" in listing and "status: active" in listing.split("  fips\n")[1]
    assert wine_run(w, ["dgst", "-md5"], env, b"x").returncode != 0
    assert wine_run(w, ["dgst", "-sha256"], env, b"x").returncode == 0

    # The vendor guide's warning, reproduced: backslashes are escapes in OpenSSL's syntax.
    with open(os.path.join(cfg, "openssl.cnf"), "w") as f:
        f.write(FIPS_CNF.format(include=r"C:\GCTI\ORS_FIPS_CFG\fipsmodule.cnf"))
    r = wine_run(w, ["list", "-providers"], env)
    out = (r.stdout + r.stderr).decode()
    assert "  fips\n" not in out.replace("\r\n", "\n")
    assert "C:GCTIORS_FIPS_CFGfipsmodule.cnf" in out
