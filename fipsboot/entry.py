"""Console-script entry point. `fipsboot run` takes a lean path without click: it sits in the
server's start-up, and every import there is paid on each launch."""
from __future__ import annotations

import sys

from .errors import EXIT_USAGE, FipsbootError


def run_server(profile_path: str, argv: list, dry_run: bool, as_json: bool) -> int:
    from .profile import load
    from .runner import run

    return run(load(profile_path), argv, dry_run=dry_run, as_json=as_json)


def entry() -> None:
    """Console script: `run` takes a lean path (no click) since it sits in the server's start-up."""
    from . import processenv

    processenv.isolate()
    argv = sys.argv[1:]
    if argv[:1] == ["run"] and "--" in argv and not {"-h", "--help"} & set(argv[:argv.index("--")]):
        sys.exit(lean_run(argv[1:]))
    from .cli import main

    main()


def lean_run(args: list) -> int:
    split = args.index("--")
    opts, server = args[:split], args[split + 1:]
    profile_path, dry_run, as_json = None, False, False
    i = 0
    while i < len(opts):
        if opts[i] == "--profile" and i + 1 < len(opts):
            profile_path, i = opts[i + 1], i + 2
        elif opts[i].startswith("--profile="):
            profile_path, i = opts[i].split("=", 1)[1], i + 1
        elif opts[i] in ("--dry-run", "--json"):
            dry_run, as_json = dry_run or opts[i] == "--dry-run", as_json or opts[i] == "--json"
            i += 1
        else:
            return usage_error(f"fipsboot run: no such option: {opts[i]} (options go before --)",
                               "--json" in opts)
    if profile_path is None:
        return usage_error("fipsboot run: --profile is required", as_json)
    if not dry_run:  # a launch verified before, nothing changed since: exec from here
        from . import processenv, warmrun

        warmrun.launch(profile_path, server, processenv.caller())
    try:
        return run_server(profile_path, server, dry_run, as_json)
    except FipsbootError as e:
        return report_error(e, as_json)


def usage_error(message: str, as_json: bool) -> int:
    return report_error(FipsbootError(message, "fipsboot run --profile PROFILE [--dry-run] "
                                               "[--json] -- SERVER [ARGS...]"), as_json,
                        EXIT_USAGE)


def report_error(e: FipsbootError, as_json: bool, code=None) -> int:
    """Errors in JSON too, like every command (and on stderr for the log), made printable
    (the message may quote a path or OpenSSL's output). Only on the error path: no import
    is added to a good start."""
    code = e.exit_code if code is None else code
    if as_json:
        import json

        print(json.dumps({"error": str(e), "fix": e.fix, "exit_code": code}, indent=1))
    from .printable import printable

    print(f"fipsboot: error: {printable(e)}", file=sys.stderr)
    if e.fix:
        print(f"fix: {printable(e.fix)}", file=sys.stderr)
    return code
