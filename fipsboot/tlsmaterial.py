"""Certificates and keys judged with `cryptography`: the server's own TLS material and the
chain a peer presents. No process is started here.

What FIPS mode accepts: RSA keys of at least 2048 bits, EC keys on P-256, P-384 or P-521,
signatures over SHA-2 (or SHA-3); never SHA-1 or MD5. Anything else is named, and judged
against what the installation's FIPS provider itself lists (Ed25519 is listed by the 3.0
provider, for instance), since that differs between provider versions.
"""
from __future__ import annotations

import datetime
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

MAX_FILE = 1 << 20  # a certificate bundle is kilobytes; never slurp a device or a huge file
PEM_CERT_RE = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
APPROVED_CURVES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
REFUSED_HASHES = {"sha1": "SHA-1", "md5": "MD5"}
EXPIRY_WARNING = datetime.timedelta(days=30)
# Key types `cryptography` can't load, by the OID in the certificate's key parameters
UNSUPPORTED_NAMES = {"1.2.156.10197.1.301": "SM2"}
OID_RE = re.compile(r"\b\d+(?:\.\d+){3,}\b")


class MaterialError(Exception):
    """A file that can't be read or parsed: the message names the file and what is wrong."""


@dataclass
class KeyVerdict:
    label: str  # "RSA-2048", "EC P-256", "Ed25519"
    ok: bool  # approved for FIPS mode
    unsure: bool = False  # the provider lists it, but it is not in the approved set above
    why: str = ""


