"""Console-script entry point. `fipsboot run` takes a lean path without click: it sits in the
server's start-up, and every import there is paid on each launch. Imports go one way: this
module imports cli.py (every other command) and runner.py (run), neither imports it back."""
from __future__ import annotations

import sys


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
    from .output import guarded_launch

    return guarded_launch(lambda: full_run(profile_path, server, dry_run, as_json), as_json,
                          server)


def full_run(profile_path: str, server: list, dry_run: bool, as_json: bool) -> int:
    """Verify in full (and remember the facts for the next warm launch), then exec."""
    from .runner import run_command

    return run_command(profile_path, server, dry_run, as_json)


def usage_error(message: str, as_json: bool) -> int:
    """Only on the error path: no import is added to a good start."""
    from .errors import EXIT_USAGE, FipsbootError
    from .output import error

    return error(FipsbootError(message, "fipsboot run --profile PROFILE [--dry-run] [--json] "
                                        "-- SERVER [ARGS...]"), as_json, EXIT_USAGE, log=True)
