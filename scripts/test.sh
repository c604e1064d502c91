#!/usr/bin/env bash
# Runs the whole test suite (as root: the end-to-end tests start real containers).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
