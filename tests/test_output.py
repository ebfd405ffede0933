"""Output in one place (fipsboot/output.py, textviews.py): imports go one way (cli.py and
entry.py never import each other; no module-level import circle in the package), the output
module needs nothing but the standard library, and `run --json` answers every outcome that
does not start the server in JSON on stdout, with the message on stderr for the log."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from modulefaults import flip_rodata_byte
from runhelpers import installed, marker_server, run_wrapped

from fipsboot import output
from fipsboot.errors import EXIT_REFUSED, EXIT_USAGE, FipsbootError, FollowUpError

PACKAGE = Path(__file__).resolve().parent.parent / "fipsboot"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, top_level_only: bool) -> set:
    """The fipsboot modules `path` imports: at module level only (what importing it runs), or
    anywhere in it (a function's lazy import too). `if TYPE_CHECKING:` blocks never run."""
    tree = ast.parse(path.read_text())
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "fipsboot"}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "fipsboot":
                continue
            for alias in node.names:  # `from . import verify` imports a module, not a name
                full = f"{base}.{alias.name}"
                target = PACKAGE.parent / full.replace(".", "/")
                found.add(full if target.with_suffix(".py").exists() or target.is_dir() else base)
    return found - {name}


def graph(top_level_only: bool) -> dict:
    return {module_name(p): imports(p, top_level_only) for p in PACKAGE.rglob("*.py")}


def cycle_from(graph: dict, start: str):
    """One import path that leads from `start` back to it, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        node, path = stack.pop()
        for nxt in graph.get(node, ()):
            if nxt == start:
                return path + [start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, path + [nxt]))
    return None


def test_no_import_circle_at_module_level():
    g = graph(top_level_only=True)
    assert "fipsboot.cli" in g and "fipsboot.output" in g["fipsboot.cli"]  # the parser works
    circles = [c for c in (cycle_from(g, m) for m in sorted(g)) if c]
    assert not circles, circles


def test_cli_and_entry_import_one_way():
    """entry.py (the console script) imports cli.py for every command but run; cli.py's `run`
    and entry.py's lean path both reach runner.run_command; none of them imports entry.py."""
    g = graph(top_level_only=False)
    assert "fipsboot.cli" in g["fipsboot.entry"]
    importers = sorted(m for m, deps in g.items() if "fipsboot.entry" in deps)
    assert importers == ["fipsboot.__main__"], importers
    for name in ("fipsboot.entry", "fipsboot.cli", "fipsboot.output", "fipsboot.textviews",
                 "fipsboot.runner"):  # lazy imports included: no way back to them
        assert cycle_from(g, name) is None, cycle_from(g, name)


def test_the_output_modules_need_only_the_standard_library():
    for name, allowed in (("output", {"fipsboot.errors", "fipsboot.printable"}),
                          ("textviews", set()), ("printable", set())):
        path = PACKAGE / f"{name}.py"
        assert imports(path, top_level_only=False) <= allowed, name
        tree = ast.parse(path.read_text())
        third_party = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
                       for a in n.names} | {n.module.split(".")[0] for n in ast.walk(tree)
                                            if isinstance(n, ast.ImportFrom) and not n.level}
        assert third_party <= {"__future__", "os", "sys", "json", "syslog", "traceback", "typing"}


# --- the output module's contract ---------------------------------------------------------

def test_an_error_after_a_change_carries_changed_and_checkpoint(capsys):
    e = FollowUpError("daemon-reload failed", "run it again")
    e.result = {"changed": True, "checkpoint": 3}
    assert output.error(e, as_json=True) == 5
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "daemon-reload failed", "fix": "run it again",
                               "exit_code": 5, "changed": True, "checkpoint": 3}
    assert err == ""  # under --json a command's error is JSON only; `run` also logs it


def test_error_text_is_printable_line_by_line(capsys):
    assert output.error(FipsbootError("openssl said:\nline \x1b]0;x\x07", "fix \r it"),
                        as_json=False) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "fipsboot: error: openssl said:\n  line \\x1b]0;x\\x07\nfix: fix \\r it\n"


def test_a_crash_in_run_refuses_the_launch_in_json(capsys):
    def crash() -> int:
        raise KeyError("boom")

    assert output.guarded_launch(crash, True, ["srv", "-x"]) == EXIT_REFUSED
    out, err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["exit_code"] == EXIT_REFUSED and answer["fix"]
    assert answer["error"] == "fipsboot: not starting srv: internal error: KeyError: 'boom'"
    assert "Traceback" in err and err.endswith(answer["error"] + "\n")


# --- run --json, end to end -----------------------------------------------------------------

def answers_in_json(r, code: int) -> dict:
    """`run --json` that did not start the server: one JSON object on stdout carrying the exit
    code, and the message on stderr for the log as well."""
    assert r.returncode == code, f"exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    answer = json.loads(r.stdout)
    assert set(answer) == {"error", "fix", "exit_code"} and answer["exit_code"] == code
    assert answer["fix"], answer  # every error says what to do about it
    assert answer["error"].split("\n")[0].removeprefix("fipsboot: ") in r.stderr
    return answer


def test_run_json_answers_every_refusal_and_error_in_json(installation30, tmp_path, state_dir):
    inst = installation30
    marker = tmp_path / "started"
    profile = inst.write_profile()
    server = marker_server(marker)

    # no journal: a usage error (2)
    answer = answers_in_json(run_wrapped(profile, *server, options=("--json",)), EXIT_USAGE)
    assert "no fipsboot journal" in answer["error"] and answer["fix"]
    # an option fipsboot does not know; no --profile; no server command
    answers_in_json(run_wrapped(profile, *server, options=("--json", "--bogus")), EXIT_USAGE)
    answers_in_json(run_wrapped(profile, options=("--json",)), EXIT_USAGE)

    profile = installed(inst)
    # the server can't be started (127)
    answer = answers_in_json(run_wrapped(profile, str(tmp_path / "no such server"),
                                         options=("--json",)), 127)
    assert "cannot start" in answer["error"]
    # an empty server name is no server command (exit 2), in JSON
    answers_in_json(run_wrapped(profile, "", options=("--json",)), EXIT_USAGE)
    # a failed check (78), the fix apart
    module = inst.module.read_bytes()
    flip_rodata_byte(inst.module)
    answer = answers_in_json(run_wrapped(profile, *server, options=("--json",)), EXIT_REFUSED)
    assert "module-mac" in answer["error"] and "fipsboot install" in answer["fix"]
    inst.module.write_bytes(module)
    # a damaged journal (78): fail closed
    (journal,) = state_dir.glob("*/journal.json")
    journal.write_text('{"format": 1, "mode": "fips"}')
    answer = answers_in_json(run_wrapped(profile, *server, options=("--json",)), EXIT_REFUSED)
    assert "damaged" in answer["error"]
    assert not marker.exists()


@pytest.mark.parametrize("as_json", [False, True])
def test_run_dry_run_text_is_printable(installation30, as_json):
    profile = installed(installation30)
    options = ("--dry-run", "--json") if as_json else ("--dry-run",)
    r = run_wrapped(profile, "sh", "-c", "echo a\nb\x1b[2J", options=options)
    assert r.returncode == 0, r.stderr
    if as_json:
        assert json.loads(r.stdout)["argv"] == ["sh", "-c", "echo a\nb\x1b[2J"]
    else:
        assert r.stdout.splitlines()[-1] == "exec: sh -c echo a\\nb\\x1b[2J"
