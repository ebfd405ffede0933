"""Thin click commands: parse, call the core, print text or --json, exit with a code a script
can branch on (see errors.py and the README)."""
from __future__ import annotations

import json
import sys
from typing import Callable, Optional

import click

from . import __version__
from .errors import EXIT_FAILED, EXIT_OK, FipsbootError


def _default(o):
    if hasattr(o, "to_json"):
        return o.to_json()
    raise TypeError(type(o))


def emit(result: dict, as_json: bool, text: Callable[[dict], None]) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=1, default=_default))
    else:
        text(result)


def abort(error: FipsbootError, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"error": str(error), "fix": error.fix,
                               "exit_code": error.exit_code}, indent=1))
    else:
        click.echo(f"fipsboot: error: {error}", err=True)
        if error.fix:
            click.echo(f"fix: {error.fix}", err=True)
    sys.exit(error.exit_code)


def load_profile(path: str):
    from .profile import load

    return load(path)


def guarded(as_json: bool, fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except FipsbootError as e:
        abort(e, as_json)
    except OSError as e:  # a file or folder fipsboot could not read or write; changes rolled back
        abort(FipsbootError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "),
                            "check that the path exists and this user may write it"), as_json)
    sys.exit(code)


def print_plan(result: dict) -> None:
    plan = result.get("plan")
    verb = {"dry-run": "would change", "unchanged": "unchanged"}.get(result["status"], "changed")
    click.echo(f"{result['command']}: {result['status']}")
    for c in plan.changes if plan else []:
        click.echo(f"  {c.action:9} {c.label}" + (f"  ({c.key})" if c.key not in c.label else ""))
        for name, (old, new) in c.variables.items():
            if old != new:
                click.echo(f"            {name}: {old!r} -> {new!r}")
        for note in c.notes if c.changed else []:
            click.echo(f"            note: {note}")
    if plan and not plan.pending and verb != "unchanged":
        click.echo("  nothing to change")
    for note in result.get("notes", []):
        click.echo(f"note: {note}")


profile_option = click.option("--profile", "profile_path", required=True,
                              type=click.Path(dir_okay=False), help="the installation's TOML profile")
json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
dry_run_option = click.option("--dry-run", is_flag=True, help="print the plan, change nothing")
force_option = click.option("--force", is_flag=True,
                            help="overwrite files edited by hand (the edited copy is journaled)")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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

        result = do_install(load_profile(profile_path), dry_run=dry_run, force=force)
        emit(result, as_json, print_plan)
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

        mode, checks = verify_profile(load_profile(profile_path), live=not fast)
        ok = verdict_ok(checks, strict)
        result = {"ok": ok, "mode": mode, "checks": checks}

        def text(r: dict) -> None:
            for c in checks:
                label = "PASS" if c.ok else ("FAIL" if c.fails(strict) else "WARN")
                click.echo(f"{label}  {c.name:15} {c.reason}")
                if not c.ok and c.fix:
                    click.echo(f"      {'':15} fix: {c.fix}")
            click.echo(f"verify ({mode}): {'passed' if ok else 'FAILED'}")
        emit(result, as_json, text)
        return EXIT_OK if ok else EXIT_FAILED
    guarded(as_json, go)


@main.command(context_settings={"ignore_unknown_options": True})
@profile_option
@dry_run_option
@json_option
@click.argument("server", nargs=-1, type=click.UNPROCESSED)
def run(profile_path: str, dry_run: bool, as_json: bool, server: tuple) -> None:
    """Verify, then start SERVER in the installation's mode: fipsboot run --profile P -- SERVER..."""
    from .entry import run_server

    guarded(as_json, lambda: run_server(profile_path, list(server), dry_run, as_json))


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
        emit(result, as_json, print_plan)
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
        from . import reset as core

        profile = load_profile(profile_path)
        if list_only:
            result = core.checkpoints(profile)

            def text(r: dict) -> None:
                click.echo(f"mode: {r['mode']}")
                for c in r["checkpoints"]:
                    click.echo(f"  {c['id']:3}  {c['time']}  {c['command']:8} {c['status']:12} "
                               f"{len(c['changes'])} change(s)")
            emit(result, as_json, text)
            return EXIT_OK
        result = core.rollback(profile, to=to, dry_run=dry_run, force=force)

        def text(r: dict) -> None:
            if r["dry_run"]:
                for c in r["would_undo"]:
                    click.echo(f"would undo {c['id']} ({c['command']}): {', '.join(c['restores'])}")
                if r["edited_since"]:
                    click.echo(f"edited since fipsboot wrote them (needs --force): "
                               f"{', '.join(r['edited_since'])}")
                return
            for c in r["undone"]:
                click.echo(f"undid {c['id']} ({c['command']}): {', '.join(c['restored']) or '-'}")
            click.echo(f"mode now: {r['mode'] or 'as before fipsboot'}")
            for note in r.get("notes", []):
                click.echo(f"note: {note}")
        emit(result, as_json, text)
        return EXIT_OK
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

        result = build(load_profile(profile_path))
        if html_path:
            from pathlib import Path

            from .fsutil import atomic_write
            from .reporthtml import render

            atomic_write(Path(html_path), render(result).encode("utf-8"), 0o644)
        emit(result, as_json, lambda r: click.echo("\n".join(text_lines(r))))
        return result["exit_code"]
    guarded(as_json, go)
