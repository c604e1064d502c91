"""Pods with runtimeClassName gvisor, as a user of GKE Sandbox sees them: their own kernel
(gVisor's 4.4.0), localhost shared by their containers but not their processes, bytes served
on the pod IP, exit codes and restarts, HyperContainer's verbs, and the refusals."""
from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
from pathlib import Path

import pytest

from podbay.api import Node, ObjectMeta, Overhead, Pod, RuntimeClass
from podbay.api.errors import Forbidden
from podbay.agent.runtimeview import POD_UID
from podbay.api.formats import load_pods
from podbay.api.wellknown import RUN_STATE_ANNOTATION, SANDBOX_FROM_ANNOTATION
from tests.e2e.conftest import Cluster, free_port
from tests.e2e.test_hyper_verbs_e2e import created, hyper_pod, running, set_state

pytestmark = [pytest.mark.e2e,
              pytest.mark.skipif(shutil.which("runsc") is None, reason="runsc is not installed (scripts/setup.sh)")]


async def http_get(ip: str, port: int) -> bytes:
    """One HTTP/1.0 GET, straight to the pod IP (no proxy in between)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 10)
    writer.write(f"GET / HTTP/1.0\r\nHost: {ip}\r\n\r\n".encode())
    await writer.drain()
    response = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return response.partition(b"\r\n\r\n")[2]


def pid1_netns_readable() -> bool:
    """What runsc's netstack needs of the host: PID 1's network namespace to compare with."""
    try:
        os.stat("/proc/1/ns/net")
    except PermissionError:
        return False
    return True


def gvisor_processes(cluster: Cluster) -> list[str]:
    """runsc's sandbox and gofer processes and gvisormon monitors of this cluster (its run root)."""
    root = str(cluster.settings.run_root)
    return [c for c in host_commands() if root in c and ("runsc" in c or "gvisormon" in c)]


async def served(ip: str, port: int, deadline: float = 30.0) -> bytes:
    """The body once httpd answers with one: it may not listen yet, and under --network=host
    gVisor 20221219 now and then hands a read of a host socket EAGAIN (httpd then closes)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        try:
            body = await http_get(ip, port)
        except OSError:
            body = b""
        if body or loop.time() > end:
            return body
        await asyncio.sleep(0.1)  # between tries of a deadline-bound poll


BOOT_TIME = "sed -n 's/^btime //p' /proc/stat"  # the kernel's boot time, in seconds since the epoch


def host_boot_time() -> int:
    return int(next(ln for ln in Path("/proc/stat").read_text().splitlines() if ln.startswith("btime ")).split()[1])


def host_commands() -> list[str]:
    """Every host process's command line, as the host's `ps -eo args` shows them."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with contextlib.suppress(OSError):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
    return found


async def sandbox_of(cluster: Cluster, pod: str) -> str:
    """The id of the pod's ready sandbox, from the node's runtime records (by the pod's uid: a
    sandbox handed over by replace keeps the name of the pod it was made for)."""
    uid = (await cluster.client.get(Pod, pod, "default")).metadata.uid
    records = [json.loads(f.read_text()) for f in cluster.settings.runtime_config().sandboxes_root.glob("*.json")]
    [found] = [r["id"] for r in records if r["labels"].get(POD_UID) == uid and r["state"] == "SANDBOX_READY"]
    return found


async def run_in(cluster: Cluster, pod: str, container: str, script: str) -> bytes:
    code, out, err = await cluster.client.exec(pod, "default", ["sh", "-c", script], container=container, timeout=30)
    assert code == 0, err
    return out


async def uname(cluster: Cluster, pod: str, container: str | None = None) -> bytes:
    code, out, err = await cluster.client.exec(pod, "default", ["uname", "-r"], container=container, timeout=30)
    assert code == 0, err
    return out


async def test_a_gvisor_pod_has_its_own_kernel_and_serves_on_its_ip(cluster: Cluster) -> None:
    # `podbay up` made the class, as GKE Sandbox does, because runsc is installed.
    assert (await cluster.client.get(RuntimeClass, "gvisor")).handler == "runsc"
    port = free_port()
    www = f"/www-{secrets.token_hex(4)}"  # a document root no other process on the host names
    # The seed's web pod shape: one container writes the page into an emptyDir, the other serves it.
    await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: sandboxed}}
