#!/usr/bin/env bash
# The main job: installs what podbay needs, starts the all-in-one server on the
# embedded SQLite store and runs the two-container web pod from
# examples/web-pod.yaml under crun, then fetches its page. Safe to re-run.
set -euo pipefail
# Root's work (packages, namespaces, cgroups): a user who is not root goes through sudo.
if [ "$(id -u)" -ne 0 ]; then exec sudo -- "$0" "$@"; fi
cd "$(dirname "$0")/.."
./scripts/setup.sh
podbay=.venv/bin/podbay

$podbay up
$podbay apply -f examples/web-pod.yaml
$podbay wait --for=condition=Ready pod/web --timeout=120s
$podbay get pods -o wide
if command -v kubectl >/dev/null; then
    echo "--- kubectl, with the admin kubeconfig \`podbay up\` wrote (HTTPS on 127.0.0.1:6443):"
    KUBECONFIG="${PODBAY_WRITE_KUBECONFIG:-${PODBAY_STATE_ROOT:-/var/lib/podbay}/kubeconfig}" kubectl get pods
fi
echo
echo "--- http://127.0.0.1:8080/ (served by the pod's 'frontend' container):"
.venv/bin/python - <<'PY'
import time, urllib.request
deadline = time.monotonic() + 30
while True:
    try:
        print(urllib.request.urlopen("http://127.0.0.1:8080/", timeout=2).read().decode().strip())
        break
    except OSError:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)  # the backend writes the page within a second of starting
PY
echo
echo "Next: $podbay describe pod web | $podbay logs web -c frontend | $podbay delete pod web | $podbay down --purge"
