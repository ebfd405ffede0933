"""Fixtures: the real OpenSSL test bed and server installations laid out from it.

The test bed is built by `scripts/testbed.py` (the README's test command does it). In CI
(CI=true) a missing test bed fails the run; elsewhere the tests that need it skip, saying how
to build it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINUX_VERSIONS = ["3.0", "3.5"]


def testbed_dir() -> Path:
    if os.environ.get("FIPSBOOT_TESTBED_DIR"):
        return Path(os.environ["FIPSBOOT_TESTBED_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("fipsboot")) / "testbed"


def _missing(what: str):
    msg = f"{what} is not built: run `scripts/setup.sh` (or `python scripts/testbed.py`)"
    if os.environ.get("CI") == "true":
        pytest.fail(msg + " -- in CI a missing test bed is a failure", pytrace=False)
    pytest.skip(msg)


@pytest.fixture(scope="session")
def testbed() -> Dict[str, dict]:
    manifest = testbed_dir() / "testbed.json"
    if not manifest.exists():
        _missing("the OpenSSL test bed")
    return json.loads(manifest.read_text())


def build(testbed: Dict[str, dict], name: str) -> Path:
    if name not in testbed or not Path(testbed[name]["dir"], "build.json").exists():
        _missing(f"test bed build {name}")
    return Path(testbed[name]["dir"])


@dataclass
class Installation:
    """A server installation laid out like ORS, in a folder whose path has a space."""

    version: str  # "3.0" or "3.5"
    root: Path  # holds install dir, config dir, security pack, targets
    install_dir: Path
    config_dir: Path
    security_pack: Path
    build: Path

    @property
    def module(self) -> Path:
        return self.install_dir / "fips" / "fips.so"

    @property
    def openssl(self) -> Path:
        return self.install_dir / "tools" / "openssl"

    @property
    def lib64(self) -> Path:
        return self.install_dir / "lib64"

    @property
    def envfile(self) -> Path:
        return self.root / "etc default" / "gctilca"

    @property
    def systemd_dir(self) -> Path:
        return self.root / "systemd"

    @property
    def dropin(self) -> Path:
        return self.systemd_dir / "gctilca.service.d" / "50-fipsboot.conf"

    @property
    def shell_profile(self) -> Path:
        return self.root / "home" / ".profile"

    def write_profile(self, extra_server: str = "", targets: Optional[List[str]] = None,
                      name: str = "profile.toml") -> Path:
        if targets is None:
            targets = [f"envfile:{self.envfile}", "systemd:gctilca",
                       f"profile-file:{self.shell_profile}"]
        text = (
            "[server]\n"
            f"install-dir = {json.dumps(str(self.install_dir))}\n"
            f"config-dir = {json.dumps(str(self.config_dir))}\n"
            f"security-pack-dir = {json.dumps(str(self.security_pack))}\n"
            f"{extra_server}\n"
            "[account]\n"
            f"targets = {json.dumps(targets)}\n"
            f"systemd-dir = {json.dumps(str(self.systemd_dir))}\n"
        )
        path = self.root / name
        path.write_text(text)
        return path


def lay_out(build_dir: Path, root: Path, version: str) -> Installation:
    install = root / "GCTI" / "ORS 8.1.401.11"
    for sub in ("fips", "lib64", "tools"):
        (install / sub).mkdir(parents=True)
    shutil.copy2(build_dir / "fips" / "fips.so", install / "fips" / "fips.so")
    for lib in ("libcrypto.so.3", "libssl.so.3"):
        shutil.copy2(build_dir / "lib64" / lib, install / "lib64" / lib)
    shutil.copy2(build_dir / "bin" / "openssl", install / "tools" / "openssl")
    config = root / "GCTI" / "ORS_FIPS_CFG"
    config.mkdir()
    security_pack = root / "GCTI" / "security_pack"
    security_pack.mkdir()
    for lib in ("libcrypto.so.3", "libssl.so.3"):
        shutil.copy2(build_dir / "lib64" / lib, security_pack / lib)
    (root / "etc default").mkdir()
    (root / "home").mkdir()
    return Installation(version, root, install, config, security_pack, build_dir)


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


def fipsboot(*args: str, env: Optional[Dict[str, str]] = None, check: Optional[int] = None,
             **kwargs) -> subprocess.CompletedProcess:
    """Run the real command line, as an operator or a script would."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    p = subprocess.run([sys.executable, "-m", "fipsboot", *args], capture_output=True,
                       text=True, env=full_env, **kwargs)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def sourced(path: Path, names=("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")) -> Dict:
    """What `. FILE` in sh defines, read back through the shell itself."""
    script = ". \"$1\"; " + "; ".join(
        f'if [ -n "${{{n}+x}}" ]; then printf "%s\\0%s\\0" {n} "${n}"; fi' for n in names)
    out = subprocess.run(["sh", "-c", script, "sh", str(path)], capture_output=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout.decode()
    parts = out.split("\0")[:-1]
    return dict(zip(parts[::2], parts[1::2]))


def tree_snapshot(root: Path) -> Dict[str, tuple]:
    """Every file under root with its bytes and mode (to prove nothing changed)."""
    snap = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.is_symlink():
            snap[str(p.relative_to(root))] = (p.read_bytes(), p.stat().st_mode, p.stat().st_mtime_ns)
    return snap


def providers_with_env(openssl: Path, env: Dict[str, str]) -> str:
    return subprocess.run([str(openssl), "list", "-providers"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "LANG": "C", **env}).stdout


def contents(snapshot: Dict[str, tuple]) -> Dict[str, tuple]:
    """A snapshot without mtimes: bytes and mode only (restored files are rewritten)."""
    return {k: v[:2] for k, v in snapshot.items()}


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
