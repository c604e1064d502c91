#!/usr/bin/env bash
# Installs everything podbay needs on a Debian 12 machine, idempotently:
# the runtime's Debian packages and a virtualenv with podbay and its test tools.
set -euo pipefail
# Root's work (packages, namespaces, cgroups): a user who is not root goes through sudo.
if [ "$(id -u)" -ne 0 ]; then exec sudo -- "$0" "$@"; fi
cd "$(dirname "$0")/.."

APT_PACKAGES=(crun runc conmon containernetworking-plugins iptables iproute2 busybox-static
              skopeo umoci docker-registry catatonit util-linux procps etcd-server etcd-client runsc
              gcc libc6-dev e2fsprogs)
# gcc: tests build a tiny static setuid probe for images; runsc: the gvisor RuntimeClass;
# e2fsprogs: tests read the roots' inode flags with lsattr

missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# docker-registry starts a system service when installed; podbay's tests run their own.
if command -v service >/dev/null && [ -e /etc/init.d/docker-registry ]; then
    service docker-registry stop >/dev/null 2>&1 || true
fi
# etcd-server likewise starts a system etcd on 127.0.0.1:2379; tests start their own on free ports.
if command -v service >/dev/null && [ -e /etc/init.d/etcd ]; then
    service etcd stop >/dev/null 2>&1 || true
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv || { apt-get install -y -qq python3-venv >/dev/null && "$PY" -m venv .venv; }
fi
stamp=.venv/.podbay-installed
# compat: the checkout on sys.path by a plain .pth line, not an import hook every `podbay` start
# loads (as a regular install, so the command line's start is measured as users see it)
editable_mode=compat
want=$( (cat pyproject.toml; echo "$editable_mode") | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    .venv/bin/pip install -q --upgrade pip >/dev/null
    .venv/bin/pip install -q -e '.[test]' --config-settings editable_mode="$editable_mode"
    echo "$want" > "$stamp"
fi
