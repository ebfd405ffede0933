"""Thin click commands: parse, call the core, hand the result to output.py (text through
textviews.py, or --json), exit with a code a script can branch on (see errors.py and the
README)."""
from __future__ import annotations

import sys
from typing import Callable, Optional

import click

from . import __version__, output, textviews
from .errors import EXIT_FAILED, EXIT_OK, FipsbootError, UsageError


def load_profile(path: str):
    from .profile import load

    return load(path)


def guarded(as_json: bool, fn: Callable[[], int]) -> None:
    sys.exit(output.guarded(fn, as_json))


TLS_NOTE = ("the profile has a [tls] section: `fipsboot tls-check --profile PROFILE` checks that "
            "the server's TLS connections work in FIPS mode")
profile_option = click.option("--profile", "profile_path", required=True,
                              type=click.Path(dir_okay=False), help="the installation's TOML profile")
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
dry_run_option = click.option("--dry-run", is_flag=True, help="print the plan, change nothing")
force_option = click.option("--force", is_flag=True,
                            help="overwrite files edited by hand (the edited copy is journaled)")


class JsonGroup(click.Group):
    """Click's own usage errors (unknown option, missing --profile) as
    {"error","fix","exit_code"} when --json is on the command line, like every other error."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        argv = list(sys.argv[1:] if args is None else args)
        ours = argv[:argv.index("--")] if "--" in argv else argv  # not the server's own args
        if not standalone_mode or "--json" not in ours:
            return super().main(argv, prog_name, complete_var, standalone_mode, **extra)
        try:
            rv = super().main(argv, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as e:
            command = e.ctx.command_path if e.ctx else "fipsboot"
            sys.exit(output.error(UsageError(e.format_message(),
                                             f"see `{command} --help` for the options"), True))
        except click.ClickException as e:
            sys.exit(output.error(FipsbootError(e.format_message()), True))
        except click.Abort:
            sys.exit(output.error(FipsbootError("aborted"), True))
        sys.exit(rv if isinstance(rv, int) else 0)


@click.group(cls=JsonGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fipsboot")
def main() -> None:
    """Put a server that ships its own OpenSSL 3 FIPS provider into FIPS mode, keep it there,
    and take it back out."""


@main.command()
@profile_option
@dry_run_option
@force_option
@json_option
def install(profile_path: str, dry_run: bool, force: bool, as_json: bool) -> None:
    """Run fipsinstall, write openssl.cnf and fipsmodule.cnf, set the account's environment."""
    def go() -> int:
        from .install import install as do_install

        profile = load_profile(profile_path)
        result = do_install(profile, dry_run=dry_run, force=force)
        if profile.tls is not None:
            result["notes"].append(TLS_NOTE)
        output.result(result, as_json, textviews.plan)
        return EXIT_OK
    guarded(as_json, go)


@main.command()
@profile_option
@click.option("--fast", is_flag=True, help="only the checks that start no process")
@click.option("--strict", is_flag=True, help="warnings fail the verdict too (exit 1)")
@json_option
def verify(profile_path: str, fast: bool, strict: bool, as_json: bool) -> None:
    """Prove that a server started with this installation's environment runs with an active
    FIPS provider (exit 0), or say which check fails and why (exit 1)."""
    def go() -> int:
        from .checks import verdict_ok
        from .verify import verify_profile

        profile = load_profile(profile_path)
        mode, checks = verify_profile(profile, live=not fast)
        ok = verdict_ok(checks, strict)
        result = {"ok": ok, "mode": mode, "checks": checks}
        if profile.tls is not None:  # as install says it: the live handshakes are tls-check's
            result["notes"] = [TLS_NOTE]
        output.result(result, as_json, lambda r: textviews.verify(r, strict))
        return EXIT_OK if ok else EXIT_FAILED
    guarded(as_json, go)


@main.command(context_settings={"ignore_unknown_options": True})
@profile_option
@dry_run_option
@json_option
@click.argument("server", nargs=-1, type=click.UNPROCESSED)
def run(profile_path: str, dry_run: bool, as_json: bool, server: tuple) -> None:
    """Verify, then start SERVER in the installation's mode: fipsboot run --profile P -- SERVER..."""
    from .runner import run_command

    argv = list(server)
    sys.exit(output.guarded_launch(lambda: run_command(profile_path, argv, dry_run, as_json),
                                   as_json, argv))


