"""The report as one self-contained HTML page: no script, no external asset, every value
escaped. The verdict is at the top in words (not only colour); each section follows, raw
command outputs folded in <details>. Sections are rendered generically from their data, so
results of other commands (status, tls-check) show without code of their own."""
from __future__ import annotations

import json
import os
import stat
from html import escape
from pathlib import Path
from typing import Any, List

from .environ import NONFIPS
from .errors import UsageError
from .report import label

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1f24;
  margin:0 auto;max-width:62rem;padding:1.2rem}
h1{font-size:1.6rem;margin:.2rem 0}h2{font-size:1.2rem;margin:0 0 .4rem}
.verdict{border:3px solid;border-radius:8px;padding:.8rem 1rem;margin-bottom:1rem}
.verdict.ok{border-color:#1a7f37;background:#eefbf1}.verdict.fail{border-color:#cf222e;background:#fff0f0}
.verdict.info{border-color:#9a6700;background:#fff8e5}
section{border:1px solid #d0d7de;border-radius:6px;padding:.7rem 1rem;margin:.8rem 0;
  break-inside:avoid-page}
.badge{display:inline-block;font-weight:700;font-size:.8rem;padding:0 .45rem;border-radius:4px;
  border:1px solid;margin-right:.4rem}
.PASS{color:#1a7f37}.FAIL{color:#cf222e}.WARN{color:#9a6700}.INFO{color:#57606a}
table{border-collapse:collapse;width:100%;margin:.4rem 0;font-size:.9rem}
th,td{border:1px solid #d0d7de;padding:.2rem .4rem;text-align:left;vertical-align:top;
  overflow-wrap:anywhere}
th{background:#f6f8fa;width:14rem}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f8fa;padding:.5rem;font-size:.8rem;
  margin:.3rem 0}
details{margin:.3rem 0}summary{cursor:pointer;color:#0550ae}
nav ol{columns:2;margin:.3rem 0}
footer{color:#57606a;font-size:.8rem;margin-top:1rem}
@media print{body{max-width:none;padding:0;font-size:11pt}nav{display:none}
  .verdict,.badge{-webkit-print-color-adjust:exact;print-color-adjust:exact}
  details>summary{color:#1b1f24}}
"""


def _cell(value: Any) -> str:
    if value is None:
        return "<i>none</i>"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dict, list)):
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            return escape(", ".join(str(v) for v in value)) or "<i>none</i>"
        return _value(value)
    return escape(str(value))


def _value(value: Any) -> str:
    """Any JSON value as HTML: a list of records as a table, a mapping as a key/value table."""
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        columns: List[str] = []
        for row in value:
            columns += [k for k in row if k not in columns]
        head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
        body = "".join("<tr>" + "".join(f"<td>{_cell(row.get(c))}</td>" for c in columns) + "</tr>"
                       for row in value)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(value, dict):
        if not value:
            return "<i>none</i>"
        rows = "".join(f"<tr><th>{escape(str(k))}</th><td>{_cell(v)}</td></tr>"
                       for k, v in value.items())
        return f"<table>{rows}</table>"
    return _cell(value)


def _checks(checks: list) -> str:
    rows = []
    for c in checks:
        tag = "PASS" if c.get("ok") else ("WARN" if c.get("severity") == "warning" else "FAIL")
        fix = f"<br><b>fix:</b> {escape(str(c['fix']))}" if c.get("fix") and not c.get("ok") else ""
        rows.append(f"<tr><td><span class='badge {tag}'>{tag}</span></td>"
                    f"<td>{escape(str(c.get('name')))}</td><td>{escape(str(c.get('reason')))}{fix}"
                    "</td></tr>")
    return ("<table><tr><th>result</th><th>check</th><th>reason</th></tr>" + "".join(rows)
            + "</table>")


def _section(s: dict) -> str:
    tag = label(s)
    parts = [f"<section id='{escape(s['id'])}'><h2>{escape(s['title'])}</h2>",
             f"<p class='summary'><span class='badge {tag}'>{tag}</span>{escape(s['summary'])}</p>"]
    data = dict(s["data"])
    statement = data.pop("operator_statement", None) if s["id"] == "cmvp" else None
    if statement:
        parts.append(f"<p class='statement'><b>Operator's statement:</b> {escape(statement['text'])}"
                     f" <a href='{escape(statement['url'])}'>{escape(statement['url'])}</a></p>")
    checks = data.pop("checks", None)
    if isinstance(checks, list) and all(isinstance(c, dict) and "name" in c for c in checks):
        parts.append(_checks(checks))
    elif checks is not None:
        data["checks"] = checks
    if data:
        parts.append(_value(data))
    for r in s["raw"]:
        head = escape(r["label"]) + (f" &mdash; <code>{escape(r['command'])}</code>"
                                     if r.get("command") else "")
        if r.get("exit_code") is not None:
            head += f" (exit {escape(str(r['exit_code']))})"
        parts.append(f"<details><summary>{head}</summary><pre>{escape(r['text'])}</pre></details>")
    parts.append(f"<details><summary>this section as JSON</summary><pre>"
                 f"{escape(json.dumps(s, indent=1))}</pre></details></section>")
    return "\n".join(parts)


def render(report: dict) -> str:
    v = report["verdict"]
    kind = "ok" if v["ok"] else ("info" if report["mode"] == NONFIPS and not v["failed"] else "fail")
    host = next((s["data"].get("host") for s in report["sections"] if s["id"] == "host"), "")
    reasons = {c.get("name"): c.get("reason") for s in report["sections"] if s["id"] == "verify"
               for c in s["data"].get("checks", [])}
    warnings = "".join(f"<p class='WARN'><b>Warning ({escape(str(w))}):</b> "
                       f"{escape(str(reasons.get(w, '')))}</p>" for w in v["warnings"])
    nav = "".join(f"<li><a href='#{escape(s['id'])}'>{escape(s['title'])}</a> &mdash; {label(s)}</li>"
                  for s in report["sections"])
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fipsboot report: {escape(str(host))} &mdash; {escape(v['text'])}</title>
<style>{STYLE}</style></head>
<body>
<header class="verdict {kind}" id="top">
<p>fipsboot report for <b>{escape(str(host))}</b>, {escape(report['generated'])}</p>
<h1 id="verdict">Verdict: {escape(v['text'])}</h1>
<p>{escape(v['detail'])}</p>{warnings}
</header>
<nav><b>Sections</b><ol>{nav}</ol></nav>
{"".join(_section(s) for s in report["sections"])}
<footer>fipsboot {escape(report['fipsboot_version'])}, report format {report['format']};
profile {escape(report['profile'])}. Generated by <code>fipsboot report</code>.</footer>
</body></html>
"""


FIX_TARGET = "give --html a new or regular file in an existing folder (not a link)"


def check_target(path: str) -> Path:
    """Checked before anything is gathered (exit 2): the folder exists and the file, if there,
    is a regular file and not a link (atomic_write checks again on its descriptors)."""
    target = Path(os.path.abspath(path))
    if not target.parent.is_dir():
        raise UsageError(f"--html {path}: the folder {target.parent} does not exist", FIX_TARGET)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return target
    except OSError as e:
        raise UsageError(f"--html {path}: {e.strerror}", FIX_TARGET) from None
    if stat.S_ISLNK(st.st_mode):
        raise UsageError(f"--html {path} is a symbolic link; fipsboot does not write through "
                         "links", FIX_TARGET)
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"--html {path} is not a regular file", FIX_TARGET)
    return target


def write(target: Path, report: dict) -> None:
    """A new file owned by the user running fipsboot, whoever owned a file there before: a
    file planted in /tmp by another account must not get root's report handed to it."""
    from .fsutil import atomic_write

    owner = (os.geteuid(), os.getegid()) if hasattr(os, "geteuid") else None
    atomic_write(target, render(report).encode("utf-8"), 0o644, exact_mode=True, owner=owner)
