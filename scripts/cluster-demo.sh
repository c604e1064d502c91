#!/usr/bin/env bash
# A three-host podbay cluster on this one machine, made of the real parts a cluster of three
# machines runs:
#   - three "hosts": network namespaces on a bridge, 192.168.250.11-13 (addresses that exist only
#     inside those namespaces);
#   - a three-member etcd cluster, one member per host;
#   - two API servers (`podbay apiserver`, hosts 1 and 2), the scheduler and the controllers
#     (host 3), all given both API servers;
#   - a node on every host, joined with `podbay join` (its own state and run roots, pod bridge,
#     cgroup parent and podCIDR from node IPAM; host-gw routes to the others' pods).
# `up` starts it, runs a web pod on each host, shows `podbay get pods -o wide` and fetches the page
# of the pod on host 1 from the pod on host 3 by pod IP. `down` removes everything it made.
#
# Processes enter a host with `nsenter --net` rather than `ip netns exec`, which remounts /sys
# and hides the cgroup hierarchies crun needs.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    exec sudo "$0" "$@"
fi
cd "$(dirname "$0")/.."

STATE=${DEMO_STATE:-/var/lib/podbay-cluster-demo}
RUN=${DEMO_RUN:-/run/podbay-cluster-demo}
LINK=pbdemo0                    # the bridge joining the hosts
NET=192.168.250                 # the hosts' link: .11, .12, .13
CLUSTER_CIDR=10.250.0.0/16      # pods' addresses; node IPAM gives each node a /24 of it
HOSTS=(1 2 3)
PODBAY=(.venv/bin/python -m podbay)

ip_of() { echo "$NET.1$1"; }
netns() { echo "pbdemo-h$1"; }
in_host() { local h=$1; shift; nsenter --net="/run/netns/$(netns "$h")" "$@"; }
servers() { echo "https://$(ip_of 1):6443,https://$(ip_of 2):6443"; }
etcd_servers() { echo "http://$(ip_of 1):2379,http://$(ip_of 2):2379,http://$(ip_of 3):2379"; }

