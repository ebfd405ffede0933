"""The module MAC recomputed in-process (no openssl process): it runs on every launch of the
server, on `fipsboot run`'s warm path too, so it calls OpenSSL's HMAC and SHA-256 through
`_hashlib` directly where it can. `import hashlib` alone lists every digest OpenSSL offers (it
loads the providers to do so), which costs more than hashing the module; `hmac` imports it.

module-mac is HMAC-SHA256 over every byte of the module file, keyed with the FIPS key the
provider was built with, written as hex pairs joined by ':' (either case, colons optional).
"""
from __future__ import annotations


def normalise_mac(value: str) -> str:
    return value.replace(":", "").strip().lower()


def format_mac(digest: bytes) -> str:
    return ":".join(f"{b:02X}" for b in digest)


def module_mac(module, key_hex: str) -> str:
    """HMAC-SHA256 of the module file, formatted the way fipsinstall writes it.

    The standard library's HMAC gives the same value as fipsinstall and as `cryptography`
    (a test pins all three). It is used rather than `cryptography` because that library's
    bundled OpenSSL honours OPENSSL_CONF: started with the installation's FIPS config in the
    environment (as the server's account is), it has no usable provider and cannot hash.
    """
    mac = _hmac_sha256(bytes.fromhex(key_hex))
    # One small buffer, reused: it stays in the CPU's cache (a new 1 MiB chunk per read does
    # not), which makes this a third faster on every launch.
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    with open(module, "rb", buffering=0) as f:
        while True:
            n = f.readinto(buf)
            if not n:
                break
            mac.update(view[:n])
    return format_mac(mac.digest())


def _hmac_sha256(key: bytes):
    try:
        from _hashlib import hmac_new  # CPython's OpenSSL binding, which hmac.new uses too

        return hmac_new(key, digestmod="sha256")
    except (ImportError, ValueError):  # no such binding, or this process's OpenSSL refused
        import hmac

        return hmac.new(key, digestmod=_sha256())


def sha256_hex(data: bytes) -> str:
    """hashlib.sha256(data).hexdigest(), without hashlib's start-up where it can."""
    try:
        from _hashlib import openssl_sha256

        return openssl_sha256(data).hexdigest()
    except (ImportError, ValueError):
        import hashlib

        sha = _sha256()
        return (hashlib.new(sha, data) if isinstance(sha, str) else sha(data)).hexdigest()


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
