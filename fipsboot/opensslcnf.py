"""Render openssl.cnf from templates/, escaped for OpenSSL's config syntax.

In that syntax a backslash escapes the next character, `$name` expands a variable, `#` starts
a comment and quotes group: each of them is escaped, so the path OpenSSL reads is the path
written. Control characters can't be expressed at all and are refused.
"""
from __future__ import annotations

import re
from pathlib import Path

from .errors import FipsbootError
from .layout import config_path

SPECIAL = set('\\$#"\'')


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


def unescape(value: str) -> str:
    """The inverse of `escape` for the values fipsboot writes (used by verify)."""
    return re.sub(r"\\(.)", r"\1", value)


def render(fipsmodule_cnf: str) -> str:
    text = (template_dir() / "openssl.cnf").read_text(encoding="utf-8")
    return text.replace("{fipsmodule_cnf}", escape(config_path(fipsmodule_cnf)))