# Runs "$@" in host $1 in the background, its output in $STATE/$2.log and its PID in $STATE/$2.pid.
background() {
    local h=$1 name=$2; shift 2
    # nsenter and setsid exec what they run (a background job is no group leader), so $! is its PID.
    nsenter --net="/run/netns/$(netns "$h")" setsid "$@" </dev/null >>"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# Polls "$@" until it succeeds, for at most $1 seconds.
until_ok() {
    local deadline=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        if ((SECONDS > deadline)); then echo "cluster-demo: timed out waiting for: $*" >&2; return 1; fi
        sleep 0.5
    done
}

# The CLI as an admin on host 1 sees it, failing over between both API servers.
cli() { in_host 1 "${PODBAY[@]}" --kubeconfig "$STATE/api-1/kubeconfig" --server "$(servers)" "$@"; }

# A node's podbay: its own roots and names, on its host's address.
node() {
    local h=$1; shift
    in_host "$h" "${PODBAY[@]}" --state-root "$STATE/node-$h" --run-root "$RUN/node-$h" \
        --cgroup-parent "podbay-demo-h$h" --network "pbdemo-h$h" --bridge "pbdemobr$h" --node-name "demo-h$h" \
        --node-ip "$(ip_of "$h")" --cluster-cidr "$CLUSTER_CIDR" --warm-sandboxes 0 --api-port 0 "$@"
}

up() {
    ./scripts/setup.sh
    if [ -e "$STATE" ]; then
        echo "cluster-demo: $STATE exists; run '$0 down' first" >&2
        exit 1
    fi
    mkdir -p -m 0700 "$STATE" "$RUN"

    echo "--- three hosts on bridge $LINK: $(ip_of 1), $(ip_of 2), $(ip_of 3)"
    ip link add "$LINK" type bridge
    ip link set "$LINK" up
    # If bridged traffic passes through iptables (br_netfilter), let the hosts' link through.
    iptables -I FORWARD -i "$LINK" -o "$LINK" -j ACCEPT -m comment --comment podbay-cluster-demo
    for h in "${HOSTS[@]}"; do
        ip netns add "$(netns "$h")"
        ip link add "pbdemo-v$h" master "$LINK" type veth peer name eth0 netns "$(netns "$h")"
        ip link set "pbdemo-v$h" up
        ip -n "$(netns "$h")" addr add "$(ip_of "$h")/24" dev eth0
        ip -n "$(netns "$h")" link set eth0 up
        ip -n "$(netns "$h")" link set lo up
    done

    echo "--- etcd: three members, one per host"
    local initial="" h
    for h in "${HOSTS[@]}"; do initial+="${initial:+,}h$h=http://$(ip_of "$h"):2380"; done
    for h in "${HOSTS[@]}"; do
        background "$h" "etcd-$h" etcd --name "h$h" --data-dir "$STATE/etcd-$h" \
            --listen-client-urls "http://$(ip_of "$h"):2379" --advertise-client-urls "http://$(ip_of "$h"):2379" \
            --listen-peer-urls "http://$(ip_of "$h"):2380" --initial-advertise-peer-urls "http://$(ip_of "$h"):2380" \
            --initial-cluster "$initial" --initial-cluster-token podbay-cluster-demo
    done
    for h in "${HOSTS[@]}"; do
        until_ok 60 in_host "$h" env ETCDCTL_API=3 etcdctl --endpoints="http://$(ip_of "$h"):2379" endpoint health
    done

    echo "--- API servers on hosts 1 and 2 (one CA and token: host 2 gets host 1's pki/ and api-token)"
    for h in 1 2; do
        if [ "$h" = 2 ]; then
            mkdir -p -m 0700 "$STATE/api-2"
            cp -a "$STATE/api-1/pki" "$STATE/api-1/api-token" "$STATE/api-2/"
        fi
        background "$h" "api-$h" "${PODBAY[@]}" --state-root "$STATE/api-$h" --run-root "$RUN/api-$h" \
            --etcd-servers "$(etcd_servers)" --api-address "$(ip_of "$h")" --api-port 6443 apiserver
        until_ok 60 grep -q "podbay apiserver serving on" "$STATE/api-$h.log"
    done
    local token
    token=$(cat "$STATE/api-1/node-token")

    echo "--- scheduler and controllers on host 3, given both API servers"
    for part in scheduler controllers; do
        PODBAY_TOKEN=$token background 3 "$part" "${PODBAY[@]}" --state-root "$STATE/$part" \
            --run-root "$RUN/$part" --cluster-cidr "$CLUSTER_CIDR" --server "$(servers)" "$part"
    done

    echo "--- a node on every host: podbay join"
    for h in "${HOSTS[@]}"; do
        node "$h" join --server "$(servers)" --token "$token"
    done

    echo "--- a web pod on each host"
    for h in "${HOSTS[@]}"; do
        cli apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: web-$h, labels: {app: web}}
spec:
  nodeSelector: {kubernetes.io/hostname: demo-h$h}
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:1.35
    command: [sh, -c, "mkdir -p /www && echo hello from web-$h on demo-h$h > /www/index.html && exec httpd -f -p 8080 -h /www"]
EOF
    done
    for h in "${HOSTS[@]}"; do
        cli wait --for=condition=Ready "pod/web-$h" --timeout=180s >/dev/null
    done
    cli get nodes
    cli get pods -o wide

    local ip1
    ip1=$(cli get pod web-1 -o json | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["status"]["podIP"])')
    echo "--- web-3 (on demo-h3) fetches http://$ip1:8080/ from web-1 (on demo-h1), by pod IP:"
    cli exec web-3 -- wget -qO- "http://$ip1:8080/"
    echo
    echo "The CLI: nsenter --net=/run/netns/$(netns 1) ${PODBAY[*]} --kubeconfig $STATE/api-1/kubeconfig --server $(servers) get pods"
    echo "Stop and remove it all: $0 down"
}

stop_pid() {  # SIGTERM to the PID in pidfile $1, then SIGKILL if it has not gone within 30 s
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$1"
}

down() {
    local h
    for h in "${HOSTS[@]}"; do
        # Stops the joined agent and removes its pods, pod network, routes and state.
        if ip netns list | grep -qw "$(netns "$h")"; then
            node "$h" down --purge || true
        fi
    done
    for name in scheduler controllers api-2 api-1 etcd-1 etcd-2 etcd-3; do
        stop_pid "$STATE/$name.pid"
    done
    for h in "${HOSTS[@]}"; do
        # The veth pair now, not whenever the kernel gets round to the deleted namespace.
        ip link del "pbdemo-v$h" 2>/dev/null || true
        ip netns del "$(netns "$h")" 2>/dev/null || true
    done
    ip link del "$LINK" 2>/dev/null || true
    while iptables -D FORWARD -i "$LINK" -o "$LINK" -j ACCEPT -m comment --comment podbay-cluster-demo 2>/dev/null; do
        :
    done
    rm -rf "$STATE" "$RUN"
    echo "cluster-demo: removed"
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
