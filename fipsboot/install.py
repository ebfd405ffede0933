"""`fipsboot install`: from "ships a FIPS module" to "the server's account is set for FIPS",
all or nothing.

Order: check the host; run fipsinstall into a staging folder beside the final files; prove the
staged pair with the installation's openssl; only then write the files and the targets through
the journal; prove the final files the same way, rolling everything back if that fails.
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from . import environ, fipsmodule, fsutil, opensslcnf, plan, verify
from .errors import FipsbootError
from .journal import Journal
from .layout import Layout
from .openssl import OpenSSL
from .profile import DEFAULT_FIPS_KEY
from .session import Session
from .vocabulary import FIPS


def preflight(layout: Layout) -> Dict[str, str]:
    """Refuse before anything changes: missing pieces, loose permissions, an openssl that
    does not run with the installation's own libraries."""
    module, openssl = layout.host(layout.module), layout.host(layout.openssl)
    for what, path in (("fips module", module), ("openssl binary", openssl)):
        if not path.is_file():
            raise FipsbootError(f"{what} not found: {path}", "fix the path in the profile")
    config = layout.host(layout.config_dir)
    if not config.is_dir():
        raise FipsbootError(f"config folder {config} does not exist (or is not a folder)",
                            f"create it, not writable by group or others: mkdir -m 755 '{config}'")
    from .trust import trust_problems

    loose = trust_problems(layout)
    if loose:
        raise FipsbootError("; ".join(loose) + ": whoever can write there chooses the code "
                            "root runs and the server loads. Nothing was changed.",
                            "chown root and chmod go-w each path named (folders on the way: "
                            "chmod o-w)")
    if not os.access(config, os.W_OK):
        raise FipsbootError(f"config folder {config} is not writable by this user")
    openssl_runner = OpenSSL(layout)
    env = openssl_runner.env(staged_env(layout, None))  # `openssl version` needs no config
    return {"openssl": openssl_runner.version(env)}


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


def prove(layout: Layout, env: Dict[str, str], when: str) -> List[verify.Check]:
    openssl = OpenSSL(layout, env)
    checks = verify.live_checks(openssl, env)
    bad = [c for c in checks if c.fails()]
    if bad:
        hint = ("" if layout.profile.fips_key == DEFAULT_FIPS_KEY else
                " ([server] fips-key is set: a module built with another key refuses to load; "
                "check fips-key)")
        raise FipsbootError(f"{when}: " + "; ".join(f"{c.name}: {c.reason}" for c in bad)
                            + hint + ". Nothing was changed.", fix=bad[0].fix)
    return checks


def install(profile, dry_run: bool = False, force: bool = False) -> dict:
    result: dict = {"command": "install", "dry_run": dry_run, "notes": []}
    with Session(profile).changing(dry_run) as session:
        layout, journal = session.layout, session.journal
        result["notes"] += plan.recovery_notes(session)
        result["versions"] = preflight(layout)
        reuse = reusable_fipsmodule(layout, journal)
        module_path = layout.host(layout.fipsmodule_cnf)
        final_cnf = opensslcnf.render(layout, layout.fipsmodule_cnf).encode()

        if dry_run:
            module_bytes = fsutil.read(module_path) if reuse else b"(new output of fipsinstall)"
            the_plan = build_plan(session, final_cnf, module_bytes)
            if not reuse:
                next(c for c in the_plan.changes if c.label == "fipsmodule.cnf").notes.append(
                    "regenerated by `openssl fipsinstall`")
            return plan.dry_run_result(result, the_plan, journal, FIPS, force)

        with staging(layout) as stage:
            if reuse:
                module_bytes = module_path.read_bytes()
                stage.write("fipsmodule.cnf", module_bytes)
            else:
                module_bytes, report = run_fipsinstall(layout, stage)
                result["self_tests"] = report.self_tests
            staged_cnf = opensslcnf.render(layout, stage.native("fipsmodule.cnf"))
            stage.write("openssl.cnf", staged_cnf.encode())
            env = OpenSSL(layout).env(staged_env(layout, stage.native("openssl.cnf")))
            overridden = wine_registry_conflict(layout, env)
            if overridden:  # proved below, with the registry state install leaves
                result["notes"].append(f"{overridden}: the files are proved with the "
                                       f"registry state install leaves")
            else:
                result["proof"] = [c.to_json() for c in prove(layout, env, "the new files fail")]

        def prove_final() -> None:
            env = session.launch_environment(FIPS)
            overridden = wine_registry_conflict(layout, env)
            if overridden:
                raise FipsbootError(f"the installed files can't take effect: {overridden}. "
                                    f"Nothing was changed.",
                                    fix="delete that value, or add its key as a target "
                                        "(`machine`, `user:NAME`), and run install again")
            checks = prove(layout, env, "the installed files fail")
            result.setdefault("proof", [c.to_json() for c in checks])

        def prove_unchanged() -> None:
            if "proof" not in result:  # Wine's registry held the proof back: prove now
                prove_final()

        return plan.carry_out(session, result, build_plan(session, final_cnf, module_bytes),
                              FIPS, force, prove_final, "installed", extra={
                                  "fipsinstall-options": list(profile.fipsinstall_options),
                                  "ld_dirs": environ.lead_dirs(layout, FIPS)},
                              prove_unchanged=prove_unchanged)


def wine_registry_conflict(layout: Layout, env: Dict[str, str]) -> Optional[str]:
    """Under a Wine launcher, a registry value that would override `env` for openssl.exe."""
    if not (layout.windows and layout.profile.launcher):
        return None
    from .platforms import wineenv

    return wineenv.conflict(layout, env)


def build_plan(session: Session, cnf: bytes, module: bytes) -> plan.Plan:
    layout = session.layout
    changes = [plan.whole_file(layout.host(layout.openssl_cnf), "openssl.cnf", cnf),
               plan.whole_file(layout.host(layout.fipsmodule_cnf), "fipsmodule.cnf", module)]
    switch = plan.switch_change(layout, True)
    if switch is not None:
        changes.append(switch)
    return plan.Plan(changes + plan.target_changes(session, FIPS))