spec:
  runtimeClassName: gvisor
  terminationGracePeriodSeconds: 1
  volumes: [{{name: www, emptyDir: {{}}}}]
  containers:
  - {{name: web, image: busybox:1.35, command: [httpd, -f, -p, "80", -h, {www}],
     ports: [{{containerPort: 80, hostPort: {port}}}], volumeMounts: [{{name: www, mountPath: {www}}}]}}
  - {{name: side, image: busybox:1.35, command: [sh, -c, "echo from-gvisor > {www}/index.html; exec sleep 600"],
     volumeMounts: [{{name: www, mountPath: {www}}}]}}
""")[0])
    pod = await cluster.wait_for("sandboxed", lambda p: p.status.phase == "Running" and bool(p.status.pod_ip)
                                 and all(s.ready for s in p.status.container_statuses))
    # One kernel for both containers (booted at the same moment: /proc/stat's btime; gVisor has
    # no boot_id), and it is gVisor's, booted with the pod, not the host's.
    kernels = {c: await run_in(cluster, "sandboxed", c, f"uname -r; {BOOT_TIME}") for c in ("web", "side")}
    assert kernels["web"] == kernels["side"]
    release, boot_time = kernels["web"].split()
    assert release == b"4.4.0" != platform.release().encode() and int(boot_time) > host_boot_time()
    if not pid1_netns_readable():
        # runsc refuses its netstack here: the pod says it runs on the host's stack instead.
        event = await cluster.wait_event("sandboxed", "SandboxFallback")
        assert event.type == "Warning" and "(--network=host)" in (event.message or "")
    # Port 80: a pod may bind low ports in its own network, as under containerd. The page the
    # other container wrote into the emptyDir, on the pod IP and on the hostPort.
    assert await served(pod.status.pod_ip, 80) == b"from-gvisor\n"
    assert await served("127.0.0.1", port) == b"from-gvisor\n"
    # The pod's containers share localhost, not their processes (no shareProcessNamespace).
    # Under --network=host, gVisor 20221219 at times answers a blocking read of a host socket with
    # EAGAIN (busybox wget always fails so; nc now and then): a few tries, inside the pod.
    script = ("for i in 1 2 3 4 5 6 7 8 9 10; do printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc localhost 80 "
              "| grep -x from-gvisor && exit 0; done; exit 1")
    code, out, _ = await cluster.client.exec("sandboxed", "default", ["sh", "-c", script], container="side",
                                             timeout=60)
    assert (code, out) == (0, b"from-gvisor\n")
    code, out, _ = await cluster.client.exec("sandboxed", "default", ["ps", "-o", "comm"], container="side",
                                             timeout=30)
    assert code == 0 and b"sleep" in out and b"httpd" not in out
    # The host's ps shows gVisor's sandbox, not the pod's processes: no host process is httpd.
    assert [c for c in host_commands() if www in c] == []
    assert any(c.startswith("runsc-sandbox") for c in host_commands())
    sandbox_id = await sandbox_of(cluster, "sandboxed")
    await cluster.client.delete(Pod, "sandboxed", "default")
    await cluster.wait_for_deleted("sandboxed")
    # The pod object goes once the node has removed it: its sandbox, gofers and monitors are
    # gone, and runsc keeps no state of it.
    assert gvisor_processes(cluster) == []
    assert [f.name for f in (cluster.settings.run_root / "runsc").iterdir() if sandbox_id in f.name] == []


async def test_exit_codes_and_restart_policy(cluster: Cluster) -> None:
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: fails}
spec:
  runtimeClassName: gvisor
  restartPolicy: Never
  containers:
  - {name: main, image: busybox:1.35, command: [sh, -c, "echo bye; exit 3"]}
""")[0])
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: again}
spec:
  runtimeClassName: gvisor
  restartPolicy: Always
  containers:
  - {name: main, image: busybox:1.35, command: [sh, -c, "exit 0"]}
