#!/usr/bin/env bash
# One command on a fresh machine: set everything up, then run fipsboot's whole life cycle on
# a sample installation laid out from the test bed (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --only linux
exec .venv/bin/python scripts/demo.py "$@"
