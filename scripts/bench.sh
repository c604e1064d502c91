#!/usr/bin/env bash
# The benchmarks, side by side with podman kube play (see bench/README.md): installs podman
# (the peer) and what podbay needs, then runs every figure. Not part of the test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
if ! command -v podman >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends podman >/dev/null
fi
.venv/bin/python -m bench.run --rounds "${ROUNDS:-15}" --pods "${PODS:-50}" --json bench/results.json
.venv/bin/python -m bench.podbay_only --rounds "${ROUNDS:-15}"
.venv/bin/python -m bench.gvisor --rounds "${ROUNDS:-10}" --pods 5
.venv/bin/python -m bench.control_plane --nodes 1000,5000 --pods 10000 --clients 20 --per-client 50
.venv/bin/python -m bench.cli --rounds "${ROUNDS:-15}"