def read_file(path: str, what: str) -> bytes:
    """Read through one descriptor, opened without blocking and checked after opening: a path
    swapped for a FIFO or a device between a check and the open can't hang or flood us."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise MaterialError(f"{what} {path}: cannot read it ({e.strerror})") from None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise MaterialError(f"{what} {path}: not a regular file")
        if st.st_size > MAX_FILE:
            raise MaterialError(f"{what} {path}: {st.st_size} bytes is too large for a PEM file")
        try:
            return f.read(MAX_FILE)
        except OSError as e:
            raise MaterialError(f"{what} {path}: cannot read it ({e.strerror})") from None


def parse_certs(data: bytes, where: str) -> List[x509.Certificate]:
    blocks = PEM_CERT_RE.findall(data)
    if not blocks:
        raise MaterialError(f"{where}: no PEM certificate in it (expected a "
                            "-----BEGIN CERTIFICATE----- block)")
    certs = []
    for i, block in enumerate(blocks, 1):
        try:
            certs.append(x509.load_pem_x509_certificate(block))
        except ValueError as e:
            raise MaterialError(f"{where}: certificate {i} is damaged ({e})") from None
    return certs


def load_certs(path: str, what: str) -> List[x509.Certificate]:
    return parse_certs(read_file(path, what), f"{what} {path}")


def load_key(path: str, what: str = "key"):
    data = read_file(path, what)
    try:
        return serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise MaterialError(f"{what} {path}: the private key is encrypted; fipsboot can't check "
                            "it without the passphrase") from None
    except (ValueError, UnsupportedAlgorithm) as e:
        first = str(e).splitlines()[0] if str(e) else "not a private key"
        raise MaterialError(f"{what} {path}: not a PEM private key ({first})") from None


def load_cert_dir(path: str) -> List[Tuple[str, List[x509.Certificate]]]:
    """Every certificate file in a CApath-style folder (hashed links and *.pem alike)."""
    try:
        names = sorted(os.listdir(path))
    except OSError as e:
        raise MaterialError(f"cacertdir {path}: cannot list it ({e.strerror})") from None
    found = []
    for name in names:
        full = str(Path(path) / name)
        if os.path.isdir(full):
            continue
        data = read_file(full, "cacertdir file")
        if PEM_CERT_RE.search(data):
            found.append((full, parse_certs(data, f"cacertdir file {full}")))
    return found


def public_der(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER,
                            serialization.PublicFormat.SubjectPublicKeyInfo)


def unsupported_key_name(cert: x509.Certificate, error: Exception) -> str:
    """'SM2' (or the OID, or cryptography's words) for a key `cryptography` can't load."""
    oid = OID_RE.search(str(error))
    if oid:
        return UNSUPPORTED_NAMES.get(oid.group(0), oid.group(0))
    try:
        return cert.public_key_algorithm_oid.dotted_string
    except (AttributeError, ValueError):
        return str(error) or "unknown"


def keys_match(cert: x509.Certificate, private_key) -> Optional[bool]:
    """None when the certificate's key is of a type that can't be loaded (then it can't be
    compared; judge_cert_key names it)."""
    try:
        cert_key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None
    return public_der(cert_key) == public_der(private_key.public_key())


def judge_cert_key(cert: x509.Certificate, provider_sigs: Optional[set] = None) -> KeyVerdict:
    """judge_key for a certificate's key, which may come from a hostile peer: a key type
    `cryptography` can't even load (SM2, odd curves) is named, never raised."""
    try:
        public_key = cert.public_key()
    except (UnsupportedAlgorithm, ValueError) as e:
        name = unsupported_key_name(cert, e)
        return KeyVerdict(f"unsupported key type {name}", False,
                          why=f"unsupported key type {name} in {subject(cert)}: not FIPS-approved")
    return judge_key(public_key, provider_sigs)


def judge_key(public_key, provider_sigs: Optional[set] = None) -> KeyVerdict:
    """Is this key usable for TLS in FIPS mode? `provider_sigs`: the signature algorithms the
    installation's FIPS provider lists (upper case), or None when unknown."""
    def listed(name):
        return (provider_sigs is None or name in provider_sigs)
    if isinstance(public_key, rsa.RSAPublicKey):
        label = f"RSA-{public_key.key_size}"
        if public_key.key_size < 2048:
            return KeyVerdict(label, False, why=f"{label}: FIPS mode needs RSA keys of at "
                              "least 2048 bits")
        if not listed("RSA"):
            return KeyVerdict(label, False, why=f"{label}: the FIPS provider lists no RSA signature")
        return KeyVerdict(label, True)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        label = f"EC {APPROVED_CURVES.get(curve, curve)}"
        if curve not in APPROVED_CURVES:
            return KeyVerdict(label, False, why=f"{label}: not an approved curve (P-256, P-384, "
                              "P-521)")
        if not listed("ECDSA"):
            return KeyVerdict(label, False, why=f"{label}: the FIPS provider lists no ECDSA")
        return KeyVerdict(label, True)
    names = {ed25519.Ed25519PublicKey: "Ed25519", ed448.Ed448PublicKey: "Ed448",
             dsa.DSAPublicKey: "DSA"}
    label = next((n for t, n in names.items() if isinstance(public_key, t)),
                 type(public_key).__name__)
    if label in ("Ed25519", "Ed448") and provider_sigs is not None and label.upper() in provider_sigs:
        return KeyVerdict(label, False, unsure=True, why=(
            f"{label}: this FIPS provider lists {label.upper()}, but it is approved only under "
            "FIPS 186-5 and not covered by every module's certificate; RSA-2048+ or ECDSA "
            "P-256/P-384 is what FIPS mode accepts everywhere"))
    return KeyVerdict(label, False, why=f"{label}: not a FIPS-approved TLS key type"
                      + (" and not listed by this FIPS provider" if provider_sigs is not None else ""))


def signature_hash(cert: x509.Certificate) -> Optional[str]:
    """The hash of the certificate's signature ('sha256'), None for EdDSA (no separate hash)."""
    try:
        algorithm = cert.signature_hash_algorithm
    except (UnsupportedAlgorithm, ValueError):
        return cert.signature_algorithm_oid.dotted_string
    return algorithm.name if algorithm is not None else None


def subject(cert: x509.Certificate) -> str:
    try:
        return cert.subject.rfc4514_string() or "(empty subject)"
    except ValueError:  # a peer's subject that can't be decoded: named, not raised
        return "(undecodable subject)"


def weak_signatures(certs: Iterable[Tuple[str, x509.Certificate]]) -> List[str]:
    """'where: subject is signed with SHA-1' for each certificate with a refused hash."""
    out = []
    for where, cert in certs:
        name = signature_hash(cert)
        if name in REFUSED_HASHES:
            out.append(f"{where}: {subject(cert)} is signed with {REFUSED_HASHES[name]}")
    return out


def _utc(cert: x509.Certificate, which: str) -> datetime.datetime:
    value = getattr(cert, f"{which}_utc", None)
    if value is None:  # cryptography < 42
        value = getattr(cert, which).replace(tzinfo=datetime.timezone.utc)
    return value


def validity_problems(certs: Sequence[Tuple[str, x509.Certificate]],
                      now: Optional[datetime.datetime] = None) -> Tuple[List[str], List[str]]:
    """(errors, warnings): expired or not yet valid; expiring within 30 days."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    errors, warnings = [], []
    for where, cert in certs:
        before, after = _utc(cert, "not_valid_before"), _utc(cert, "not_valid_after")
        if after < now:
            errors.append(f"{where}: {subject(cert)} expired on {after:%Y-%m-%d %H:%M} UTC")
        elif before > now:
            errors.append(f"{where}: {subject(cert)} is not valid before "
                          f"{before:%Y-%m-%d %H:%M} UTC")
        elif after - now < EXPIRY_WARNING:
            warnings.append(f"{where}: {subject(cert)} expires on {after:%Y-%m-%d} "
                            f"({(after - now).days} days)")
    return errors, warnings


def certificate_names(cert: x509.Certificate, ip: bool) -> List[str]:
    """The names a client checks the host against, as OpenSSL does: the subjectAltName's DNS
    names (its IP addresses for an IP), and the subject's CN only when there is no DNS name."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    except ValueError:  # a damaged extension: no name can be trusted
        return []
    if ip:
        return [str(a) for a in san.get_values_for_type(x509.IPAddress)] if san else []
    dns = san.get_values_for_type(x509.DNSName) if san else []
    if dns:
        return dns
    try:
        return [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    except ValueError:
        return []


def _name_matches(pattern: str, host: str) -> bool:
    """RFC 6125: exact (case-insensitive), or "*." as the whole left-most label standing for
    exactly one label, with at least two labels after it ("*.com" matches nothing)."""
    pattern, host = pattern.lower().rstrip("."), host.lower().rstrip(".")
    if pattern == host:
        return True
    if pattern.startswith("*.") and "*" not in pattern[2:] and pattern[2:].count(".") >= 1:
        first, _, rest = host.partition(".")
        return bool(first) and rest == pattern[2:]
    return False


def host_matches(cert: x509.Certificate, host: str) -> Tuple[bool, List[str]]:
    """(does the certificate name `host`?, the names it carries)."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        address = None
    names = certificate_names(cert, ip=address is not None)
    if address is not None:
        return any(_same_ip(n, address) for n in names), names
    return any(_name_matches(n, host) for n in names), names


def _same_ip(name: str, address) -> bool:
    try:
        return ipaddress.ip_address(name) == address
    except ValueError:
        return False
