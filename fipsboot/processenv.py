"""This process's environment versus the caller's.

The caller's OPENSSL_CONF may be the installation's FIPS config (install writes it for the
server's account, so `fipsboot run` is usually started with it). fipsboot's own hashing must
not load that config, so the entry point takes the OpenSSL variables out of this process
before anything imports a crypto library, and keeps the caller's environment to build the
server's from.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: this runs on the wrapper's warm path
    from typing import Dict, Optional

OPENSSL_VARS = ("OPENSSL_CONF", "OPENSSL_MODULES", "OPENSSL_CONF_INCLUDE")
_caller: Optional[Dict[str, str]] = None


def isolate() -> None:
    global _caller
    _caller = dict(os.environ)
    for name in OPENSSL_VARS:
        os.environ.pop(name, None)


def caller() -> Dict[str, str]:
    """The environment fipsboot was started with (before `isolate`)."""
    return dict(os.environ if _caller is None else _caller)
