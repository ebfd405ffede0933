#!/usr/bin/env bash
# One command on a fresh machine: set everything up (venv, package, OpenSSL test bed for Linux
# and Windows/Wine), lint, and run the whole test suite. .ci/run calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
bash scripts/setup.sh
echo "test bed ready in $(( $(date +%s) - start )) s"
.venv/bin/ruff check fipsboot tests scripts
exec .venv/bin/python -m pytest "$@"
