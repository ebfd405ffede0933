"""A TLS peer named HOST:PORT, validated before it reaches an openssl command line (a host
starting with "-" would be read as an option)."""
from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

# fullmatch, ASCII only: "$" would also match before a final newline, and \d any digit
HOST_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9_](?:[A-Za-z0-9_.-]*[A-Za-z0-9_])?", re.ASCII)
IPV6_RE = re.compile(r"\[([0-9A-Fa-f:.]+)\]:([0-9]+)")
HOST_PORT_RE = re.compile(r"([^:\[\]]+):([0-9]+)")


def valid_host(host: str) -> bool:
    if HOST_RE.fullmatch(host):
        return True
    if not host.isascii():
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Peer:
    host: str
    port: int

    @property
    def spec(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_peer(spec: str) -> Peer:
    """HOST:PORT or [IPv6]:PORT; ValueError with a message a person can act on."""
    m = IPV6_RE.fullmatch(spec) or HOST_PORT_RE.fullmatch(spec)
    if not m:
        raise ValueError(f"{spec!r}: expected HOST:PORT (IPv6: [ADDRESS]:PORT)")
    host, port = m.group(1), int(m.group(2))
    if not valid_host(host):
        raise ValueError(f"{spec!r}: {host!r} is not a host name or IP address")
    if not 0 < port < 65536:
        raise ValueError(f"{spec!r}: port must be 1 to 65535")
    return Peer(host, port)
