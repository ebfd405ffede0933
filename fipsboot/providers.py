"""Parse `openssl list -providers` output (run with LANG=C).

Only activated providers are listed. A missing `fips` entry, not the exit code, is how a
provider that failed to load shows up.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict

from .errors import OpenSSLError


@dataclass
class Provider:
    key: str
    fields: Dict[str, str] = field(default_factory=dict)

    @property
    def version(self) -> str | None:
        return self.fields.get("version")

    @property
    def active(self) -> bool:
        return self.fields.get("status") == "active"


def parse(output: str) -> Dict[str, Provider]:
    lines = [line.rstrip() for line in output.splitlines() if line.strip()]
    if not lines or lines[0].strip() != "Providers:":
        raise OpenSSLError("unexpected output from `openssl list -providers`:\n" + output)
    found: Dict[str, Provider] = {}
    current = None
    for line in lines[1:]:
        indent = len(line) - len(line.lstrip())
        text = line.strip()
        if indent <= 2:
            current = found.setdefault(text, Provider(text))
            continue
        m = re.match(r"([^:]+):\s*(.*)$", text)
        if current is not None and m and m.group(1) not in current.fields:
            current.fields[m.group(1)] = m.group(2)
    return found
