"""Parse fipsmodule.cnf and judge its values; the module-mac itself is recomputed by
modulemac (imported here, so `fipsmodule.module_mac` stays what it was)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, List

# The MAC lives in modulemac (the warm path imports it alone); these names stay here too.
from .modulemac import _sha256, format_mac, module_mac, normalise_mac  # noqa: F401

SECTION_RE = re.compile(r"^\s*\[\s*([^\]\s]+)\s*\]\s*$")
KEY_RE = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*=\s*(.*?)\s*$")
# Indicator keys (3.4+) the provider reads as a strict 0/1 flag: any other value makes it
# fail to load, silently.
FLAG_SUFFIXES = ("-check", "-disabled")
FLAG_KEYS = {"no-short-mac", "drbg-no-trunc-md", "security-checks", "conditional-errors"}


@dataclass
class FipsModuleCnf:
    section: str
    values: Dict[str, str]

    @property
    def module_mac(self) -> str | None:
        return self.values.get("module-mac")


def parse(text: str, section: str = "fips_sect") -> FipsModuleCnf:
    current = None
    values: Dict[str, str] = {}
    found = False
    for line in text.splitlines():
        stripped = line.split("#", 1)[0].strip()
        if not stripped:
            continue
        m = SECTION_RE.match(stripped)
        if m:
            current = m.group(1)
            found = found or current == section
            continue
        m = KEY_RE.match(stripped)
        if m and current == section:
            values[m.group(1)] = m.group(2)
    if not found:
        raise ValueError(f"section [{section}] not found")
    return FipsModuleCnf(section, values)


def key_problems(cnf: FipsModuleCnf) -> List[str]:
    """Values the provider would refuse (or misread) before it even checks its MAC."""
    problems = []
    if not cnf.module_mac:
        problems.append("module-mac is missing")
    elif not re.fullmatch(r"[0-9a-f]{64}", normalise_mac(cnf.module_mac)):
        problems.append(f"module-mac is not 32 hex bytes: {cnf.module_mac!r}")
    for key, value in cnf.values.items():
        if (key.endswith(FLAG_SUFFIXES) or key in FLAG_KEYS) and value not in ("0", "1"):
            problems.append(f"{key} = {value!r}: the provider accepts only 0 or 1 and "
                            "fails to load otherwise")
    for key in ("module", "identity"):
        if key in cnf.values:
            problems.append(f"{key} = {cnf.values[key]!r}: fipsinstall never writes it, and it "
                            "makes OpenSSL load another file (or name) as the fips provider")
    if cnf.values.get("activate") != "1":
        problems.append(f"activate = {cnf.values.get('activate')!r}: fipsinstall writes 1, and "
                        "from 3.3 on any other value leaves the provider unloaded")
    return problems
