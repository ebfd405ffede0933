"""Fixtures: the real OpenSSL test bed and server installations laid out from it.

The test bed is built by `scripts/testbed.py` (the README's test command does it). In CI
(CI=true) a missing test bed fails the run; elsewhere the tests that need it skip, saying how
to build it. Shared helpers (running the command line, snapshots, the ORS-like layout) are in
helpers.py; test modules import them from there.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
from pathlib import Path
from typing import Dict

import pytest
from helpers import LINUX_VERSIONS, Installation, _missing, build, lay_out, testbed_dir
from runhelpers import without


@pytest.fixture(scope="session")
def testbed() -> Dict[str, dict]:
    manifest = testbed_dir() / "testbed.json"
    if not manifest.exists():
        _missing("the OpenSSL test bed")
    return json.loads(manifest.read_text())


@pytest.fixture(scope="session")
def wineserver(testbed):
    """One persistent wineserver for the session: each wine start then takes well under a
    second instead of several."""
    if "wine" not in testbed:
        _missing("the Wine prefix")
    env = {**os.environ, "WINEPREFIX": testbed["wine"]["prefix"], "WINEDEBUG": "-all"}
    server = shutil.which("wineserver") or "/usr/lib/wine/wineserver64"
    quiet = {"stdin": subprocess.DEVNULL, "stdout": subprocess.DEVNULL,
             "stderr": subprocess.DEVNULL}
    subprocess.run([server, "-p"], env=env, check=False, **quiet)
    # Start Wine's own services now, detached from any pipe a test will read.
    subprocess.run([testbed["wine"]["wine"], "cmd", "/c", "exit"], env=env, check=False,
                   timeout=300, **quiet)
    yield
    subprocess.run([server, "-k"], env=env, check=False)


@pytest.fixture
def wine_install(testbed, wineserver, monkeypatch):
    """C:\\GCTI\\ORS 8.1.401.11 with openssl.exe and fips.dll, inside the test bed's prefix."""
    if "wine" not in testbed:
        build(testbed, "wine")
    win = build(testbed, "windows-3.0")
    prefix = testbed["wine"]["prefix"]
    monkeypatch.setenv("WINEPREFIX", prefix)
    monkeypatch.setenv("WINEDEBUG", "-all")
    drive_c = os.path.join(prefix, "drive_c")
    gcti = os.path.join(drive_c, "GCTI")
    shutil.rmtree(gcti, ignore_errors=True)
    install = os.path.join(gcti, "ORS 8.1.401.11")
    os.makedirs(os.path.join(install, "fips"))
    os.makedirs(os.path.join(install, "tools"))
    os.makedirs(os.path.join(gcti, "ORS_FIPS_CFG"))
    shutil.copy2(win / "fips" / "fips.dll", os.path.join(install, "fips"))
    for f in (win / "bin").iterdir():
        shutil.copy2(f, os.path.join(install, "tools"))
    yield {"wine": testbed["wine"]["wine"], "gcti": gcti,
           "openssl": os.path.join(install, "tools", "openssl.exe")}
    shutil.rmtree(gcti, ignore_errors=True)


@pytest.fixture
def state_dir(tmp_path, monkeypatch) -> Path:
    state = tmp_path / "state"
    monkeypatch.setenv("FIPSBOOT_STATE_DIR", str(state))
    return state


@pytest.fixture(params=LINUX_VERSIONS, ids=lambda v: f"openssl-{v}")
def installation(request, testbed, tmp_path, state_dir) -> Installation:
    root = tmp_path / "server root"
    root.mkdir()
    return lay_out(build(testbed, f"linux-{request.param}"), root, request.param)


@pytest.fixture
def installation30(testbed, tmp_path, state_dir) -> Installation:
    root = tmp_path / "server root"
    root.mkdir()
    return lay_out(build(testbed, "linux-3.0"), root, "3.0")


@pytest.fixture
def login_account(tmp_path):
    """A real account in the account database (root only), removed afterwards."""
    if os.geteuid() != 0 or not shutil.which("useradd"):
        pytest.skip("needs root and useradd to create a test account")
    name = f"fbt{os.getpid() % 100000}"
    home = tmp_path / "home of user"
    subprocess.run(["useradd", "-M", "-d", str(home), "-s", "/bin/bash", name], check=True)
    home.mkdir()
    entry = pwd.getpwnam(name)
    os.chown(home, entry.pw_uid, entry.pw_gid)
    yield entry
    subprocess.run(["userdel", name], check=False)


@pytest.fixture(scope="module")
def cert_and_key(tmp_path_factory):
    """A self-signed RSA certificate for 127.0.0.1, made by the system openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the system openssl is needed to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256",
                    "-days", "2", "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, env=without(dict(os.environ)), timeout=30)
    return cert, key


@pytest.fixture
def redis(tmp_path) -> Path:
    """Debian's redis-server under a name of this test's own (a symlink): process-names then
    matches this test's server and no other Redis on the machine."""
    binary = shutil.which("redis-server")
    if binary is None:
        _missing("Debian's redis-server (scripts/setup.sh installs it)")
    link = tmp_path / f"rds{os.getpid() % 100000}"
    link.symlink_to(binary)
    return link


@pytest.fixture(scope="session")
def fleet():
    """Three booted Debian 12 test hosts (tests/fleet.py: real systemd as PID 1, SSH through
    each host's own network namespace), torn down at the end of the session; the teardown
    fails the session if anything of them is left behind."""
    import fleet as fleet_module

    missing = fleet_module.missing_requirements()
    if missing:
        _missing("the test hosts (needs " + ", ".join(missing) + ")")
    with fleet_module.Fleet(int(os.environ.get("FIPSBOOT_FLEET_SIZE", "3"))) as booted:
        yield booted


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory) -> Path:
    """fipsboot's wheel built from this checkout with its dependencies' wheels, to install on
    the test hosts (they have no network): `host.install_fipsboot(wheelhouse)`."""
    import fleet as fleet_module

    return fleet_module.build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
