"""The last kubectl gaps: debug -i/-it attached to the ephemeral container, apply --prune,
edit/replace/annotate/label removals, create deployment/job, over every kubectl present."""
from __future__ import annotations

import asyncio
import json
import shlex
import stat
from pathlib import Path

import pytest

from podbay.api.formats import load_pods
from tests.kubectl.conftest import TARGET_POD, Kubectl, Result


def _pod(name: str, app: str = "x") -> str:
    return f"""apiVersion: v1
kind: Pod
metadata: {{name: {name}, labels: {{app: {app}}}}}
spec:
  terminationGracePeriodSeconds: 0
  containers:
  - {{name: c, image: "busybox:1.35", command: [sleep, "3600"]}}
"""


def _ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


async def _ephemeral_state(kubectl: Kubectl, name: str) -> dict[str, object]:
    pod = json.loads(_ok(await kubectl("get", "pod", "target", "-o", "json")).out)
    [status] = [s for s in pod["status"].get("ephemeralContainerStatuses", []) if s["name"] == name]
    state: dict[str, object] = status["state"]
    return state


async def test_kubectl_debug_i_and_it_attach_to_the_ephemeral_container(kubectl: Kubectl) -> None:
    await kubectl.cluster.client.create(load_pods(TARGET_POD)[0])
    await kubectl.cluster.wait_for("target", lambda p: p.status.phase == "Running")

    piped = await kubectl("debug", "target", "-i", "--image=busybox:1.35", "-c", "dbg-i", "--target=app",
                          "--", "sh", stdin="echo hi; exit 3\n")
    assert "hi" in piped.out.splitlines(), piped
    spec = json.loads(_ok(await kubectl("get", "pod", "target", "-o", "json")).out)["spec"]["ephemeralContainers"]
    [dbg] = [c for c in spec if c["name"] == "dbg-i"]
    assert dbg["stdin"] is True and dbg.get("tty") is not True and dbg["targetContainerName"] == "app"
    await kubectl.until("get", "pod", "target", "-o",
                        "jsonpath={.status.ephemeralContainerStatuses[?(@.name==\"dbg-i\")].state.terminated.exitCode}",
                        check=lambda r: r.code == 0 and r.out.strip() == "3")

    # -it under a terminal (script gives kubectl a pty and feeds it our input).
    argv = [kubectl.binary, f"--kubeconfig={kubectl.cluster.settings.kubeconfig}", f"--cache-dir={kubectl.cache}",
            "debug", "target", "-it", "--image=busybox:1.35", "-c", "dbg-t", "--target=app", "--", "sh"]
    proc = await asyncio.create_subprocess_exec(
        "script", "-qec", shlex.join(argv), "/dev/null",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(b"echo tty-$((40+2))\rexit 5\r"), 90)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert b"tty-42" in out, (out, err)
    await kubectl.until("get", "pod", "target", "-o",
                        "jsonpath={.status.ephemeralContainerStatuses[?(@.name==\"dbg-t\")].state.terminated.exitCode}",
                        check=lambda r: r.code == 0 and r.out.strip() == "5")
    spec = json.loads(_ok(await kubectl("get", "pod", "target", "-o", "json")).out)["spec"]["ephemeralContainers"]
    [dbg] = [c for c in spec if c["name"] == "dbg-t"]
    assert dbg["stdin"] is True and dbg["tty"] is True


