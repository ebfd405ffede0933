"""Untrusted text made safe for a terminal: process names, command lines, certificate
subjects and OpenSSL's lines can carry ESC, BEL, CR or newlines that would rewrite root's
terminal (title, colours) or forge a line such as "PASS  tls-peer  all good". Text output
goes through `printable`; JSON and HTML are escaped by their own encoders."""
from __future__ import annotations

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def printable(value: object) -> str:
    """`value` as one line of printable text: every control or other non-printable character
    (C0/C1 controls incl. ESC and BEL, CR, newline, Unicode format and separator characters
    such as U+202E) becomes a visible escape; a backslash is doubled only when something
    was escaped, so ordinary Windows paths read as they are."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in text)
