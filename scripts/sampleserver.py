"""A server installation laid out like ORS from a test-bed build: what the tests, the demo,
the benchmarks and the kill loop all start from.

Standard library only (platformdirs if installed), so any script of this folder can use it.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

LINUX_VERSIONS = ["3.0", "3.5"]


def testbed_dir() -> Path:
    """Where scripts/testbed.py put the builds (its testbed.json describes them)."""
    if os.environ.get("FIPSBOOT_TESTBED_DIR"):
        return Path(os.environ["FIPSBOOT_TESTBED_DIR"])
    import platformdirs

    return Path(platformdirs.user_cache_dir("fipsboot")) / "testbed"


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


def sourced(path: Path, names=("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")) -> Dict:
    """What `. FILE` in sh defines, read back through the shell itself."""
    script = ". \"$1\"; " + "; ".join(
        f'if [ -n "${{{n}+x}}" ]; then printf "%s\\0%s\\0" {n} "${n}"; fi' for n in names)
    out = subprocess.run(["sh", "-c", script, "sh", str(path)], capture_output=True, check=True,
                         env={"PATH": os.environ["PATH"]}).stdout.decode()
    parts = out.split("\0")[:-1]
    return dict(zip(parts[::2], parts[1::2]))
