"""fipsboot: put a server that ships its own OpenSSL 3 FIPS provider into FIPS mode, keep it
there, and take it back out."""

__version__ = "0.1.0"
