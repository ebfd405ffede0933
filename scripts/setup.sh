#!/usr/bin/env bash
# Set up everything on a fresh Debian machine: the system packages the tests run for real, a
# virtualenv in .venv with fipsboot and its test tools, the OpenSSL test bed and the test hosts'
# Debian root (both built once, then reused from the cache).
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages, each for real behaviour under test (installed only when missing):
#   python3-venv      the project's venv
#   redis-server      a real TLS server no one here wrote (status, tls-check; each test starts
#                     its own on a loopback port, no service is started here)
#   chromium          renders `fipsboot report --html` in the tests (headless)
#   debootstrap, systemd-container, netcat-openbsd, openssh-client, iproute2
#                     the test hosts (tests/fleet.py); --no-install-recommends: systemd-container
#                     recommends libnss-mymachines, which would edit this machine's nsswitch.conf
missing=""
python3 -c 'import ensurepip, venv' 2>/dev/null || missing="$missing python3-venv"
command -v redis-server >/dev/null || missing="$missing redis-server"
[ -x /usr/bin/chromium ] || missing="$missing chromium"
command -v debootstrap >/dev/null || missing="$missing debootstrap"
command -v systemd-nspawn >/dev/null || missing="$missing systemd-container"
command -v nc >/dev/null || missing="$missing netcat-openbsd"
command -v ssh >/dev/null || missing="$missing openssh-client"
command -v ip >/dev/null || missing="$missing iproute2"
if [ -n "$missing" ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "setup: missing system packages:$missing (install them as root with apt-get)" >&2
  else
    lock=(); command -v flock >/dev/null && lock=(flock /tmp/apt.lock)
    "${lock[@]}" apt-get update -qq
    # shellcheck disable=SC2086
    "${lock[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      --no-install-recommends $missing
    # The tests start their own Redis; a system one left running is not wanted here.
    if [ -d /run/systemd/system ]; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
  fi
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
if ! .venv/bin/python -c 'import fipsboot, pytest, ruff' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.fipsboot-installed ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.fipsboot-installed
fi
# An editable install leaves the package uncompiled; compile it as a regular install would, so
# the wrapper's start-up is measured and run as operators get it.
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m compileall -q fipsboot >/dev/null
# CI points this at ../shared/openssl-src; elsewhere the test bed finds its sources itself.
if [ -z "${OPENSSL_TARBALL_DIR:-}" ] && [ -d ../shared/openssl-src ]; then
  export OPENSSL_TARBALL_DIR="$(cd ../shared/openssl-src && pwd)"
fi
.venv/bin/python scripts/testbed.py "$@"
# The test hosts' Debian root (debootstrap from this machine's own mirror; root only).
if [ "$(id -u)" = 0 ]; then
  .venv/bin/python scripts/testhosts.py
fi
