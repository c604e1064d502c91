#!/usr/bin/env bash
# Runs the type checker, then the whole test suite (as root: the end-to-end tests start real containers).
# Type errors fail the run before any test starts; the checker prints each one.
set -euo pipefail
# Root's work (packages, namespaces, cgroups): a user who is not root goes through sudo.
if [ "$(id -u)" -ne 0 ]; then exec sudo -- "$0" "$@"; fi
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/mypy  # files and settings: [tool.mypy] in pyproject.toml
# Several test processes at once (PODBAY_TEST_WORKERS, 0 for one): the tests mostly wait on
# containers, servers and kubectl, and each keeps to its own names, roots, subnet and ports
# (tests/conftest.py). worksteal: an idle worker takes queued tests from a busy one, so a few
# minute-long tests do not end the run on one worker. `-n 0` after it runs in this process.
exec .venv/bin/python -m pytest -q -p no:cacheprovider -n "${PODBAY_TEST_WORKERS:-4}" --dist worksteal "$@"
