#!/usr/bin/env bash
# Runs the type checker, then the whole test suite (as root: the end-to-end tests start real containers).
# Type errors fail the run before any test starts; the checker prints each one.
set -euo pipefail
# Root's work (packages, namespaces, cgroups): a user who is not root goes through sudo.
if [ "$(id -u)" -ne 0 ]; then exec sudo -- "$0" "$@"; fi
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/mypy  # files and settings: [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
