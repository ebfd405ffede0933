#!/usr/bin/env bash
# Set up everything on a fresh Debian machine: a virtualenv in .venv with fipsboot and its
# test tools, and the OpenSSL test bed (built once, then reused from the cache).
set -euo pipefail
cd "$(dirname "$0")/.."
if ! python3 -m venv --help >/dev/null 2>&1 || ! python3 -c 'import ensurepip' 2>/dev/null; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi
# Debian's redis-server: a real TLS peer for the tls-check tests (no service is started here;
# each test starts its own on a loopback port).
if ! command -v redis-server >/dev/null 2>&1; then
  flock /tmp/apt.lock apt-get update -qq
  flock /tmp/apt.lock env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server
fi
[ -x .venv/bin/python ] || python3 -m venv .venv
# Headless Chromium renders `fipsboot report --html` in the tests (Debian's package, nothing
# downloaded by a browser driver). Serialised on /tmp/apt.lock with other apt-get users.
if [ ! -x /usr/bin/chromium ] && command -v apt-get >/dev/null 2>&1; then
  flock /tmp/apt.lock sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends chromium'
fi
if ! .venv/bin/python -c 'import fipsboot, pytest, ruff' 2>/dev/null \
   || [ pyproject.toml -nt .venv/.fipsboot-installed ]; then
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e '.[test]'
  touch .venv/.fipsboot-installed
fi
# An editable install leaves the package uncompiled; compile it as a regular install would, so
# the wrapper's start-up is measured and run as operators get it.
env -u PYTHONDONTWRITEBYTECODE .venv/bin/python -m compileall -q fipsboot >/dev/null
# Debian's redis-server: a real TLS server no one here wrote, for `fipsboot status`'s tests.
# Root only (apt-get); where a policy-rc.d or no init system stops services, none is started.
if ! command -v redis-server >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  lock=(); command -v flock >/dev/null && lock=(flock /tmp/apt.lock)
  "${lock[@]}" apt-get update -qq
  "${lock[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server
  # The tests start their own servers; a system one left running is not wanted here.
  if [ -d /run/systemd/system ]; then systemctl disable --now redis-server >/dev/null 2>&1 || true; fi
fi
# CI points this at ../shared/openssl-src; elsewhere the test bed finds its sources itself.
if [ -z "${OPENSSL_TARBALL_DIR:-}" ] && [ -d ../shared/openssl-src ]; then
  export OPENSSL_TARBALL_DIR="$(cd ../shared/openssl-src && pwd)"
fi
.venv/bin/python scripts/testbed.py "$@"
# The test hosts (tests/fleet.py): debootstrap builds their Debian root once (cached), and
# systemd-nspawn boots copies of it. --no-install-recommends: systemd-container recommends
# libnss-mymachines, which would edit this machine's /etc/nsswitch.conf.
if [ "$(id -u)" = 0 ]; then
  missing=""
  command -v debootstrap >/dev/null || missing="$missing debootstrap"
  command -v systemd-nspawn >/dev/null || missing="$missing systemd-container"
  command -v nc >/dev/null || missing="$missing netcat-openbsd"
  command -v ssh >/dev/null || missing="$missing openssh-client"
  command -v ip >/dev/null || missing="$missing iproute2"
  if [ -n "$missing" ]; then
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
  fi
  .venv/bin/python scripts/testhosts.py
fi
