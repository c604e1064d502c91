"""kubectl apply --prune with kubectl's default allowlist (every kind it lists is served: PV, PVC
and Ingress stored, DaemonSet, StatefulSet and CronJob refused by admission); the typed creates
that kubectl 1.32+ sends as protobuf (service, ingress, cronjob); bad input with kubectl's error
text and field paths — over every kubectl present."""
from __future__ import annotations

import json
from pathlib import Path

from tests.kubectl.conftest import Kubectl, Result


def _ok(result: Result) -> Result:
    assert result.code == 0, result
    return result


def _config_map(name: str, app: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\ndata: {{k: v}}\n"


CLAIM = """apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data, labels: {app: x}}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"""
VOLUME = """apiVersion: v1
kind: PersistentVolume
metadata: {name: disk, labels: {app: x}}
spec:
  capacity: {storage: 2Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /srv/disk}
"""
INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {name: web, labels: {app: x}}
spec:
  rules:
  - host: web.example
    http:
      paths:
      - {path: /, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}
"""
DAEMON_SET = """apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, labels: {app: x}}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec: {containers: [{name: c, image: "busybox:1.35"}]}
"""


async def _names(kubectl: Kubectl, kinds: str) -> set[str]:
    return set(_ok(await kubectl("get", kinds, "-o", "name")).out.split())


async def test_apply_prune_with_the_default_allowlist_prunes_only_what_left_the_directory(
        kubectl: Kubectl, tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    for name, text in {"keep": _config_map("keep", "x"), "gone": _config_map("gone", "x"), "claim": CLAIM,
                       "volume": VOLUME, "ingress": INGRESS}.items():
        (manifests / f"{name}.yaml").write_text(text)
    # Bystanders: another label, and an object with the label that apply never managed.
    _ok(await kubectl("create", "-f", "-", stdin=_config_map("other", "other")))
    _ok(await kubectl("create", "-f", "-", stdin=_config_map("unmanaged", "x")))

    first = _ok(await kubectl("apply", "--prune", "-l", "app=x", "-f", str(manifests)))
    assert "persistentvolumeclaim/data created" in first.out and "ingress.networking.k8s.io/web created" in first.out
    claim = json.loads(_ok(await kubectl("get", "pvc", "data", "-o", "json")).out)
    assert claim["status"]["phase"] == "Pending" and claim["spec"]["volumeMode"] == "Filesystem", claim
    header, row = _ok(await kubectl("get", "pvc", "data")).out.splitlines()
    assert header.split()[:3] == ["NAME", "STATUS", "VOLUME"] and row.split()[:2] == ["data", "Pending"], header

    for name in ("gone", "claim", "volume", "ingress"):
        (manifests / f"{name}.yaml").unlink()
    pruned = _ok(await kubectl("apply", "--prune", "-l", "app=x", "-f", str(manifests)))
    for line in ("configmap/keep unchanged", "configmap/gone pruned", "persistentvolumeclaim/data pruned",
                 "persistentvolume/disk pruned", "ingress.networking.k8s.io/web pruned"):
        assert line in pruned.out, pruned
    assert await _names(kubectl, "configmaps") >= {"configmap/keep", "configmap/other", "configmap/unmanaged"}
    assert "configmap/gone" not in await _names(kubectl, "configmaps")
    assert await _names(kubectl, "pvc,ingress,pv") == set()

    # The controller kinds of the allowlist are listed (empty), and a write is refused, not ignored.
    assert _ok(await kubectl("get", "daemonsets,statefulsets,cronjobs")).err.startswith("No resources found")
    refused = await kubectl("apply", "-f", "-", stdin=DAEMON_SET)
    assert refused.code == 1 and 'daemonsets.apps "agent" is forbidden: podbay does not run the DaemonSet ' \
        'controller' in refused.err, refused


async def test_typed_creates_sent_as_protobuf_and_bad_input(kubectl: Kubectl) -> None:
    created = _ok(await kubectl("create", "service", "clusterip", "web", "--tcp=80:8080", "-v=8"))
    assert "service/web created" in created.out
    protobuf = "Content-Type: application/vnd.kubernetes.protobuf" in created.err  # kubectl 1.32 on
    service = json.loads(_ok(await kubectl("get", "service", "web", "-o", "json")).out)
    assert service["spec"]["ports"] == [{"name": "80-8080", "port": 80, "protocol": "TCP", "targetPort": 8080}]
    assert service["spec"]["selector"] == {"app": "web"} and service["spec"]["clusterIP"]

    node_port = _ok(await kubectl("create", "service", "nodeport", "np", "--tcp=81:8081", "--node-port=30081"))
    assert "service/np created" in node_port.out
    assert _ok(await kubectl("get", "service", "np", "-o", "jsonpath={.spec.ports[0].nodePort}")).out == "30081"

    ingress = _ok(await kubectl("create", "ingress", "site", "--rule=site.example/api*=web:80", "-v=8"))
    assert "ingress.networking.k8s.io/site created" in ingress.out
    assert protobuf == ("Content-Type: application/vnd.kubernetes.protobuf" in ingress.err)
    [path] = json.loads(_ok(await kubectl("get", "ingress", "site", "-o", "json")).out)["spec"]["rules"][0]["http"][
        "paths"]
    assert path == {"path": "/api", "pathType": "Prefix",
                    "backend": {"service": {"name": "web", "port": {"number": 80}}}}, path

    # run, expose and scale send JSON from every version; checked beside the typed creates.
    _ok(await kubectl("create", "deployment", "api", "--image=busybox:1.35", "--replicas=0", "--", "sleep", "3600"))
    exposed = _ok(await kubectl("expose", "deployment", "api", "--port=81", "--target-port=8081"))
    assert "service/api exposed" in exposed.out
    assert _ok(await kubectl("get", "service", "api", "-o", "jsonpath={.spec.selector.app}")).out == "api"
    assert "deployment.apps/api scaled" in _ok(await kubectl("scale", "deployment", "api", "--replicas=0")).out

    cron = await kubectl("create", "cronjob", "nightly", "--image=busybox:1.35", "--schedule=0 3 * * *")
    assert cron.code == 1 and 'cronjobs.batch "nightly" is forbidden: podbay does not run the CronJob controller' \
        in cron.err, cron

    invalid_claim = await kubectl("create", "-f", "-", stdin=CLAIM.replace("accessModes: [ReadWriteOnce]", "")
                                  .replace("1Gi", "0"))
    assert invalid_claim.code == 1
    assert invalid_claim.err.splitlines() == [  # kubectl lists the causes, each with its field path
        'The PersistentVolumeClaim "data" is invalid: ',
        "* spec.accessModes: Required value: at least 1 access mode is required",
        '* spec.resources.requests[storage]: Invalid value: "0": must be greater than zero'], invalid_claim
    invalid_ingress = await kubectl("apply", "-f", "-", stdin=INGRESS.replace("pathType: Prefix, ", ""))
    assert invalid_ingress.code == 1
    assert 'Ingress "web" is invalid: spec.rules[0].http.paths[0].pathType: Required value: pathType must be ' \
           'specified' in invalid_ingress.err, invalid_ingress
    bad_pod = ("apiVersion: v1\nkind: Pod\nmetadata: {name: bad}\nspec:\n  containers:\n"
               "  - {name: Web, image: busybox, ports: [{containerPort: 70000}]}\n")
    invalid_pod = await kubectl("apply", "-f", "-", stdin=bad_pod)
    assert invalid_pod.code == 1
    first, name, port = invalid_pod.err.splitlines()
    assert (first, port) == ('The Pod "bad" is invalid: ', "* spec.containers[0].ports[0].containerPort: "
                             "Invalid value: 70000: must be between 1 and 65535, inclusive"), invalid_pod
    assert name.startswith('* spec.containers[0].name: Invalid value: "Web": '), invalid_pod
    assert await _names(kubectl, "pvc,ingress,pods") == {"ingress.networking.k8s.io/site"}