""")[0])
    failed = await cluster.wait_for("fails", lambda p: p.status.phase == "Failed")
    terminated = failed.status.container_statuses[0].state.terminated
    assert (terminated.exit_code, terminated.reason) == (3, "Error")
    logs = b"".join([c async for c in cluster.client.logs("fails", "default")])
    assert logs == b"bye\n"
    await cluster.wait_for("again", lambda p: p.status.container_statuses
                           and p.status.container_statuses[0].restart_count >= 1)


async def test_hyper_stop_start_and_replace_in_gvisor(cluster: Cluster) -> None:
    pod = hyper_pod("hv", "run")
    pod.spec.runtime_class_name = "gvisor"
    pod.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
    await cluster.client.create(pod)
    await cluster.wait_for("hv", created)
    await set_state(cluster, "hv", "Running")
    await cluster.wait_for("hv", running)
    assert await uname(cluster, "hv") == b"4.4.0\n"
    # stop: the gVisor sandbox ends and the pod is Created again; start boots a new one.
    await set_state(cluster, "hv", "Created")
    await cluster.wait_for("hv", lambda p: created(p) and not p.status.pod_ip)
    await set_state(cluster, "hv", "Running")
    first = await cluster.wait_for("hv", running)
    assert await uname(cluster, "hv") == b"4.4.0\n"
    sandbox_id = await sandbox_of(cluster, "hv")
    boot_time = await run_in(cluster, "hv", "app", BOOT_TIME)

    # replace: the running gVisor sandbox (its kernel and IP) goes to the new pod.
    new = hyper_pod("hv-new", "new")
    new.spec.runtime_class_name = "gvisor"
    # Its first instruction records the hostname it starts under: the sandbox's is set before.
    new.spec.containers[0].command = ["sh", "-c", "hostname > /data/first-hostname; trap 'exit 0' TERM; "
                                      "sleep 600 & wait"]
    new.metadata.annotations[RUN_STATE_ANNOTATION] = "Created"
    await cluster.client.create(new)
    await cluster.wait_for("hv-new", created)
    await set_state(cluster, "hv-new", "Running", **{SANDBOX_FROM_ANNOTATION: "hv"})
    replaced = await cluster.wait_for("hv-new", running)
    assert replaced.status.pod_ip == first.status.pod_ip
    await cluster.wait_event("hv-new", "SandboxHandedOver")
    code, out, _ = await cluster.client.exec("hv-new", "default", ["sh", "-c", "uname -r; hostname"], timeout=30)
    assert (code, out) == (0, b"4.4.0\nhv-new\n")
    code, out, _ = await cluster.client.exec("hv-new", "default", [
        "sh", "-c", "until [ -s /data/first-hostname ]; do sleep 0.1; done; cat /data/first-hostname"], timeout=30)
    assert (code, out) == (0, b"hv-new\n")
    # The same sandbox: its id, and the same running gVisor kernel (its boot time), not a new one.
    assert await sandbox_of(cluster, "hv-new") == sandbox_id
    assert await run_in(cluster, "hv-new", "app", BOOT_TIME) == boot_time
    await cluster.wait_for("hv", lambda p: created(p) and not p.status.pod_ip)


async def test_a_killed_sandbox_fails_its_containers_and_the_restart_policy_applies(cluster: Cluster) -> None:
    for name, policy in (("always", "Always"), ("never", "Never")):
        await cluster.client.create(load_pods(f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  runtimeClassName: gvisor
  restartPolicy: {policy}
  containers: [{{name: c, image: busybox:1.35, command: [sleep, "600"]}}]
""")[0])
    killed = {}
    for name in ("always", "never"):
        await cluster.wait_for(name, lambda p: p.status.phase == "Running")
        killed[name] = await sandbox_of(cluster, name)
        pid = int((cluster.settings.run_root / "sandboxes" / killed[name] / "gvisor" / "pidfile").read_text())
        os.kill(pid, signal.SIGKILL)  # the pod's kernel dies, as if the host's OOM killer took it
    # Under Always the container runs again, in a new sandbox (a new kernel), as the kubelet does.
    pod = await cluster.wait_for("always", lambda p: p.status.container_statuses[0].restart_count >= 1
                                 and p.status.container_statuses[0].state.running is not None)
    assert pod.status.container_statuses[0].last_state.terminated.reason == "Error"
    assert await sandbox_of(cluster, "always") != killed["always"]
    assert await uname(cluster, "always") == b"4.4.0\n"
    # Under Never the pod has failed and stays so.
    pod = await cluster.wait_for("never", lambda p: p.status.phase == "Failed")
    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.reason == "Error" and terminated.exit_code != 0


