"""Everything fipsboot prints, for the click commands (cli.py) and `run`'s lean entry (entry.py)
alike: a result as JSON or as text lines, an error as `{"error","fix","exit_code"}` or as
"fipsboot: error: ... / fix: ...", `run`'s refusals (also to the system log), and a reader that
went away. Text goes through `printable` (untrusted values can't drive the terminal); JSON is
escaped by its encoder.

Standard library only, and nothing imported at the top that `run` would pay for: `json`,
`syslog` and `traceback` are imported by the functions that need them. The per-command text
renderers are in textviews.py; each returns lines, written here.
"""
from __future__ import annotations

import os
import sys

from .errors import EXIT_FAILED, EXIT_REFUSED, FipsbootError
from .printable import printable

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `run`'s start-up imports no typing
    from typing import Callable, Iterable, Optional


def write(text: str, err: bool = False) -> None:
    """One line as it is (JSON, or text already made printable), flushed at once so stdout and
    stderr keep their order in a shared log."""
    stream = sys.stderr if err else sys.stdout
    try:
        stream.write(text + "\n")
    except UnicodeEncodeError:  # an ASCII-only stream (PYTHONIOENCODING): UTF-8 bytes, as click
        stream.flush()
        stream.buffer.write((text + "\n").encode("utf-8", "replace"))
    stream.flush()


def say(line: str = "", err: bool = False) -> None:
    """One line of text output: untrusted values in it (process names, certificate subjects,
    OpenSSL's lines) can't move the cursor, retitle the terminal or start a forged line."""
    write(printable(line), err)


def _default(o):
    if hasattr(o, "to_json"):
        return o.to_json()
    raise TypeError(type(o))


def write_json(value) -> None:
    import json

    write(json.dumps(value, indent=1, default=_default))  # JSON escapes by itself


def result(value: dict, as_json: bool, render: Callable[[dict], Iterable[str]]) -> None:
    """A command's result: as JSON, or as the lines its text renderer makes of it."""
    if as_json:
        write_json(value)
    else:
        for line in render(value):
            say(line)


def error(e: FipsbootError, as_json: bool, code: Optional[int] = None, log: bool = False) -> int:
    """An error, and the exit code it carries: under --json as {"error","fix","exit_code"} on
    stdout (exit 5 adds `changed` and the `checkpoint` it made), otherwise as text on stderr.
    `log` (`run`): on stderr under --json too, where the service manager keeps it."""
    code = e.exit_code if code is None else code
    if as_json:
        write_json({"error": str(e), "fix": e.fix, "exit_code": code,
                    **getattr(e, "result", {})})
    if log or not as_json:
        # an error may quote OpenSSL's output over several lines: each line made printable
        first, *more = str(e).rstrip().split("\n")
        say(f"fipsboot: error: {first}", err=True)
        for line in more:
            say(f"  {line}", err=True)
        if e.fix:
            say(f"fix: {e.fix}", err=True)
    return code


def log_refusal(message: str, as_json: bool = False, code: int = EXIT_REFUSED,
                fix: Optional[str] = None) -> None:
    """`run` did not start the server: to stderr and, where there is one, the system log (so
    LCA/systemd show the reason); with --json also as `{"error","fix","exit_code"}` on
    stdout."""
    if as_json:
        write_json({"error": message, "fix": fix, "exit_code": code})
    for line in message.split("\n"):  # "...failed: REASON" and "fix: ...", each made printable
        say(line, err=True)
    try:
        import syslog

        syslog.openlog("fipsboot", 0, syslog.LOG_DAEMON)
        syslog.syslog(syslog.LOG_ERR, message.replace("\n", " "))
    except ImportError:  # pragma: no cover - Windows: stderr is what the service manager keeps
        pass


def reader_gone() -> int:
    """stdout's reader went away (`| head`): nothing more to say to it, and Python's own flush
    at exit must not raise again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return EXIT_FAILED


def guarded(fn: Callable[[], int], as_json: bool) -> int:
    """Run a command's body; its expected errors become a message and their exit code. A file
    or folder fipsboot could not read or write is exit 1 (its changes were rolled back)."""
    try:
        return fn()
    except FipsbootError as e:
        return error(e, as_json)
    except BrokenPipeError:
        return reader_gone()
    except OSError as e:
        return error(os_error(e), as_json)


def guarded_launch(fn: Callable[[], int], as_json: bool, argv: list) -> int:
    """`guarded` for `run`: every error also on stderr for the log, and anything unexpected
    refuses the launch (78) with the reason logged, like a failed check: the wrapper fails
    closed, and under --json it still answers in JSON."""
    try:
        return fn()
    except FipsbootError as e:
        return error(e, as_json, log=True)
    except BrokenPipeError:
        return reader_gone()
    except OSError as e:
        return error(os_error(e), as_json, log=True)
    except Exception as e:
        import traceback

        traceback.print_exc()  # for whoever fixes it; the refusal below is the last line
        server = argv[0] if argv and argv[0] else "the server"
        log_refusal(f"fipsboot: not starting {server}: internal error: {type(e).__name__}: {e}",
                    as_json,
                    fix="the traceback on stderr shows where fipsboot failed: report it")
        return EXIT_REFUSED


def os_error(e: OSError) -> FipsbootError:
    return FipsbootError(f"{e.strerror or e}: {e.filename or ''}".rstrip(": "),
                         "check that the path exists and this user may write it")
