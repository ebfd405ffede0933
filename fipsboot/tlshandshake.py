"""One TLS handshake through the installation's own `openssl s_client`, and what it printed.

The handshake runs with an environment given by the caller (the FIPS environment the server
gets, or the non-FIPS one), LANG=C, bounded by a timeout. It is judged from the lines OpenSSL
prints, never from the exit code alone: s_client exits 0 after a handshake whose certificate
did not verify, and a TLS 1.3 peer may reject the client certificate only after the handshake.
"""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .errors import FipsbootError
from .profile import TlsSettings
from .tlspeer import Peer

TIMEOUT = 15.0  # seconds for one handshake (connect, handshake, the peer's answer)
PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
ERROR_RE = re.compile(r"^[0-9A-F]+:error:[0-9A-F]+:(?P<lib>[^:]*):(?P<func>[^:]*):(?P<reason>[^:]*)")
VERIFY_RE = re.compile(r"^Verify return code: (\d+) \((.*)\)\s*$")
NEW_RE = re.compile(r"^New, (\S+), Cipher is (\S+)")
TEMP_KEY_RE = re.compile(r"^(?:Server|Peer) Temp Key: (.+)$")
GROUP_RE = re.compile(r"^Negotiated TLS1\.3 group: (\S+)")


@dataclass
class Handshake:
    """What one s_client run printed, parsed. `raw`: every line, for --json details."""

    env_name: str  # "fips" or "non-fips"
    connected: bool = False
    protocol: Optional[str] = None
    cipher: Optional[str] = None
    group: Optional[str] = None
    verify_code: Optional[int] = None
    verify_message: Optional[str] = None
    errors: List[str] = field(default_factory=list)  # OpenSSL's reason strings, in order
    chain: List[str] = field(default_factory=list)  # the peer's certificates, PEM
    timed_out: bool = False
    returncode: Optional[int] = None
    raw: List[str] = field(default_factory=list)

    @property
    def negotiated(self) -> bool:
        return bool(self.protocol and self.cipher and self.cipher != "(NONE)")

    @property
    def verified(self) -> bool:
        return self.verify_code == 0

    @property
    def alerts(self) -> List[str]:
        return [e for e in self.errors if "alert" in e]

    @property
    def ok(self) -> bool:
        """Negotiated, the chain verified, and the peer sent no alert (after the handshake a
        TLS 1.3 peer still rejects a client certificate with one)."""
        return self.negotiated and self.verified and not self.errors and not self.timed_out

    def to_json(self) -> dict:
        return {"environment": self.env_name, "ok": self.ok, "connected": self.connected,
                "protocol": self.protocol, "cipher": self.cipher, "group": self.group,
                "verify_code": self.verify_code, "verify_message": self.verify_message,
                "errors": self.errors, "timed_out": self.timed_out,
                "returncode": self.returncode, "raw": self.raw}


def s_client_args(peer: Peer, tls: TlsSettings, extra: Sequence[str] = ()) -> List[str]:
    """The handshake the server makes: its client certificate, its CAs, its SNI (none when the
    profile sets none, as the server sends none)."""
    args = ["s_client", "-connect", peer.spec, "-showcerts"]
    args += ["-servername", tls.sni] if tls.sni else ["-noservername"]
    if tls.cacert:
        args += ["-CAfile", tls.cacert]
    if tls.cacertdir:
        args += ["-CApath", tls.cacertdir]
    if tls.cert and tls.key:
        args += ["-cert", tls.cert, "-key", tls.key]
    return [*args, *extra]


def parse(env_name: str, stdout: str, stderr: str, returncode: Optional[int]) -> Handshake:
    h = Handshake(env_name, returncode=returncode)
    h.raw = [line for line in (stdout + "\n" + stderr).splitlines() if line.strip()]
    h.chain = PEM_RE.findall(stdout)
    for line in h.raw:
        text = line.strip()
        if text.startswith("CONNECTED("):
            h.connected = True
        elif m := NEW_RE.match(text):
            h.protocol, h.cipher = (None if m.group(1) == "(NONE)" else m.group(1)), m.group(2)
        elif (m := VERIFY_RE.match(text)) and h.verify_code is None:
            h.verify_code, h.verify_message = int(m.group(1)), m.group(2)
        elif m := TEMP_KEY_RE.match(text):
            h.group = h.group or m.group(1).split(",")[0 if not text.count("ECDH,") else 1].strip()
        elif (m := GROUP_RE.match(text)) and m.group(1) != "<NULL>":
            h.group = m.group(1)  # 3.5 names the TLS 1.3 group itself (e.g. X25519MLKEM768)
        elif m := ERROR_RE.match(text):
            if m.group("reason") not in h.errors:
                h.errors.append(m.group("reason"))
        elif text.startswith("connect:errno="):
            h.errors.append(text)
    return h


Job = Tuple[str, List[str], Mapping[str, str]]  # (environment name, s_client args, env)


def run_handshakes(openssl, jobs: Sequence[Job], timeout: Optional[float] = None) -> List[Handshake]:
    """Run every handshake at once (each openssl start self-tests the provider); a handshake
    that hangs becomes a timed-out result, not an error for the others."""
    timeout = TIMEOUT if timeout is None else timeout

    def one(job: Job) -> Handshake:
        env_name, args, env = job
        try:
            r = openssl.run_bounded(args, env, timeout)
        except FipsbootError as e:
            h = Handshake(env_name, raw=[str(e)])
            h.timed_out = "did not finish" in str(e)
            h.errors.append(f"no answer within {timeout:g} s" if h.timed_out else str(e))
            return h
        return parse(env_name, r.stdout, r.stderr, r.returncode)

    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=min(len(jobs), 8)) as pool:
        return list(pool.map(one, jobs))


def describe(h: Handshake) -> Dict[str, object]:
    """A short summary for the text report."""
    if h.negotiated:
        return {"protocol": h.protocol, "cipher": h.cipher, "group": h.group,
                "verify": f"{h.verify_code} ({h.verify_message})"}
    return {"errors": h.errors}
