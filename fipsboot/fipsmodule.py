"""Parse fipsmodule.cnf and recompute its module-mac in-process (no openssl process).

module-mac is HMAC-SHA256 over every byte of the module file, keyed with the FIPS key the
provider was built with, written as hex pairs joined by ':' (either case, colons optional).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

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


def normalise_mac(value: str) -> str:
    return value.replace(":", "").strip().lower()


def format_mac(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def module_mac(module: Path, key_hex: str) -> str:
    """HMAC-SHA256 of the module file, formatted the way fipsinstall writes it.

    The standard library's HMAC gives the same value as fipsinstall and as `cryptography`
    (a test pins all three). It is used rather than `cryptography` because that library's
    bundled OpenSSL honours OPENSSL_CONF: started with the installation's FIPS config in the
    environment (as the server's account is), it has no usable provider and cannot hash.
    """
    import hmac

    mac = hmac.new(bytes.fromhex(key_hex), digestmod=_sha256())
    with open(module, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            mac.update(chunk)
    return format_mac(mac.digest())


def _sha256():
    """OpenSSL's SHA-256 when this process's OpenSSL can give it, else Python's own."""
    import hashlib

    try:
        hashlib.new("sha256")
        return "sha256"
    except ValueError:  # an OpenSSL config in this process refused it
        try:
            from _sha256 import sha256  # Python 3.9-3.11
        except ImportError:
            from _sha2 import sha256  # Python 3.12+
        return sha256


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
