"""The command line's read-only verbs, podbay's against kubectl's, on one server side by side:

    sudo .venv/bin/python -m bench.cli [--rounds 15]

`podbay up` on private roots (HTTPS on a free loopback port, the admin kubeconfig it writes), a
few real pods (examples/web-pod.yaml, two-container-pod.yaml, init-containers.yaml); then each
request is timed as a user runs it, one process per call: `podbay VERB` (its console script)
over the unix socket and over HTTPS with the kubeconfig, and /usr/bin/kubectl with the same
kubeconfig, alternating round by round so both see the same load; `get -w` and `logs -f`, which
go on until stopped, to their first row or line. Prints the medians and podbay/kubectl. Not part
of the test suite."""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from bench.hostnet import BenchHost, claimed_host
from tests.e2e.conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
PODBAY = ROOT / ".venv" / "bin" / "podbay"
KUBECTL = "/usr/bin/kubectl"

# (label, the verb's arguments); both tools run the same ones.
REQUESTS: list[tuple[str, list[str]]] = [
    ("get pods", ["get", "pods"]),
    ("get pods -o wide", ["get", "pods", "-o", "wide"]),
    ("get pod web -o yaml", ["get", "pod", "web", "-o", "yaml"]),
    ("get pods -o json", ["get", "pods", "-o", "json"]),
    ("get pods -o name", ["get", "pods", "-o", "name"]),
    ("get pods -o jsonpath", ["get", "pods", "-o", "jsonpath={.items[*].metadata.name}"]),
    ("get pods -o custom-columns", ["get", "pods", "-o", "custom-columns=NAME:.metadata.name,IP:.status.podIP"]),
    ("get nodes", ["get", "nodes"]),
    ("get events", ["get", "events"]),
    ("get svc -A", ["get", "svc", "-A"]),
    ("describe pod web", ["describe", "pod", "web"]),
    ("logs web -c frontend", ["logs", "web", "-c", "frontend"]),
]
# The verbs that go on until stopped, timed to their first output line (label, arguments, the
# lines to read: a table's header and first row).
STREAMS: list[tuple[str, list[str], int]] = [
    ("get pods -w (first row)", ["get", "pods", "-w"], 2),
    ("get pods -w -o wide (first row)", ["get", "pods", "-w", "-o", "wide"], 2),
    ("logs -f talker (first line)", ["logs", "-f", "talker"], 1),
]
TALKER = """
apiVersion: v1
kind: Pod
metadata: {name: talker}
spec:
  terminationGracePeriodSeconds: 0
  containers: [{name: main, image: busybox:1.35, command: [sh, -c, "echo hello; exec sleep 3600"]}]
"""


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, env=env)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: exit {proc.returncode}: {proc.stderr.decode()[-400:]}")
    return elapsed


def first_lines(argv: list[str], env: dict[str, str], lines: int) -> float:
    """Seconds from starting `argv` until it has printed `lines` lines; then it is stopped."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    try:
        assert proc.stdout is not None
        for _ in range(lines):
            if not proc.stdout.readline():
                raise RuntimeError(f"{' '.join(argv)}: ended before {lines} lines (exit {proc.wait()})")
        return time.perf_counter() - t0
    finally:
        proc.terminate()  # the process started here, by its handle
        proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with claimed_host() as host:
        run(rounds, host)


def run(rounds: int, host: BenchHost) -> None:
    base = Path(tempfile.mkdtemp(prefix="podbay-bench-cli-"))
    port = free_port()
    flags = ["--state-root", str(base / "lib"), "--run-root", str(base / "run"), *host.flags(),
             "--node-name", "bench-cli", "--api-port", str(port)]
    kubeconfig = str(base / "lib" / "kubeconfig")
    # kubectl's discovery cache (in HOME) and podbay's bytecode (pip compiles it when it installs a
    # package; a checkout's is written by the warm-up calls, here to a private prefix) as a user has them.
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}, "KUBECONFIG": kubeconfig,
           "HOME": str(base), "PYTHONPYCACHEPREFIX": str(base / "pycache")}
    podbay = [str(PODBAY), *flags]
    subprocess.run([*podbay, "up"], check=True, capture_output=True, env=env)
    try:
        web = (ROOT / "examples" / "web-pod.yaml").read_text().replace("hostPort: 8080", f"hostPort: {free_port()}")
        (base / "web.yaml").write_text(web)
        subprocess.run([*podbay, "apply", "-f", str(base / "web.yaml"), "-f", str(ROOT / "examples/two-container-pod.yaml"),
                        "-f", str(ROOT / "examples/init-containers.yaml")], check=True, capture_output=True, env=env)
        # A pod whose log has a line and then stays open, for logs -f.
        (base / "talker.yaml").write_text(TALKER)
        subprocess.run([*podbay, "apply", "-f", str(base / "talker.yaml")], check=True, capture_output=True, env=env)
        for pod in ("web", "talker"):
            subprocess.run([*podbay, "wait", f"pod/{pod}", "--for", "condition=Ready", "--timeout", "120s"], check=True,
                           env=env, capture_output=True)
        tools = {"kubectl": [KUBECTL],
                 "podbay (socket)": podbay,
                 "podbay (https)": [*podbay, "--server", f"https://127.0.0.1:{port}", "--kubeconfig", kubeconfig]}
        for argv in tools.values():  # untimed calls: kubectl's discovery cache, podbay's bytecode
            for _, args in REQUESTS:
                timed([*argv, *args], env)
            for _, args, lines in STREAMS:
                first_lines([*argv, *args], env, lines)
        samples: dict[tuple[str, str], list[float]] = {}
        for _ in range(rounds):
            for label, args in REQUESTS:
                for tool, argv in tools.items():
                    samples.setdefault((label, tool), []).append(timed([*argv, *args], env))
            for label, args, lines in STREAMS:
                for tool, argv in tools.items():
                    samples.setdefault((label, tool), []).append(first_lines([*argv, *args], env, lines))
        print(f"{'request':<38} {'kubectl':>9} {'podbay socket':>14} {'ratio':>6} {'podbay https':>13} {'ratio':>6}")
        for label in [label for label, _ in REQUESTS] + [label for label, _, _ in STREAMS]:
            k = statistics.median(samples[(label, "kubectl")])
            s = statistics.median(samples[(label, "podbay (socket)")])
            h = statistics.median(samples[(label, "podbay (https)")])
            print(f"{label:<38} {k * 1000:>7.0f}ms {s * 1000:>12.0f}ms {s / k:>5.2f}x {h * 1000:>11.0f}ms {h / k:>5.2f}x")
        print(f"(medians of {rounds} rounds, seconds as ms; ratio: podbay/kubectl, target <= 2x)")
    finally:
        subprocess.run([*podbay, "down", "--purge"], capture_output=True, env=env)
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
