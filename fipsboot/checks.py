"""The vocabulary of a verdict, shared by verify, tls-check, status and report: a check has a
name, a result, a reason a person can act on, a fix, and a severity.

A failing check of severity "warning" is reported but fails the verdict only under --strict
(for example a provider version that is not a CMVP-validated module).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Optional

ERROR = "error"
WARNING = "warning"


@dataclass
class Check:
    name: str
    ok: bool
    reason: str
    fix: Optional[str] = None
    details: Dict[str, object] = field(default_factory=dict)
    severity: str = ERROR

    def to_json(self) -> dict:
        return asdict(self)

    def fails(self, strict: bool = False) -> bool:
        """Whether this check fails the verdict: errors always, warnings only when strict."""
        return not self.ok and (self.severity == ERROR or strict)


def passed(name: str, reason: str, **details) -> Check:
    return Check(name, True, reason, None, details)


def failed(name: str, reason: str, fix: Optional[str], **details) -> Check:
    return Check(name, False, reason, fix, details)


def warned(name: str, reason: str, fix: Optional[str], **details) -> Check:
    return Check(name, False, reason, fix, details, WARNING)


def verdict_ok(checks: Iterable[Check], strict: bool = False) -> bool:
    return not any(c.fails(strict) for c in checks)