async def test_kubectl_apply_prune_deletes_a_pod_gone_from_the_directory(kubectl: Kubectl, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name in ("keep", "gone"):
        (manifests / f"{name}.yaml").write_text(_pod(name))
    other = tmp_path / "other.yaml"
    other.write_text(_pod("bystander", app="other"))
    _ok(await kubectl("apply", "-f", str(other)))
    _ok(await kubectl("apply", "--prune", "-l", "app=x", "--prune-allowlist=core/v1/Pod", "-f", str(manifests)))
    (manifests / "gone.yaml").unlink()
    pruned = _ok(await kubectl("apply", "--prune", "-l", "app=x", "--prune-allowlist=core/v1/Pod",
                               "-f", str(manifests)))
    assert "pod/gone pruned" in pruned.out, pruned
    await kubectl.until("get", "pods", "-o", "name",
                        check=lambda r: r.code == 0 and "pod/gone" not in r.out)
    names = _ok(await kubectl("get", "pods", "-o", "name")).out.split()
    assert "pod/keep" in names and "pod/bystander" in names, names


async def test_kubectl_edit_replace_and_removals(kubectl: Kubectl, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    manifest = tmp_path / "p.yaml"
    manifest.write_text(_pod("p"))
    _ok(await kubectl("apply", "-f", str(manifest)))
    editor = tmp_path / "editor.sh"
    editor.write_text("#!/bin/sh\nsed -i 's/app: x/app: edited/' \"$1\"\n")
    editor.chmod(editor.stat().st_mode | stat.S_IXUSR)
    monkeypatch.delenv("KUBE_EDITOR", raising=False)  # it would win over EDITOR
    monkeypatch.setenv("EDITOR", str(editor))
    edited = _ok(await kubectl("edit", "pod", "p"))
    assert "pod/p edited" in edited.out, edited
    assert _ok(await kubectl("get", "pod", "p", "-o", "jsonpath={.metadata.labels.app}")).out == "edited"

    _ok(await kubectl("annotate", "pod", "p", "k=v"))
    _ok(await kubectl("label", "pod", "p", "k=v"))
    _ok(await kubectl("annotate", "pod", "p", "k-"))
    _ok(await kubectl("label", "pod", "p", "k-"))
    pod = json.loads(_ok(await kubectl("get", "pod", "p", "-o", "json")).out)
    assert "k" not in pod["metadata"].get("annotations", {}) and "k" not in pod["metadata"]["labels"], pod["metadata"]

    pod["metadata"]["labels"]["replaced"] = "yes"
    manifest.write_text(json.dumps(pod))
    replaced = _ok(await kubectl("replace", "-f", str(manifest)))
    assert "pod/p replaced" in replaced.out, replaced
    assert _ok(await kubectl("get", "pod", "p", "-o", "jsonpath={.metadata.labels.replaced}")).out == "yes"


async def test_kubectl_create_deployment_and_job(kubectl: Kubectl) -> None:
    # kubectl 1.32+ sends these two as protobuf (older ones as JSON): -v=8 shows which.
    created = await kubectl("create", "deployment", "web", "--image=busybox:1.35", "-v=8", "--", "sleep", "3600")
    assert created.code == 0, created.err[-3000:]
    assert "deployment.apps/web created" in created.out
    job = _ok(await kubectl("create", "job", "once", "--image=busybox:1.35", "--", "echo", "done"))
    assert "job.batch/once created" in job.out
    _ok(await kubectl("wait", "--for=condition=Complete", "job/once", "--timeout=60s"))
    assert "done" in _ok(await kubectl("logs", "job/once")).out
    await kubectl.until("get", "deployment", "web", "-o", "jsonpath={.status.readyReplicas}",
                        check=lambda r: r.code == 0 and r.out.strip() == "1")
    deployment = json.loads(_ok(await kubectl("get", "deployment", "web", "-o", "json")).out)
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert (container["image"], container["command"]) == ("busybox:1.35", ["sleep", "3600"])
    assert deployment["spec"]["selector"]["matchLabels"] == {"app": "web"}


async def test_kubectl_create_configmap_secret_and_namespace(kubectl: Kubectl) -> None:
    # Typed clients too: protobuf from kubectl 1.32 on.
    created = _ok(await kubectl("create", "configmap", "cfg", "--from-literal=k=v"))
    assert "configmap/cfg created" in created.out
    created = _ok(await kubectl("create", "secret", "generic", "sec", "--from-literal=k=s3cret"))
    assert "secret/sec created" in created.out
    created = _ok(await kubectl("create", "namespace", "team"))
    assert "namespace/team created" in created.out
    assert _ok(await kubectl("get", "configmap", "cfg", "-o", "jsonpath={.data.k}")).out == "v"
    assert _ok(await kubectl("get", "secret", "sec", "-o", "jsonpath={.data.k}")).out == "czNjcmV0"
    assert _ok(await kubectl("get", "namespace", "team", "-o", "jsonpath={.status.phase}")).out == "Active"
