"""The environment `fipsboot run` gives the server in FIPS and non-FIPS mode."""
from __future__ import annotations

import pytest
from helpers import fipsboot, sourced
from modulefaults import flip_rodata_byte
from runhelpers import (
    VARIABLES,
    cache_file,
    caller_env,
    env_of_server,
    installed,
    run_wrapped,
    without,
)

# --- the environment the server gets ----------------------------------------------------

def test_fips_environment_overrides_openssl_vars_and_keeps_the_rest(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    fips_dir = str(inst.module.parent)
    env = caller_env(
        OPENSSL_CONF=str(tmp_path / "other" / "openssl.cnf"),
        OPENSSL_MODULES=str(tmp_path / "other" / "modules"),
        LD_LIBRARY_PATH=f"/opt/other/lib:{inst.security_pack}:{fips_dir}:/opt/more lib",
        FIPSBOOT_TEST_KEPT="a b $c \"d\" 'e'",
        SSL_CERT_FILE="/etc/ssl/certs/ca-certificates.crt",
    )
    r = run_wrapped(profile, "env", "-0", env=env, text=False)
    seen = env_of_server(r)
    assert seen["OPENSSL_CONF"] == str(inst.config_dir / "openssl.cnf")
    assert seen["OPENSSL_MODULES"] == fips_dir
    # Led by <install>/fips then lib64; the Security Pack (the other mode's) dropped; the
    # caller's other entries kept, in order.
    assert seen["LD_LIBRARY_PATH"] == f"{fips_dir}:{inst.lib64}:/opt/other/lib:/opt/more lib"
    assert without(seen) == without(env)  # every other variable unchanged


def test_fips_environment_with_no_inherited_library_path(installation30):
    inst = installation30
    profile = installed(inst)
    env = caller_env(LD_LIBRARY_PATH=None, OPENSSL_CONF=None, OPENSSL_MODULES=None)
    seen = env_of_server(run_wrapped(profile, "env", "-0", env=env, text=False))
    assert seen["LD_LIBRARY_PATH"] == f"{inst.module.parent}:{inst.lib64}"
    assert without(seen) == without(env)


def test_nonfips_environment_drops_openssl_vars_and_the_fips_folder(installation, tmp_path):
    inst = installation
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    fips_dir = str(inst.module.parent)
    env = caller_env(OPENSSL_CONF=str(inst.config_dir / "openssl.cnf"),
                     OPENSSL_MODULES=fips_dir,
                     LD_LIBRARY_PATH=f"{fips_dir}:{inst.lib64}:/opt/other/lib",
                     FIPSBOOT_TEST_KEPT="kept")
    seen = env_of_server(run_wrapped(profile, "env", "-0", env=env, text=False))
    assert "OPENSSL_CONF" not in seen and "OPENSSL_MODULES" not in seen
    ld = seen["LD_LIBRARY_PATH"].split(":")
    assert ld == [str(inst.security_pack), str(inst.lib64), "/opt/other/lib"]
    assert fips_dir not in ld
    assert without(seen) == without(env)


def test_nonfips_mode_does_not_depend_on_the_module(installation30, tmp_path):
    """Non-FIPS mode loads no fips.so: a damaged module there does not stop the server."""
    inst = installation30
    profile = installed(inst)
    fipsboot("reset", "--profile", str(profile), check=0)
    flip_rodata_byte(inst.module)
    assert run_wrapped(profile, "sh", "-c", "exit 7").returncode == 7


@pytest.mark.parametrize("cache", ["cold", "warm"])
def test_fips_run_from_an_environment_that_already_holds_the_fips_values(installation, cache):
    """What `fipsboot install` writes into the account's environment (env file, systemd
    drop-in, shell profile) is what the wrapper inherits when the service manager or a login
    shell starts it: the wrapper's own checks must not be disturbed by it."""
    inst = installation
    profile = installed(inst)
    written = sourced(inst.envfile)
    assert set(written) == set(VARIABLES)
    if cache == "warm":
        assert run_wrapped(profile, "true").returncode == 0
        assert cache_file(inst).exists()
    r = run_wrapped(profile, "env", "-0", env=caller_env(**written), text=False)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    seen = env_of_server(r)
    assert {k: seen.get(k) for k in VARIABLES} == written