@main.command()
@profile_option
@dry_run_option
@force_option
@click.option("--purge", is_flag=True, help="also remove openssl.cnf and fipsmodule.cnf")
@json_option
def reset(profile_path: str, dry_run: bool, force: bool, purge: bool, as_json: bool) -> None:
    """Non-FIPS mode: no OPENSSL_CONF/OPENSSL_MODULES, Security Pack on LD_LIBRARY_PATH."""
    def go() -> int:
        from .reset import reset as do_reset

        result = do_reset(load_profile(profile_path), dry_run=dry_run, force=force, purge=purge)
        output.result(result, as_json, textviews.plan)
        return EXIT_OK
    guarded(as_json, go)


@main.command()
@profile_option
@click.option("--to", "to", type=int, help="undo down to and including checkpoint N")
@click.option("--list", "list_only", is_flag=True, help="list the checkpoints")
@dry_run_option
@force_option
@json_option
def rollback(profile_path: str, to: Optional[int], list_only: bool, dry_run: bool, force: bool,
             as_json: bool) -> None:
    """Restore the state before the last journaled change (or checkpoint --to N)."""
    def go() -> int:
        from . import rollback as core

        profile = load_profile(profile_path)
        if list_only:
            output.result(core.checkpoints(profile), as_json, textviews.checkpoints)
            return EXIT_OK
        result = core.rollback(profile, to=to, dry_run=dry_run, force=force)
        output.result(result, as_json, textviews.rollback)
        return EXIT_OK
    guarded(as_json, go)


@main.command()
@profile_option
@click.option("--require-running", is_flag=True,
              help="no running server found is inconsistent (exit 1)")
@json_option
def status(profile_path: str, require_running: bool, as_json: bool) -> None:
    """Is the running server in the installation's mode? Proof from the processes themselves:
    0 FIPS mode, every server with this installation's FIPS provider mapped; 1 inconsistent
    (each reason named); 2 non-FIPS mode, no server with a FIPS provider mapped."""
    def go() -> int:
        from .status import status_report

        result = status_report(load_profile(profile_path), require_running=require_running)
        output.result(result, as_json, textviews.status)
        return result["exit_code"]
    guarded(as_json, go)


@main.command("tls-check")
@profile_option
@click.option("--peer", "peers", multiple=True, metavar="HOST:PORT",
              help="a TLS endpoint the server talks to (repeatable; adds to [tls] peers)")
@click.option("--cert", type=click.Path(dir_okay=False), help="the server's client certificate (PEM)")
@click.option("--key", type=click.Path(dir_okay=False), help="the private key of --cert (PEM)")
@click.option("--cacert", type=click.Path(dir_okay=False), help="the CAs that sign the peers (PEM)")
@click.option("--strict", is_flag=True, help="warnings (findings) fail the verdict too (exit 1)")
@json_option
def tls_check(profile_path: str, peers: tuple, cert: Optional[str], key: Optional[str],
              cacert: Optional[str], strict: bool, as_json: bool) -> None:
    """Will the server's TLS connections still work in FIPS mode? Checks its certificate and key,
    and shakes hands with each peer with and without FIPS (read-only)."""
    def go() -> int:
        from .tlscheck import tls_check as check

        result = check(load_profile(profile_path), peers, cert, key, cacert, strict)

        output.result(result, as_json, lambda r: textviews.tls_check(r, strict))
        return EXIT_OK if result["ok"] else EXIT_FAILED
    guarded(as_json, go)


@main.command()
@profile_option
@click.option("--html", "html_path", type=click.Path(dir_okay=False),
              help="also write the report as one self-contained HTML page to this file")
@json_option
def report(profile_path: str, html_path: Optional[str], as_json: bool) -> None:
    """Evidence an auditor can keep: host, provider, module MAC, self-tests, every check, the
    CMVP status and the journal's history (exit 0: the evidence shows FIPS mode; 1: it does
    not)."""
    def go() -> int:
        from .report import build, text_lines
        from .reporthtml import check_target, write

        profile = load_profile(profile_path)
        target = check_target(html_path) if html_path else None  # before the slow part
        result = build(profile)
        if target:
            write(target, result)
        output.result(result, as_json, text_lines)
        return result["exit_code"]
    guarded(as_json, go)