async def test_admission_overhead_and_an_unknown_handler(cluster: Cluster) -> None:
    with pytest.raises(Forbidden, match='pod rejected: RuntimeClass "missing" not found'):
        await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: nowhere}
spec:
  runtimeClassName: missing
  containers: [{name: c, image: busybox:1.35}]
""")[0])
    await cluster.client.create(RuntimeClass(metadata=ObjectMeta(name="costly"), handler="runsc",
                                             overhead=Overhead(pod_fixed={"cpu": "100m", "memory": "64Mi"})))
    await cluster.client.create(RuntimeClass(metadata=ObjectMeta(name="odd"), handler="nosuch"))
    pods = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: costs}
spec:
  runtimeClassName: costly
  restartPolicy: Never
  containers: [{name: c, image: busybox:1.35, command: ["true"]}]
---
apiVersion: v1
kind: Pod
metadata: {name: odd}
spec:
  runtimeClassName: odd
  containers: [{name: c, image: busybox:1.35, command: [sleep, "600"]}]
""")
    costs = await cluster.client.create(pods[0])
    assert costs.spec.overhead == {"cpu": "100m", "memory": "64Mi"}
    await cluster.wait_for("costs", lambda p: p.status.phase == "Succeeded")
    # The scheduler binds it to no node: none reports the handler "nosuch".
    await cluster.client.create(pods[1])
    event = await cluster.wait_event("odd", "FailedScheduling")
    assert event.type == "Warning" and event.message == (
        "0/1 nodes are available: 1 node(s) didn't have the runtime handler \"nosuch\".")
    odd = await cluster.wait_for("odd", lambda p: any(c.type == "PodScheduled" for c in p.status.conditions))
    assert odd.spec.node_name is None and odd.status.phase == "Pending"
    assert [(c.status, c.reason) for c in odd.status.conditions if c.type == "PodScheduled"] == [
        ("False", "Unschedulable")]
    # Put on the node by name (no scheduler), the node refuses it as containerd does.
    node = (await cluster.client.get(Pod, "costs", "default")).spec.node_name
    placed = pods[1].model_copy(deep=True)
    placed.metadata.name, placed.spec.node_name = "odd-placed", node
    await cluster.client.create(placed)
    event = await cluster.wait_event("odd-placed", "FailedCreatePodSandBox")
    assert event.type == "Warning" and event.message == (
        'Failed to create pod sandbox: failed to get sandbox runtime: no runtime for "nosuch" is configured')
    assert (await cluster.client.get(Pod, "odd-placed", "default")).status.phase == "Pending"


async def test_the_node_reports_its_runtime_handlers_and_a_gvisor_pod_is_bound_to_it(cluster: Cluster) -> None:
    nodes, _ = await cluster.client.list(Node)
    assert [sorted(h.name for h in n.status.runtime_handlers) for n in nodes] == [["", "crun", "runc", "runsc"]]
    assert all(h.features is not None and h.features.user_namespaces is False
               for h in nodes[0].status.runtime_handlers)
    await cluster.client.create(load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: placed}
spec:
  runtimeClassName: gvisor
  restartPolicy: Never
  containers: [{name: c, image: busybox:1.35, command: ["true"]}]
""")[0])
    event = await cluster.wait_event("placed", "Scheduled")
    assert event.message == f"Successfully assigned default/placed to {nodes[0].metadata.name}"
    await cluster.wait_for("placed", lambda p: p.status.phase == "Succeeded")
