"""OpenSSL-style INI split into classified lines: the one parser behind openssl.cnf
(cnfreader), fipsmodule.cnf (fipsmodule.parse) and the server's options file (inifile).

Each line is a section header, a key = value, a directive (`.include`, `.pragma`), a blank or
comment line, or other (a line OpenSSL would refuse, or one fipsboot can't judge), with its
span in the text (decoded with surrogateescape, so a span maps back to the same bytes and an
editor can rewrite one value and keep every other byte) and the span of its value.

Two sets of rules:
- `lines`: OpenSSL's own, from crypto/conf/conf_def.c (def_load_bio, clear_comments,
  eat_alpha_numeric, str_copy): a trailing backslash joins lines, `#` outside quotes and
  escapes starts a comment, a name is OpenSSL's run of letters, digits, punctuation and
  escapes, `sect::name` writes into another section, any name starting with `.include` or
  `.pragma` is a directive. `value` resolves a value's quotes and escapes as str_copy does.
- `options_lines`: the server's options file (a Genesys options file is INI-like, not an
  OpenSSL config), read as fipsboot always has, byte for byte: physical lines (str.splitlines,
  so no continuation: `dir = C:\\GCTI\\` stays one line), no comment syntax (`x = 1 # y` has
  the value `1 # y`), a header is `[` name `]` at the start of a line whatever follows, a key is
  any run of characters without `=` or space. Where these differ from OpenSSL's rules the file
  is not an OpenSSL config, and today's edits of it are a contract (tests/test_units.py,
  test_install.py and test_reset.py pin them).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Iterator, List, Optional, Tuple

# conf_def.h's default character table: what OpenSSL counts as part of a name.
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
                 "!%&*+,-./;?@^|~")
WS = " \t\r\n"
QUOTES = "\"'`"
# str_copy's escapes outside quotes: `\n` is a newline, etc.; any other escaped character is
# itself (inside quotes every escaped character is itself).
ESCAPES = {"r": "\r", "n": "\n", "b": "\b", "t": "\t"}
# What OpenSSL's line reader treats differently from a plain text reading (a NUL ends its
# line; a lone CR is not a line ending): a file holding one can't be judged.
BAD_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)")
DIRECTIVES = (".pragma", ".include")  # in the order conf_def.c tests them

SECTION, KEY, DIRECTIVE, BLANK, OTHER = "section", "key", "directive", "blank", "other"


@dataclass(frozen=True)
class Line:
    kind: str  # SECTION, KEY, DIRECTIVE, BLANK or OTHER
    start: int  # the line's span in the text, its line ending (and continuations) included
    end: int
    number: int  # its first physical line, from 1
    text: str  # as read: continuations joined, line ending dropped
    name: str = ""  # a header's section, a key's name, a directive as written (`.includeX`)
    prefix: Optional[str] = None  # `sect` of `sect::name`: the section a key writes into
    raw: str = ""  # a key's value (a directive's argument) as written: comment cut, ends trimmed
    value: Tuple[int, int] = (-1, -1)  # the span of `raw` in the text (keys)
    directive: str = ""  # DIRECTIVE: ".include" or ".pragma"
    why: str = ""  # OTHER: why it can't be read


# --- OpenSSL's rules --------------------------------------------------------------------------

def lines(text: str) -> Iterator[Line]:
    """`text` (one file, BOM and control characters already judged) as OpenSSL reads it."""
    for number, start, end, logical, offsets in _logical_lines(text):
        yield _classify(logical, start, end, number, offsets)


def _logical_lines(text: str) -> Iterator[Tuple[int, int, int, str, List[int]]]:
    """(first line number, start, end, logical line, offset in `text` of each of its
    characters): physical lines joined where a line ends in one backslash (not two), trailing
    CR/LF dropped, as def_load_bio does."""
    buf, offsets, first, start, pos = "", [], 1, 0, 0
    for number, physical in enumerate(text.split("\n"), 1):
        content = physical.rstrip("\r")
        buf += content
        offsets.extend(range(pos, pos + len(content)))
        pos = min(pos + len(physical) + 1, len(text))
        if buf.endswith("\\") and not buf.endswith("\\\\"):
            buf, offsets = buf[:-1], offsets[:-1]
            continue
        if buf or start < pos:  # not the nothing after a final newline
            yield first, start, pos, buf, offsets
        buf, offsets, first, start = "", [], number + 1, pos
    if buf:
        yield first, start, len(text), buf, offsets


def clear_comment(line: str) -> str:
    """The line up to its first `#` outside quotes and escapes (clear_comments)."""
    i = 0
    while i < len(line):
        c = line[i]
        if c == "#":
            return line[:i]
        if c in QUOTES:
            j = i + 1
            while j < len(line) and line[j] != c:
                j += 2 if line[j] == "\\" else 1
            i = j + 1
            continue
        i += 2 if c == "\\" else 1
    return line


def _eat_name(s: str, i: int) -> int:
    while i < len(s):
        if s[i] == "\\":
            i += 2 if i + 1 < len(s) else 1
        elif s[i] in NAME_CHARS:
            i += 1
        else:
            break
    return min(i, len(s))


def _eat_ws(s: str, i: int) -> int:
    while i < len(s) and s[i] in WS:
        i += 1
    return i


def _classify(logical: str, start: int, end: int, number: int, offsets: List[int]) -> Line:
    s = clear_comment(logical)
    i = _eat_ws(s, 0)
    here = dict(start=start, end=end, number=number, text=logical)
    if i == len(s):
        return Line(BLANK, **here)
    if s[i] == "[":
        name = _section_name(s, i + 1)
        if name is None or set(name) & set("\\$" + QUOTES):
            return Line(OTHER, **here, why=f"section header {logical.strip()!r} is not one "
                                             "fipsboot can judge")
        return Line(SECTION, **here, name=name)
    begin = i
    stop = _eat_name(s, begin)
    prefix = None
    if s[stop:stop + 2] == "::":
        prefix = s[begin:stop]
        begin = stop + 2
        stop = _eat_name(s, begin)
    name = s[begin:stop]
    p = _eat_ws(s, stop)
    at_p = s[p] if p < len(s) else ""
    for word in DIRECTIVES:
        if s[begin:begin + len(word)] == word and (p != begin + len(word) or at_p == "="):
            rest = s[p + 1:] if at_p == "=" else s[p:]
            return Line(DIRECTIVE, **here, name=name, prefix=prefix, raw=rest.strip(WS),
                        directive=word)
    if at_p != "=":
        return Line(OTHER, **here, why=f"OpenSSL refuses this line (no `=`): "
                                       f"{logical.strip()!r}")
    v0 = _eat_ws(s, p + 1)
    v1 = max(v0, len(s.rstrip(WS)))
    span = (offsets[v0], offsets[v1 - 1] + 1) if v1 > v0 else (-1, -1)
    return Line(KEY, **here, name=name, prefix=prefix, raw=s[v0:v1], value=span)


def _section_name(s: str, i: int) -> Optional[str]:
    start = ss = _eat_ws(s, i)
    while True:
        end = _eat_name(s, ss)
        p = _eat_ws(s, end)
        if p < len(s) and s[p] == "]":
            return s[start:end] or None
        if p < len(s) and ss != p:
            ss = p
            continue
        return None


def value(raw: str) -> str:
    """A value (comment cut, ends trimmed) as OpenSSL's str_copy reads it: quotes grouped and
    removed, escapes resolved (`\\n`, `\\r`, `\\b`, `\\t` outside quotes are control
    characters), a trailing lone backslash dropped. A `$` is read as itself: callers refuse it
    first (`expands_variable`), since OpenSSL would expand it."""
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c in QUOTES:
            j = i + 1
            while j < len(raw) and raw[j] != c:
                if raw[j] == "\\":
                    j += 1
                    if j >= len(raw):
                        break
                out.append(raw[j])
                j += 1
            i = j + 1
        elif c == "\\":
            if i + 1 >= len(raw):
                break
            out.append(ESCAPES.get(raw[i + 1], raw[i + 1]))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def expands_variable(raw: str) -> bool:
    """`raw` holds an unescaped `$` (OpenSSL expands `$name`, `${name}`, `$(sect::name)`).
    Read conservatively: a `$` inside quotes (which OpenSSL keeps as it is) counts too."""
    i = 0
    while i < len(raw):
        if raw[i] == "\\":
            i += 2
            continue
        if raw[i] == "$":
            return True
        i += 1
    return False


def in_sections(parsed: Iterable[Line], section: Optional[str]) -> Iterator[Tuple[str, Line]]:
    """(section the line is in, line), starting in `section`; for a key, the section it writes
    into (`sect::name` names another). For a reader that follows no include."""
    for line in parsed:
        if line.kind == SECTION:
            section = line.name
        yield (line.prefix if line.prefix is not None else section), line


# --- the server's options file (today's rules, byte for byte) ----------------------------------

OPTIONS_SECTION_RE = re.compile(r"\s*\[\s*([^\]]+?)\s*\]")
OPTIONS_KEY_RE = re.compile(r"(\s*)([^=\s]+)(\s*=\s*)(.*?)(\s*)$")


def options_lines(text: str) -> Iterator[Line]:
    """The server's options file as fipsboot reads it (see the module's note)."""
    pos = 0
    for number, physical in enumerate(text.splitlines(keepends=True), 1):
        body = physical.rstrip("\r\n")
        here = dict(start=pos, end=pos + len(physical), number=number, text=body)
        if m := OPTIONS_SECTION_RE.match(physical):
            line = Line(SECTION, **here, name=m.group(1))
        elif m := OPTIONS_KEY_RE.match(body):
            line = Line(KEY, **here, name=m.group(2), raw=m.group(4),
                        value=(pos + m.start(4), pos + m.end(4)))
        elif not body.strip():
            line = Line(BLANK, **here)
        else:
            line = Line(OTHER, **here, why="neither a section header nor a key = value")
        yield line
        pos += len(physical)
