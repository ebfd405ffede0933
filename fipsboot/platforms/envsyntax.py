"""How sh and systemd really read the files that carry the environment (Linux targets).

Three readers, each written after the real one's rules, so that verify's `targets` check
judges what the service or shell ends up with, not what a line seems to say:

- `sh_lines`: a file sh sources (`. FILE`, a login profile). Only lines whose effect fipsboot
  can know are "plain": blank lines, comments, `[export ]NAME=WORD` with one word and nothing
  after it but a comment, `export NAME...`, `unset NAME...`. Anything else (`. other.env`,
  `eval`, quotes in a name, words after the value, an `if`) is reported, never guessed at.
- `systemd_env_file`: systemd's EnvironmentFile= parser (src/basic/env-file.c: a state machine
  over the whole text; then names that are not valid variable names, such as `export NAME`,
  are dropped).
- `unit_lines` / `environment_words`: unit files and drop-ins as systemd.syntax(7) reads them
  (a line ending in `\\` continues on the next one; comment lines inside are skipped) and
  Environment= split into words with quotes and C escapes, `%%` for `%`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_SQ = r"'[^']*'"
_DQ_LITERAL = r'"(?:[^"\\$`]|\\.)*"'  # double quotes without expansion
_PARAM = rf"\$(?:{NAME}|\{{{NAME}\}})"  # $NAME, ${NAME}: plain expansion, no operators
_DQ = rf'"(?:[^"\\$`]|\\.|{_PARAM})*"'
_UNQUOTED = r"""(?:[^\s'"\\$`;&|<>()]|\\.)"""
_UNQUOTED_LITERAL = r"""(?:[^\s'"\\$`;&|<>()~]|\\.)"""
# A value sh and systemd read alike: quoted parts first, then unquoted text (systemd takes
# a quote as a quote only at the start of the value or right after a closing quote).
LITERAL_WORD = rf"(?:{_SQ}|{_DQ_LITERAL})*{_UNQUOTED_LITERAL}*"
WORD = rf"(?:{_UNQUOTED}|{_SQ}|{_DQ}|{_PARAM})*"

_ASSIGN = re.compile(rf"^\s*(export\s+)?({NAME})=({WORD})\s*(?:#.*)?$")
_ASSIGN_LITERAL = re.compile(rf"^\s*(export\s+)?({NAME})=({LITERAL_WORD})\s*$")
_EXPORT_NAMES = re.compile(rf"^\s*export(?:\s+{NAME})+\s*(?:#.*)?$")
_UNSET = re.compile(rf"^\s*unset((?:\s+{NAME})+)\s*(?:#.*)?$")


@dataclass
class ShLine:
    number: int
    text: str
    kind: str  # "skip", "assign", "unset", "odd"
    name: Optional[str] = None
    value: Optional[str] = None
    export: bool = False
    names: Tuple[str, ...] = ()


def sh_unquote(raw: str) -> str:
    """A word's value as sh reads it (quotes removed, backslash escapes applied); reading
    stops at unquoted whitespace."""
    raw = raw.strip()
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c == "'":
            end = raw.find("'", i + 1)
            end = len(raw) if end < 0 else end  # unterminated: sh would refuse; take the rest
            out.append(raw[i + 1:end])
            i = end + 1
        elif c == '"':
            i += 1
            while i < len(raw) and raw[i] != '"':
                if raw[i] == "\\" and i + 1 < len(raw) and raw[i + 1] in '\\"$`':
                    i += 1
                out.append(raw[i])
                i += 1
            i += 1
        elif c == "\\" and i + 1 < len(raw):
            out.append(raw[i + 1])
            i += 2
        elif c.isspace():
            break
        else:
            out.append(c)
            i += 1
    return "".join(out)


def sh_lines(text: str, watched) -> List[ShLine]:
    """Every line of a file sh sources, classified. An assignment of a `watched` variable
    must be literal (no expansion, no `~`, no trailing comment: systemd would read it into
    the value), so that sh and systemd agree on it."""
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            out.append(ShLine(n, line, "skip"))
            continue
        m = _ASSIGN.match(line)
        if m and m.group(2) in watched:
            m = _ASSIGN_LITERAL.match(line)
        if m:
            out.append(ShLine(n, line, "assign", m.group(2), sh_unquote(m.group(3)),
                              bool(m.group(1))))
            continue
        if _EXPORT_NAMES.match(line):
            out.append(ShLine(n, line, "skip"))
            continue
        m = _UNSET.match(line)
        if m:
            out.append(ShLine(n, line, "unset", names=tuple(m.group(1).split())))
            continue
        out.append(ShLine(n, line, "odd"))
    return out


def sh_values(lines: List[ShLine], watched) -> Dict[str, str]:
    """What sourcing those lines leaves defined, of the `watched` variables."""
    values: Dict[str, str] = {}
    for line in lines:
        if line.kind == "assign" and line.name in watched:
            values[line.name] = line.value
        elif line.kind == "unset":
            for name in line.names:
                values.pop(name, None)
    return values


# --- systemd's EnvironmentFile= ---------------------------------------------------------------

_WS = " \t\n\r"
_NL = "\n\r"
_NEED_ESCAPE = '"\\`$'


def systemd_env_file(text: str, export_read: bool = False,
                     comment_continues: bool = True) -> List[Tuple[int, str, str]]:
    """(line, name, value) of every assignment systemd's EnvironmentFile= takes from `text`,
    in order; names that are not valid variable names (`export NAME`, `A B`) are dropped as
    systemd drops them. `export_read`: read `export NAME=` as `NAME=` (what a reader that
    accepted the keyword would see; to tell the difference). `comment_continues`: a comment
    ending in a backslash swallows the next line, as systemd before v254 does (Debian 12's 252, RHEL
    9's 252); v254 reads that next line (pass False)."""
    out: List[Tuple[int, str, str]] = []
    state, key, value = "pre_key", [], []
    key_ws: Optional[int] = None
    value_ws: Optional[int] = None
    line = 1

    def push():
        k = "".join(key if key_ws is None else key[:key_ws])
        v = "".join(value)
        if export_read and re.match(r"export\s+", k):
            k = re.sub(r"^export\s+", "", k)
        if re.fullmatch(NAME, k):
            out.append((line, k, v))

    for c in text:
        if state == "pre_key":
            if c in "#;":
                state = "comment"
            elif c not in _WS:
                state, key, key_ws = "key", [c], None
            elif c in _NL:
                line += 1
        elif state == "key":
            if c in _NL:
                state, key = "pre_key", []
                line += 1
            elif c == "=":
                state, value, value_ws = "pre_value", [], None
            else:
                if c not in _WS:
                    key_ws = None
                elif key_ws is None:
                    key_ws = len(key)
                key.append(c)
        elif state == "pre_value":
            if c in _NL:
                push()
                state, key, value = "pre_key", [], []
                line += 1
            elif c == "'":
                state = "single"
            elif c == '"':
                state = "double"
            elif c == "\\":
                state = "value_escape"
            elif c not in _WS:
                state = "value"
                value.append(c)
        elif state == "value":
            if c in _NL:
                if value_ws is not None:
                    del value[value_ws:]
                push()
                state, key, value = "pre_key", [], []
                line += 1
            elif c == "\\":
                state, value_ws = "value_escape", None
            else:
                if c not in _WS:
                    value_ws = None
                elif value_ws is None:
                    value_ws = len(value)
                value.append(c)
        elif state == "value_escape":
            state = "value"
            if c not in _NL:
                value.append(c)
            else:
                line += 1
        elif state == "single":
            if c == "'":
                state = "pre_value"
            else:
                line += c == "\n"
                value.append(c)
        elif state == "double":
            if c == '"':
                state = "pre_value"
            elif c == "\\":
                state = "double_escape"
            else:
                line += c == "\n"
                value.append(c)
        elif state == "double_escape":
            state = "double"
            if c in _NEED_ESCAPE:
                value.append(c)
            elif c != "\n":
                value += ["\\", c]
            else:
                line += 1
        elif state == "comment":
            if c == "\\":
                state = "comment_escape"
            elif c in _NL:
                state = "pre_key"
                line += 1
        elif state == "comment_escape":
            state = "pre_key" if c in _NL and not comment_continues else "comment"
            line += c in _NL
    if state in ("pre_value", "value", "value_escape", "single", "double", "double_escape"):
        if state == "value" and value_ws is not None:
            del value[value_ws:]
        push()
    return out


# --- unit files and drop-ins -------------------------------------------------------------------

def unit_lines(text: str) -> List[str]:
    """The logical lines systemd reads: a line ending in an unescaped `\\` goes on with the
    next (the backslash becomes a space); comment lines inside such a line are skipped."""
    out: List[str] = []
    pending: Optional[str] = None
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith(("#", ";")):
            continue
        line = raw if pending is None else pending + raw
        trailing = len(line) - len(line.rstrip("\\"))
        if trailing % 2:
            pending = line[:-1] + " "
            continue
        pending = None
        out.append(line)
    if pending is not None:
        out.append(pending)
    return out


_C_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
              "s": " ", "\\": "\\", '"': '"', "'": "'"}


def environment_words(value: str) -> Optional[List[str]]:
    """Environment='s words as systemd splits them (quotes anywhere in a word, C escapes);
    None when the line holds something fipsboot does not read the way systemd does (an
    escape outside the common ones, an unterminated quote)."""
    words: List[str] = []
    i, n = 0, len(value)
    while True:
        while i < n and value[i] in _WS:
            i += 1
        if i >= n:
            return words
        word: List[str] = []
        quote = None
        while i < n and (quote or value[i] not in _WS):
            c = value[i]
            if c == "\\":
                if i + 1 >= n:
                    return None
                e = value[i + 1]
                if e in _C_ESCAPES:
                    word.append(_C_ESCAPES[e])
                    i += 2
                elif e == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", value[i + 2:i + 4]):
                    word.append(chr(int(value[i + 2:i + 4], 16)))
                    i += 4
                else:
                    return None
                continue
            if quote and c == quote:
                quote = None
            elif not quote and c in "'\"":
                quote = c
            else:
                word.append(c)
            i += 1
        if quote:
            return None
        words.append("".join(word))
