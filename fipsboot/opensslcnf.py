"""Render openssl.cnf from templates/, escaped for OpenSSL's config syntax.

In that syntax a backslash escapes the next character, `$name` expands a variable, `#` starts
a comment and quotes (", ' and the backtick) group: each of them is escaped, so the path
OpenSSL reads is the path written. Control characters can't be expressed at all and are refused.
"""
from __future__ import annotations

from pathlib import Path

from .cnfsyntax import WS, clear_comment
from .cnfsyntax import value as read_value
from .errors import FipsbootError

SPECIAL = set('\\$#"\'`')  # OpenSSL's parser reads a backtick as a quote too


def template_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parent / "templates"):  # wheel, then checkout
        if candidate.is_dir():
            return candidate
    raise FipsbootError(f"templates folder not found beside {here}")


def escape(value: str) -> str:
    bad = [c for c in value if ord(c) < 0x20 or ord(c) == 0x7F]
    if bad:
        raise FipsbootError(f"path {value!r} holds a control character that OpenSSL's config "
                            "syntax cannot express; choose another folder")
    if value != value.strip():
        raise FipsbootError(f"path {value!r} begins or ends with a space, which OpenSSL's config "
                            "parser strips; choose another folder")
    return "".join("\\" + c if c in SPECIAL else c for c in value)


def has_stray_backslash(value: str) -> bool:
    """A backslash that escapes nothing fipsboot escapes: a Windows separator that OpenSSL
    would silently eat (`C:\\GCTI\\x` reads as `C:GCTIx`)."""
    i = 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in SPECIAL:
                return True
            i += 2
        else:
            i += 1
    return False


def unescape(value: str) -> str:
    """A value as OpenSSL's parser reads it: a trailing comment dropped, ends trimmed, quotes
    and escapes resolved (cnfsyntax, the one parser; escape's inverse)."""
    return read_value(clear_comment(value).strip(WS))


def render(layout, fipsmodule_cnf: str) -> str:
    """openssl.cnf for `layout`, including `fipsmodule_cnf` (a path as the server sees it)."""
    text = (template_dir() / "openssl.cnf").read_text(encoding="utf-8")
    return text.replace("{fipsmodule_cnf}", escape(layout.config_path(fipsmodule_cnf)))
