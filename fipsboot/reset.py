"""`fipsboot reset`: non-FIPS mode (no OPENSSL_CONF/OPENSSL_MODULES, the Security Pack leads
LD_LIBRARY_PATH, the server's switch off), proved before it is kept."""
from __future__ import annotations

from . import plan, verify
from .errors import FipsbootError
from .openssl import OpenSSL
from .session import Session
from .vocabulary import NONFIPS


def reset(profile, dry_run: bool = False, force: bool = False, purge: bool = False) -> dict:
    result: dict = {"command": "reset", "dry_run": dry_run, "notes": []}
    with Session(profile).changing(dry_run) as session:
        layout = session.layout
        result["notes"] += plan.recovery_notes(session, "reset")
        changes = plan.target_changes(session, NONFIPS)
        switch = plan.switch_change(layout, False)
        if switch is not None:
            changes.append(switch)
        if purge:
            changes += [plan.whole_file(layout.host(layout.openssl_cnf), "openssl.cnf", None),
                        plan.whole_file(layout.host(layout.fipsmodule_cnf), "fipsmodule.cnf", None)]
        the_plan = plan.Plan(changes)
        if not layout.windows and not layout.security_pack_dir:
            result["notes"].append("no [server] security-pack-dir in the profile: "
                                   "LD_LIBRARY_PATH keeps only the lib-dirs")
        if dry_run:
            return plan.dry_run_result(result, the_plan, session.journal, NONFIPS, force)

        def prove_nonfips() -> None:
            env = session.launch_environment(NONFIPS)
            check = verify.check_nonfips_providers(OpenSSL(layout, env), env)
            if not check.ok:
                raise FipsbootError(f"non-FIPS mode does not work: {check.reason}. "
                                    "Nothing was changed.")

        return plan.carry_out(session, result, the_plan, NONFIPS, force, prove_nonfips, "reset")
