"""Thin click commands: parse, call the core, print text or --json, exit with a code a script
can branch on (see errors.py and the README)."""
from __future__ import annotations

import json
import sys
from typing import Callable, Optional

import click

from . import __version__
from .errors import EXIT_FAILED, EXIT_OK, FipsbootError, UsageError


def _default(o):
    if hasattr(o, "to_json"):
        return o.to_json()
    raise TypeError(type(o))


def emit(result: dict, as_json: bool, text: Callable[[dict], None]) -> None:
    if as_json:
        click.echo(json.dumps(result, indent=1, default=_default))  # JSON escapes by itself
    else:
        text(result)


def abort(error: FipsbootError, as_json: bool) -> None:
    if as_json:
        # exit 5 (the change is made): also `changed` and the `checkpoint` it made
        click.echo(json.dumps({"error": str(error), "fix": error.fix, "exit_code": error.exit_code,
                               **getattr(error, "result", {})}, indent=1))
    else:
        # an error may quote OpenSSL's output over several lines: each line made printable
        first, *more = str(error).rstrip().split("\n")
        say(f"fipsboot: error: {first}", err=True)
        for line in more:
            say(f"  {line}", err=True)
        if error.fix:
            say(f"fix: {error.fix}", err=True)
    sys.exit(error.exit_code)


def say(line: str = "", err: bool = False) -> None:
    """One line of text output: untrusted values in it (process names, certificate subjects,
    OpenSSL's lines) can't move the cursor, retitle the terminal or start a forged line."""
    from .printable import printable

    click.echo(printable(line), err=err)


def load_profile(path: str):
    from .profile import load

    return load(path)


def guarded(as_json: bool, fn: Callable[[], int]) -> None:
    try:
        code = fn()
    except FipsbootError as e:
        abort(e, as_json)
    except BrokenPipeError:  # the reader went away (`| head`): nothing more to say to it
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(EXIT_FAILED)
    except OSError as e:  # a file or folder fipsboot could not read or write; changes rolled back
        abort(FipsbootError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "),
                            "check that the path exists and this user may write it"), as_json)
    sys.exit(code)


def print_plan(result: dict) -> None:
    plan = result.get("plan")
    verb = {"dry-run": "would change", "unchanged": "unchanged"}.get(result["status"], "changed")
    say(f"{result['command']}: {result['status']}")
    for c in plan.changes if plan else []:
        say(f"  {c.action:9} {c.label}" + (f"  ({c.key})" if c.key not in c.label else ""))
        for name, (old, new) in c.variables.items():
            if old != new:
                say(f"            {name}: {old!r} -> {new!r}")
        for note in c.notes if c.changed else []:
            say(f"            note: {note}")
    if plan and not plan.pending and verb != "unchanged":
        say("  nothing to change")
    for note in result.get("notes", []):
        say(f"note: {note}")


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
            abort(UsageError(e.format_message(), f"see `{command} --help` for the options"), True)
        except click.ClickException as e:
            abort(FipsbootError(e.format_message()), True)
        except click.Abort:
            abort(FipsbootError("aborted"), True)
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

        profile = load_profile(profile_path)
        mode, checks = verify_profile(profile, live=not fast)
        ok = verdict_ok(checks, strict)
        result = {"ok": ok, "mode": mode, "checks": checks}
        if profile.tls is not None:  # as install says it: the live handshakes are tls-check's
            result["notes"] = [TLS_NOTE]

        def text(r: dict) -> None:
            for c in checks:
                label = "PASS" if c.ok else ("FAIL" if c.fails(strict) else "WARN")
                say(f"{label}  {c.name:15} {c.reason}")
                if not c.ok and c.fix:
                    say(f"      {'':15} fix: {c.fix}")
            say(f"verify ({mode}): {'passed' if ok else 'FAILED'}")
            if profile.tls is not None:
                say(f"note: {TLS_NOTE}")
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
        from . import rollback as core

        profile = load_profile(profile_path)
        if list_only:
            result = core.checkpoints(profile)

            def text(r: dict) -> None:
                say(f"mode: {r['mode']}")
                for c in r["checkpoints"]:
                    say(f"  {c['id']:3}  {c['time']}  {c['command']:8} {c['status']:12} "
                               f"{len(c['changes'])} change(s)")
            emit(result, as_json, text)
            return EXIT_OK
        result = core.rollback(profile, to=to, dry_run=dry_run, force=force)

        def text(r: dict) -> None:
            if r["dry_run"]:
                for c in r["would_undo"]:
                    say(f"would undo {c['id']} ({c['command']}): {', '.join(c['restores'])}")
                if r["edited_since"]:
                    say(f"edited since fipsboot wrote them (needs --force): "
                               f"{', '.join(r['edited_since'])}")
                return
            for c in r["undone"]:
                say(f"undid {c['id']} ({c['command']}): {', '.join(c['restored']) or '-'}")
            say(f"mode now: {r['mode'] or 'as before fipsboot'}")
            for note in r.get("notes", []):
                say(f"note: {note}")
        emit(result, as_json, text)
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
        emit(result, as_json, print_status)
        return result["exit_code"]
    guarded(as_json, go)


