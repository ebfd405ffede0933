"""Read fipsmodule.cnf as OpenSSL reads it and judge its values; the module-mac itself is
recomputed by modulemac (imported here, so `fipsmodule.module_mac` stays what it was).

The file is read by cnfreader.read_text (cnfsyntax's lines, OpenSSL's rules) as OpenSSL reads
it when openssl.cnf includes it: a key given twice is its last value, quotes and escapes are
resolved, `#` inside quotes is not a comment, a backslash at the end of a line joins the next,
`fips_sect::key` in another section writes into [fips_sect]. What OpenSSL would refuse or
read differently (a line without `=`, an include, a pragma, a `$` variable, a control
character) is a problem, and key_problems reports it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List

from . import cnfreader

# The MAC lives in modulemac (the warm path imports it alone); these names stay here too.
from .modulemac import _sha256, format_mac, module_mac, normalise_mac  # noqa: F401

# Indicator keys (3.4+) the provider reads as a strict 0/1 flag: any other value makes it
# fail to load, silently.
FLAG_SUFFIXES = ("-check", "-disabled")
FLAG_KEYS = {"no-short-mac", "drbg-no-trunc-md", "security-checks", "conditional-errors"}


@dataclass
class FipsModuleCnf:
    section: str
    values: Dict[str, str]  # as OpenSSL reads them
    problems: List[str] = field(default_factory=list)  # what OpenSSL would refuse or misread

    @property
    def module_mac(self) -> str | None:
        return self.values.get("module-mac")


def parse(text: str, section: str = "fips_sect") -> FipsModuleCnf:
    """`section` of fipsmodule.cnf's `text`, read as the file openssl.cnf includes."""
    cnf = cnfreader.Config()
    cnfreader.read_text(cnf, text, "fipsmodule.cnf")
    if section not in cnf.sections:
        raise ValueError("; ".join([f"section [{section}] not found", *cnf.problems]))
    return FipsModuleCnf(section, {k: v.text for k, v in cnf.sections[section].items()},
                         cnf.problems)


def key_problems(cnf: FipsModuleCnf) -> List[str]:
    """Values the provider would refuse (or misread) before it even checks its MAC."""
    problems = list(cnf.problems)
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
