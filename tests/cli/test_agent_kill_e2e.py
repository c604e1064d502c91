"""SIGKILL the whole server (API, scheduler, agent) and start it again, as a crashed kubelet is
restarted: no container is restarted, duplicated or lost, and a container that exited while
nobody watched is reported with its real exit code."""
from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from podbay.cli.server import running_pid
from tests.cli.podbay_cli import crun_containers, podbay_cli, wait_until
from tests.conftest import HostEnv, require_root
from tests.e2e.conftest import settings_for

pytestmark = pytest.mark.e2e


def statuses(podbay, name: str) -> dict[str, dict]:
    pod = json.loads(podbay("get", "pod", name, "-o", "json").stdout)
    return {s["name"]: s for s in pod["status"].get("containerStatuses", [])} | {"": {"phase": pod["status"]["phase"]}}


def lease_holder(podbay, name: str) -> str:
    lease = json.loads(podbay("get", "lease", name, "-n", "kube-system", "-o", "json").stdout)
    return lease["spec"]["holderIdentity"]


def test_killed_server_restarts_without_touching_containers(host_env: HostEnv, tmp_path: Path) -> None:
    require_root()
    podbay = podbay_cli(host_env)
    gate = tmp_path / "gate"
    gate.mkdir()
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(f"""
apiVersion: v1
kind: Pod
metadata: {{name: steady}}
spec:
  restartPolicy: Never
  terminationGracePeriodSeconds: 0
  volumes: [{{name: gate, hostPath: {{path: {gate}, type: Directory}}}}]
  containers:
  - {{name: keep, image: busybox:1.35, command: [sleep, "600"]}}
  - name: quitter
    image: busybox:1.35
    command: [sh, -c, "until [ -e /gate/quit ]; do sleep 0.1; done; exit 3"]
    volumeMounts: [{{name: gate, mountPath: /gate}}]
""")
    podbay("up")
    try:
        podbay("apply", "-f", str(manifest))
        wait_until(lambda: all("running" in s.get("state", {}) for n, s in statuses(podbay, "steady").items() if n))
        before = statuses(podbay, "steady")
        ids = {n: s["containerID"].split("://")[-1] for n, s in before.items() if n}
        pids = {n: crun_containers(host_env)[i]["pid"] for n, i in ids.items()}

        settings = settings_for(host_env)
        holder = lease_holder(podbay, "kube-scheduler")
        os.kill(int(settings.pidfile.read_text()), signal.SIGKILL)
        wait_until(lambda: running_pid(settings) is None)
        (gate / "quit").touch()
        wait_until(lambda: crun_containers(host_env)[ids["quitter"]]["status"] == "stopped")

        podbay("up")
        wait_until(lambda: "terminated" in statuses(podbay, "steady")["quitter"].get("state", {}))
        after = statuses(podbay, "steady")
        assert after[""]["phase"] == "Running"
        keep, quitter = after["keep"], after["quitter"]
        assert "running" in keep["state"] and keep["restartCount"] == 0
        assert keep["containerID"] == before["keep"]["containerID"]
        assert crun_containers(host_env)[ids["keep"]]["pid"] == pids["keep"]
        assert quitter["state"]["terminated"]["exitCode"] == 3 and quitter["state"]["terminated"]["reason"] == "Error"
        assert quitter["containerID"] == before["quitter"]["containerID"] and quitter["restartCount"] == 0
        assert sorted(crun_containers(host_env)) == sorted(ids.values())
        # The restarted server is still the holder of the scheduler's Lease: it binds a new pod
        # without taking the Lease over from its former self (which would wait out the lease).
        podbay("run", "--name", "after-restart", "busybox:1.35", "true")
        wait_until(lambda: json.loads(podbay("get", "pod", "after-restart", "-o", "json").stdout)
                   ["spec"].get("nodeName"))
        assert lease_holder(podbay, "kube-scheduler") == holder
    finally:
        podbay("down", "--purge")


def live_crun(env: HostEnv) -> dict[str, str]:
    """crun's containers that hold a process (created ones wait to be started), by id: status."""
    return {i: c["status"] for i, c in crun_containers(env).items() if c["status"] in ("created", "running")}


def test_server_killed_between_create_and_start_leaves_one_container_per_name(host_env: HostEnv,
                                                                              tmp_path: Path) -> None:
    """A replace creates NEW's containers, then starts them once OLD's have stopped (here after
    OLD's grace period): a kill in between leaves them created. The restarted agent makes NEW's
    containers again, and the created ones, which nothing will start, must go rather than stay
    beside them with their conmon and crun's waiting init."""
    require_root()
    podbay = podbay_cli(host_env)
    for name, grace in (("old", 8), ("new", 1)):
        # sleep as PID 1 ignores SIGTERM: OLD's containers take their whole grace period to stop.
        (tmp_path / f"{name}.yaml").write_text(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: {grace}
  containers:
  - {{name: main, image: busybox:1.35, command: [sleep, "3600"]}}
  - {{name: side, image: busybox:1.35, command: [sleep, "3600"]}}
""")
    podbay("up")
    try:
        podbay("apply", "-f", str(tmp_path / "old.yaml"))
        wait_until(lambda: all("running" in s.get("state", {}) for n, s in statuses(podbay, "old").items() if n)
                   and len(statuses(podbay, "old")) == 3)
        podbay("create", "-p", str(tmp_path / "new.yaml"))
        old_ids = set(live_crun(host_env))
        podbay("replace", "-o", "old", "-n", "new")
        wait_until(lambda: sum(s == "created" for i, s in live_crun(host_env).items() if i not in old_ids) == 2)

        settings = settings_for(host_env)
        os.kill(int(settings.pidfile.read_text()), signal.SIGKILL)
        wait_until(lambda: running_pid(settings) is None)
        podbay("up")

        def named() -> set[str]:
            return {s["containerID"].split("://")[-1] for name in ("old", "new")
                    for n, s in statuses(podbay, name).items() if n and "running" in s.get("state", {})}

        # Both pods run again (OLD, its hand-over cut short, in a sandbox of its own): four containers.
        wait_until(lambda: len(named()) == 4)
        assert live_crun(host_env) == dict.fromkeys(named(), "running")
        # The created ones never ran: NEW's containers did not restart.
        assert [s["restartCount"] for n, s in statuses(podbay, "new").items() if n] == [0, 0]
    finally:
        podbay("down", "--purge")
