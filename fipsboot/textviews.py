"""Each command's text output: a function from the command's result (the dict `--json` prints)
to the lines a person reads. No printing and no escaping here: output.py writes the lines and
makes each printable. (`report`'s text is report.text_lines, beside its sections.)"""
from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `run --dry-run` renders here and imports no typing
    from typing import Iterator


def plan(result: dict) -> Iterator[str]:
    """install and reset: the status, then each change with the values it changes."""
    plan = result.get("plan")
    verb = {"dry-run": "would change", "unchanged": "unchanged"}.get(result["status"], "changed")
    yield f"{result['command']}: {result['status']}"
    for c in plan.changes if plan else []:
        yield f"  {c.action:9} {c.label}" + (f"  ({c.key})" if c.key not in c.label else "")
        for name, (old, new) in c.variables.items():
            if old != new:
                yield f"            {name}: {old!r} -> {new!r}"
        for note in c.notes if c.changed else []:
            yield f"            note: {note}"
    if plan and not plan.pending and verb != "unchanged":
        yield "  nothing to change"
    for note in result.get("notes", []):
        yield f"note: {note}"


def check_rows(checks: list, strict: bool, width: int) -> Iterator[str]:
    """One row per check (PASS/WARN/FAIL, name, reason) and the fix under a check not passed."""
    for c in checks:
        label = "PASS" if c.ok else ("FAIL" if c.fails(strict) else "WARN")
        yield f"{label}  {c.name:{width}} {c.reason}"
        if not c.ok and c.fix:
            yield f"      {'':{width}} fix: {c.fix}"


def verify(result: dict, strict: bool) -> Iterator[str]:
    yield from check_rows(result["checks"], strict, 15)
    yield f"verify ({result['mode']}): {'passed' if result['ok'] else 'FAILED'}"
    for note in result.get("notes", []):
        yield f"note: {note}"


def run_dry_run(result: dict) -> Iterator[str]:
    yield f"mode: {result['mode']}"
    for k, v in result["environment"].items():
        yield f"  {k}={v}" if v is not None else f"  {k} (unset)"
    yield "exec: " + " ".join(result["argv"])


def checkpoints(result: dict) -> Iterator[str]:
    """rollback --list"""
    yield f"mode: {result['mode']}"
    for c in result["checkpoints"]:
        yield (f"  {c['id']:3}  {c['time']}  {c['command']:8} {c['status']:12} "
               f"{len(c['changes'])} change(s)")


def rollback(result: dict) -> Iterator[str]:
    if result["dry_run"]:
        for c in result["would_undo"]:
            yield f"would undo {c['id']} ({c['command']}): {', '.join(c['restores'])}"
        if result["edited_since"]:
            yield (f"edited since fipsboot wrote them (needs --force): "
                   f"{', '.join(result['edited_since'])}")
        return
    for c in result["undone"]:
        yield f"undid {c['id']} ({c['command']}): {', '.join(c['restored']) or '-'}"
    yield f"mode now: {result['mode'] or 'as before fipsboot'}"
    for note in result.get("notes", []):
        yield f"note: {note}"


def status(r: dict) -> Iterator[str]:
    yield f"mode: {r['mode']}" + (f" (last change: {r['last_change']['command']} at "
                                  f"{r['last_change']['time']})"
                                  if r["last_change"]["time"] else "")
    for p in r["processes"]:
        label = "OK  " if p["ok"] else "FAIL"
        yield (f"{label} PID {p['pid']} {p['name']}  user {p['user'] or '(not readable)'}, "
               f"started {p['started']}, found by {', '.join(p['found_by'])}")
        if p["cmdline"]:
            yield f"       command: {' '.join(p['cmdline'])}"
        fips = p["fips_module"]
        yield (f"       fips provider: {fips['state']}"
               + (f" ({', '.join(fips['paths'])})" if fips["paths"] else "")
               + (f": {fips['reason']}" if fips.get("reason") else ""))
        if p["libraries"]:
            yield f"       libraries: {', '.join(p['libraries'])}"
        env = p["environment"]
        if env["readable"]:
            yield "       environment: " + ", ".join(
                f"{k}={env[k]}" if env[k] is not None else f"{k} unset"
                for k in ("OPENSSL_CONF", "OPENSSL_MODULES", "LD_LIBRARY_PATH"))
        else:
            yield f"       environment: {env['reason']}"
        for problem in p["problems"]:
            yield f"       why: {problem['reason']}"
            yield f"       fix: {problem['fix']}"
    if not r["processes"]:
        yield "no running server found"
    for c in r["checks"]:
        if not c["name"].startswith("process ") and not c["ok"]:
            yield f"FAIL {c['name']}: {c['reason']}"
            if c["fix"]:
                yield f"     fix: {c['fix']}"
    for note in r["notes"]:
        yield f"note: {note}"
    yield f"status: {r['summary']} (exit {r['exit_code']})"


def tls_check(r: dict, strict: bool) -> Iterator[str]:
    yield from check_rows(r["checks"], strict, 23)
    for p in r["peers"]:
        yield f"peer {p['peer']}: {p['verdict']}"
        for name in ("fips", "non-fips"):
            h = p["handshakes"][name]
            got = (f"{h['protocol']} {h['cipher']} group {h['group'] or '-'}, verify "
                   f"{h['verify_code']} ({h['verify_message']})" if h["protocol"]
                   else "; ".join(h["errors"]) or "no handshake")
            yield f"  {name:9} {got}"
        for c in p["chain"]:
            yield f"  chain     {c['subject']}: {c['key']}, signed with {c['signature_hash'] or 'EdDSA'}"
    yield (f"tls-check (FIPS environment {r['fips_environment']}): "
           f"{'passed' if r['ok'] else 'FAILED'}: {r['summary']}")
