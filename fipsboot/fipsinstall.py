"""fipsmodule.cnf made by `openssl fipsinstall` in a private staging folder beside the final
files (never in place), and when the one already there can stay."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Dict, Iterator, Optional

from . import environ, fipsmodule, fsutil
from .errors import FipsbootError
from .journal import Journal
from .layout import Layout
from .openssl import OpenSSL
from .profile import DEFAULT_FIPS_KEY
from .vocabulary import FIPS


def staged_env(layout: Layout, openssl_cnf: Optional[str]) -> Dict[str, Optional[str]]:
    """The FIPS variables, with OPENSSL_CONF pointing at `openssl_cnf` (None: unset)."""
    return {**environ.values(layout, FIPS), "OPENSSL_CONF": openssl_cnf}


class Staging:
    """The staging folder: `host` to write files, `native(name)` for the path openssl sees."""

    def __init__(self, layout: Layout, name: str):
        self.host = layout.host(layout.config_dir) / name
        self._native = layout.profile.pure_path(layout.config_dir) / name

    def native(self, name: str) -> str:
        return str(self._native / name)

    def write(self, name: str, data: bytes) -> None:
        """A staged file, 0600 whatever the umask: root's openssl reads it, and root starts no
        openssl on a configuration another account could change."""
        path = self.host / name
        path.write_bytes(data)
        os.chmod(path, 0o600)


@contextmanager
def staging(layout: Layout) -> Iterator[Staging]:
    """A private folder beside the final files, removed whatever happens. One fixed name,
    used under the installation's lock: a run killed mid-way leaves nothing the next won't
    clear."""
    stage = Staging(layout, ".fipsboot-staging")
    host = stage.host
    if host.exists() and not host.is_dir():
        raise FipsbootError(f"{host} is in the way of fipsboot's staging folder",
                            "move that file elsewhere")
    shutil.rmtree(host, ignore_errors=True)
    host.mkdir(mode=0o700)
    try:
        yield stage
    finally:
        shutil.rmtree(host, ignore_errors=True)


def reusable_fipsmodule(layout: Layout, journal: Journal) -> bool:
    """The current fipsmodule.cnf can stay: fipsboot wrote it, for this module, with these
    options (so `install` after `reset` returns quickly and a re-run writes nothing)."""
    path = layout.host(layout.fipsmodule_cnf)
    data = fsutil.read(path)
    if data is None or journal.managed.get(str(path)) != fsutil.digest(data):
        return False
    if journal.extra.get("fipsinstall-options") != list(layout.profile.fipsinstall_options):
        return False
    try:
        cnf = fipsmodule.parse(data.decode("utf-8"))
    except ValueError:
        return False
    mac = fipsmodule.module_mac(layout.host(layout.module), layout.profile.fips_key)
    return (not fipsmodule.key_problems(cnf)
            and fipsmodule.normalise_mac(cnf.module_mac) == fipsmodule.normalise_mac(mac))


def run_fipsinstall(layout: Layout, stage: Staging) -> tuple:
    openssl = OpenSSL(layout)
    stage.write("empty.cnf", b"")
    # An active FIPS config in the caller's environment must not load the provider first.
    env = openssl.env(staged_env(layout, stage.native("empty.cnf")))
    # fips-key goes to fipsinstall too, so the MAC it writes is the one verify recomputes.
    key = layout.profile.fips_key
    key_options = [] if key == DEFAULT_FIPS_KEY else ["-macopt", f"hexkey:{key}"]
    report = openssl.fipsinstall(layout.module, stage.native("fipsmodule.cnf"),
                                 [*layout.profile.fipsinstall_options, *key_options], env)
    if (stage.host / "fipsmodule.cnf").is_file():
        os.chmod(stage.host / "fipsmodule.cnf", 0o600)  # fipsinstall follows the umask
    if not report.passed or not (stage.host / "fipsmodule.cnf").exists():
        named = report.failed_tests
        fix = ("the FIPS module is damaged or does not match this openssl; reinstall the "
               "server's fips module")
        if key_options:
            fix = ("[server] fips-key is set: if the module was built with another HMAC key, its "
                   "integrity test fails; set fips-key to that key (or remove it for OpenSSL's "
                   "default). Otherwise " + fix)
        raise FipsbootError(
            "fipsinstall failed" + (": self-test " + "; ".join(named) if named else "")
            + ". Nothing was changed.\n" + report.raw, fix)
    data = (stage.host / "fipsmodule.cnf").read_bytes()
    written = fipsmodule.parse(data.decode("utf-8")).module_mac or ""
    if fipsmodule.normalise_mac(written) != fipsmodule.normalise_mac(
            fipsmodule.module_mac(layout.host(layout.module), key)):
        raise FipsbootError("fipsinstall wrote another module-mac than [server] fips-key gives: "
                            "fipsboot could never verify this installation. Nothing was changed.",
                            "set fips-key to the HMAC key the module was built with (or remove "
                            "it for OpenSSL's default key)")
    return data, report