def print_status(r: dict) -> None:
    say(f"mode: {r['mode']}" + (f" (last change: {r['last_change']['command']} at "
                                       f"{r['last_change']['time']})"
                                       if r["last_change"]["time"] else ""))
    for p in r["processes"]:
        label = "OK  " if p["ok"] else "FAIL"
        say(f"{label} PID {p['pid']} {p['name']}  user {p['user'] or '(not readable)'}, "
                   f"started {p['started']}, found by {', '.join(p['found_by'])}")
        if p["cmdline"]:
            say(f"       command: {' '.join(p['cmdline'])}")
        fips = p["fips_module"]
        say(f"       fips provider: {fips['state']}"
                   + (f" ({', '.join(fips['paths'])})" if fips["paths"] else "")
                   + (f": {fips['reason']}" if fips.get("reason") else ""))
        if p["libraries"]:
            say(f"       libraries: {', '.join(p['libraries'])}")
        env = p["environment"]
        if env["readable"]:
            say("       environment: " + ", ".join(
                f"{k}={env[k]}" if env[k] is not None else f"{k} unset"
                for k in ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH")))
        else:
            say(f"       environment: {env['reason']}")
        for problem in p["problems"]:
            say(f"       why: {problem['reason']}")
            say(f"       fix: {problem['fix']}")
    if not r["processes"]:
        say("no running server found")
    for c in r["checks"]:
        if not c["name"].startswith("process ") and not c["ok"]:
            say(f"FAIL {c['name']}: {c['reason']}")
            if c["fix"]:
                say(f"     fix: {c['fix']}")
    for note in r["notes"]:
        say(f"note: {note}")
    say(f"status: {r['summary']} (exit {r['exit_code']})")
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

        def text(r: dict) -> None:
            for c in r["checks"]:
                label = "PASS" if c.ok else ("FAIL" if c.fails(strict) else "WARN")
                say(f"{label}  {c.name:23} {c.reason}")
                if not c.ok and c.fix:
                    say(f"      {'':23} fix: {c.fix}")
            for p in r["peers"]:
                say(f"peer {p['peer']}: {p['verdict']}")
                for name in ("fips", "non-fips"):
                    h = p["handshakes"][name]
                    got = (f"{h['protocol']} {h['cipher']} group {h['group'] or '-'}, verify "
                           f"{h['verify_code']} ({h['verify_message']})" if h["protocol"]
                           else "; ".join(h["errors"]) or "no handshake")
                    say(f"  {name:9} {got}")
                for c in p["chain"]:
                    say(f"  chain     {c['subject']}: {c['key']}, signed with "
                               f"{c['signature_hash'] or 'EdDSA'}")
            say(f"tls-check (FIPS environment {r['fips_environment']}): "
                       f"{'passed' if r['ok'] else 'FAILED'}: {r['summary']}")
        emit(result, as_json, text)
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
        emit(result, as_json, lambda r: [say(line) for line in text_lines(r)])
        return result["exit_code"]
    guarded(as_json, go)
