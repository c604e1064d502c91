"""The object model: Kubernetes' JSON round trips, strict decoding, defaulting, validation
with field paths, effective requests, and the legacy formats."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from podbay.api import Node, Pod
from podbay.api.defaults import default_pod
from podbay.api.errors import Invalid
from podbay.api.formats import load_objects, load_pods
from podbay.api.quantity import parse_quantity
from podbay.api.resources import pod_requests, qos_class
from podbay.api.serialize import from_dict, to_dict
from podbay.api.validation import validate_pod, validate_pod_update

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

REAL_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: prod
  labels: {app.kubernetes.io/name: app, tier: web}
  annotations: {example.com/owner: team-a}
  creationTimestamp: "2024-05-01T10:00:00Z"
spec:
  hostname: app-0
  subdomain: apps
  restartPolicy: OnFailure
  terminationGracePeriodSeconds: 10
  securityContext: {runAsUser: 1000, fsGroup: 2000, sysctls: [{name: net.ipv4.ip_local_port_range, value: "1024 65000"}]}
  dnsPolicy: None
  dnsConfig: {nameservers: [1.1.1.1], searches: [example.com], options: [{name: ndots, value: "2"}]}
  hostAliases: [{ip: 10.0.0.9, hostnames: [db.local]}]
  nodeSelector: {disktype: ssd}
  tolerations: [{key: dedicated, operator: Equal, value: web, effect: NoSchedule}]
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: zone, operator: In, values: [a, b]}]}]
  volumes:
  - {name: data, emptyDir: {medium: Memory, sizeLimit: 64Mi}}
  - {name: host, hostPath: {path: /var/log, type: Directory}}
  - {name: cfg, configMap: {name: app-config, items: [{key: a, path: a.txt}]}}
  initContainers:
  - {name: setup, image: busybox:1.35, command: [sh, -c, "true"]}
  - name: proxy
    image: busybox:1.35
    restartPolicy: Always
    startupProbe: {tcpSocket: {port: 15000}, failureThreshold: 30, periodSeconds: 1}
  containers:
  - name: web
    image: busybox:1.35
    args: [httpd, -f, -p, "8080"]
    workingDir: /srv
    ports: [{name: http, containerPort: 8080, hostPort: 18080, hostIP: 127.0.0.1, protocol: TCP}]
    env:
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: GREETING, value: "hello $(POD_NAME)"}
    resources: {requests: {cpu: 250m, memory: 64Mi}, limits: {cpu: "1", memory: 128Mi}}
    livenessProbe: {httpGet: {path: /healthz, port: http}, initialDelaySeconds: 3}
    readinessProbe: {exec: {command: [cat, /tmp/ready]}}
    lifecycle: {preStop: {exec: {command: [sh, -c, "sleep 1"]}}}
    securityContext: {readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: data, mountPath: /data}, {name: cfg, mountPath: /etc/app, readOnly: true}]
"""


def test_a_real_manifest_round_trips_unchanged() -> None:
    data = yaml.safe_load(REAL_POD)
    assert to_dict(from_dict(Pod, data)) == {**data, "status": {}}


def test_strict_decoding_names_every_bad_field() -> None:
    with pytest.raises(Invalid) as err:
        from_dict(Pod, {"metadata": {"name": "x", "lables": {}}, "spec": {"containers": [
            {"name": "a", "image": "i", "ports": [{"containerPort": "eighty"}]}]}})
    assert [str(e) for e in err.value.errors] == [
        "metadata.lables: unknown field",
        'spec.containers[0].ports[0].containerPort: Invalid value: "eighty": must be an integer',
    ]


def test_defaults_are_kubernetes_defaults() -> None:
    pod = default_pod(from_dict(Pod, {"metadata": {"name": "x"}, "spec": {"containers": [
        {"name": "a", "image": "busybox", "ports": [{"containerPort": 80}],
         "readinessProbe": {"httpGet": {"port": 80}}, "resources": {"limits": {"cpu": "1"}}}]}}))
    spec, c = pod.spec, pod.spec.containers[0]
    assert (pod.metadata.namespace, spec.restart_policy, spec.termination_grace_period_seconds, spec.dns_policy,
            spec.scheduler_name) == ("default", "Always", 30, "ClusterFirst", "default-scheduler")
    assert (c.image_pull_policy, c.termination_message_path, c.ports[0].protocol) == (
        "Always", "/dev/termination-log", "TCP")
    probe = c.readiness_probe
    assert (probe.timeout_seconds, probe.period_seconds, probe.success_threshold, probe.failure_threshold,
            probe.http_get.path, probe.http_get.scheme) == (1, 10, 1, 3, "/", "HTTP")
    assert c.resources.requests == {"cpu": "1"}


def errors_of(manifest: str) -> list[str]:
    return [str(e) for e in validate_pod(default_pod(load_pods(manifest)[0]))]


def test_validation_errors_name_the_field_path() -> None:
    errs = errors_of("""
apiVersion: v1
kind: Pod
metadata: {name: Bad_Name}
spec:
  restartPolicy: Sometimes
  volumes: [{name: data, emptyDir: {}}, {name: data, hostPath: {path: /tmp}}, {name: claim, persistentVolumeClaim: {claimName: c}}]
  containers:
  - {name: web, image: busybox, volumeMounts: [{name: missing, mountPath: /x}]}
  - {name: Web, image: busybox, ports: [{containerPort: 70000}]}
  - {name: web, image: "", resources: {requests: {cpu: "2"}, limits: {cpu: "1"}}}
""")
    assert 'metadata.name: Invalid value: "Bad_Name": must be a lowercase RFC 1123 subdomain' in errs[0]
    assert 'spec.volumes[1].name: Duplicate value: "data"' in errs
    assert any(e.startswith("spec.volumes[2].persistentVolumeClaim: Unsupported value") for e in errs)
    assert 'spec.containers[0].volumeMounts[0].name: Not found: "missing"' in errs
    assert any(e.startswith('spec.containers[1].name: Invalid value: "Web": must be a lowercase RFC 1123 label') for e in errs)
    assert "spec.containers[1].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive" in errs
    assert "spec.containers[2].image: Required value" in errs
    assert 'spec.containers[2].name: Duplicate value: "web"' in errs
    assert 'spec.containers[2].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1' in errs
    assert any(e.startswith('spec.restartPolicy: Unsupported value: "Sometimes"') for e in errs)



def test_seccomp_profile_rules() -> None:
    errs = errors_of("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  securityContext: {seccompProfile: {type: Localhost}}
  initContainers:
  - {name: i, image: busybox, securityContext: {seccompProfile: {type: RuntimeDefault, localhostProfile: a.json}}}
  containers:
  - {name: a, image: busybox, securityContext: {seccompProfile: {type: Localhost, localhostProfile: /etc/a.json}}}
  - {name: b, image: busybox, securityContext: {seccompProfile: {type: Localhost, localhostProfile: ../a.json}}}
  - {name: c, image: busybox, securityContext: {seccompProfile: {type: Strict}}}
  - {name: d, image: busybox, securityContext: {seccompProfile: {type: Localhost, localhostProfile: x/ok.json}}}
""")
    assert errs == [
        'spec.initContainers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "a.json": '
        "can only be set when seccomp type is Localhost",
        'spec.containers[0].securityContext.seccompProfile.localhostProfile: Invalid value: "/etc/a.json": must be a relative path',
        'spec.containers[1].securityContext.seccompProfile.localhostProfile: Invalid value: "../a.json": must not contain \'..\'',
        'spec.containers[2].securityContext.seccompProfile.type: Unsupported value: "Strict": supported values: '
        '"Localhost", "RuntimeDefault", "Unconfined"',
        "spec.securityContext.seccompProfile.localhostProfile: Required value: must be set when seccomp type is Localhost",
    ]

def test_probe_and_sidecar_rules() -> None:
    errs = errors_of("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  initContainers:
  - {name: init, image: i, readinessProbe: {exec: {command: ["true"]}}}
  - {name: side, image: i, restartPolicy: Always, readinessProbe: {exec: {command: ["true"]}}}
  containers:
  - {name: main, image: i, restartPolicy: Always,
     livenessProbe: {exec: {command: ["true"]}, tcpSocket: {port: 80}, successThreshold: 2}}
""")
    assert errs == [
        "spec.initContainers[0].readinessProbe: Forbidden: may not be set for init containers without "
        "restartPolicy=Always",
        'spec.containers[0].restartPolicy: Forbidden: may not be set for non-init containers',
        "spec.containers[0].livenessProbe: Forbidden: may not specify more than 1 handler type",
        "spec.containers[0].livenessProbe.successThreshold: Invalid value: 2: must be 1",
    ]


def test_grpc_probe_port_must_be_a_port_number() -> None:
    errs = errors_of("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers:
  - {name: a, image: i, livenessProbe: {grpc: {port: 0}}, readinessProbe: {grpc: {port: 65536, service: s}},
     startupProbe: {grpc: {port: 65535}}}
""")
    assert errs == [
        "spec.containers[0].livenessProbe.grpc.port: Invalid value: 0: must be between 1 and 65535, inclusive",
        "spec.containers[0].readinessProbe.grpc.port: Invalid value: 65536: must be between 1 and 65535, inclusive",
    ]


def test_pod_spec_rules_report_in_validate_pod_spec_order() -> None:
    """Volumes, init containers, containers (ports, env, mounts, hooks), then the pod-wide fields:
    every message and path as kubectl apply shows them, in Kubernetes' order."""
    errs = errors_of("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  hostNetwork: true
  shareProcessNamespace: true
  hostPID: true
  dnsPolicy: None
  dnsConfig: {nameservers: [1.1.1.1, 2.2.2.2, 3.3.3.3, 4.4.4.4]}
  terminationGracePeriodSeconds: -3
  activeDeadlineSeconds: 0
  overhead: {cpu: "-1"}
  securityContext: {sysctls: [{name: "kernel.shm rmid", value: "1"}]}
  affinity:
    nodeAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        nodeSelectorTerms: [{matchExpressions: [{key: a, operator: In}, {key: b, operator: Exists, values: [x]}]}]
  volumes:
  - {name: h, hostPath: {path: "", type: Pipe}}
  - {name: m, emptyDir: {medium: Disk, sizeLimit: "-1"}}
  initContainers:
  - {name: i, image: busybox, lifecycle: {preStop: {exec: {command: ["true"]}}}}
  containers:
  - name: c
    image: busybox
    ports: [{containerPort: 80, hostPort: 81, name: http}, {containerPort: 82, name: http}]
    env: [{name: 1A, value: v, valueFrom: {fieldRef: {fieldPath: metadata.name}}}]
    volumeMounts: [{name: h, mountPath: /h, subPath: ../up}, {name: m, mountPath: /h}]
    lifecycle: {postStart: {}}
""")
    required = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
    assert errs == [
        "spec.volumes[0].hostPath.path: Required value",
        'spec.volumes[0].hostPath.type: Unsupported value: "Pipe": supported values: "", "DirectoryOrCreate", '
        '"Directory", "FileOrCreate", "File", "Socket", "CharDevice", "BlockDevice"',
        'spec.volumes[1].emptyDir.medium: Unsupported value: "Disk": supported values: "", "Memory"',
        'spec.volumes[1].emptyDir.sizeLimit: Invalid value: "-1": must be greater than or equal to 0',
        "spec.initContainers[0].lifecycle: Forbidden: may not be set for init containers without restartPolicy=Always",
        "spec.containers[0].ports[0].hostPort: Invalid value: 81: must match `containerPort` when `hostNetwork` is true",
        'spec.containers[0].ports[1].name: Duplicate value: "http"',
        'spec.containers[0].env[0].name: Invalid value: "1A": a valid environment variable name must consist of '
        "alphabetic characters, digits, '_', '-', or '.', and must not start with a digit",
        "spec.containers[0].env[0].valueFrom: Invalid value: may not be specified when `value` is not empty",
        "spec.containers[0].volumeMounts[0].subPath: Invalid value: \"../up\": must be a relative path without '..'",
        'spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/h": must be unique',
        "spec.containers[0].lifecycle.postStart: Required value: must specify exactly one handler type",
        "spec.dnsConfig.nameservers: Too many: must not have more than 3 nameservers",
        "spec.terminationGracePeriodSeconds: Invalid value: -3: must be greater than or equal to 0",
        "spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive",
        "spec.shareProcessNamespace: Invalid value: true: ShareProcessNamespace and HostPID cannot both be enabled",
        f"{required}.matchExpressions[0].values: Required value: must be specified when `operator` is 'In' or 'NotIn'",
        f"{required}.matchExpressions[1].values: Forbidden: may not be specified when `operator` is 'Exists' or "
        "'DoesNotExist'",
        'spec.securityContext.sysctls[0].name: Invalid value: "kernel.shm rmid": must have at most 253 characters '
        "and match regex ^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$",
        'spec.overhead[cpu]: Invalid value: "-1": must be greater than or equal to 0',
    ]


def test_updates_may_change_only_images_and_a_few_fields() -> None:
    old = default_pod(load_pods(REAL_POD)[0])
    new = old.model_copy(deep=True)
    new.spec.containers[0].image = "busybox:1.36"
    new.spec.active_deadline_seconds = 60
    assert validate_pod_update(new, old) == []
    new.spec.restart_policy = "Never"
    assert validate_pod_update(new, old)[0].path == "spec"


def test_effective_requests_sum_containers_and_count_init_steps() -> None:
    pod = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  overhead: {cpu: 100m}
  initContainers:
  - {name: big-init, image: i, resources: {requests: {cpu: "3"}}}
  - {name: side, image: i, restartPolicy: Always, resources: {requests: {cpu: 500m, memory: 64Mi}}}
  - {name: late-init, image: i, resources: {requests: {cpu: "2"}}}
  containers:
  - {name: a, image: i, resources: {requests: {cpu: "1", memory: 128Mi}}}
  - {name: b, image: i, resources: {requests: {cpu: 500m}}}
""")[0]
    # max(1 + 0.5 + 0.5 sidecar, 3 for big-init, 2 + 0.5 for late-init beside the sidecar) + 0.1 overhead
    assert pod_requests(pod) == {"cpu": Fraction(31, 10), "memory": parse_quantity("192Mi")}
    assert qos_class(pod) == "Burstable"


def _pod(containers: list[dict], init: list[dict] | None = None) -> Pod:
    spec: dict = {"containers": [{"name": f"c{i}", "image": "i", "resources": r} for i, r in enumerate(containers)]}
    if init is not None:
        spec["initContainers"] = [{"name": f"i{i}", "image": "i", "resources": r} for i, r in enumerate(init)]
    return from_dict(Pod, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": spec})


CPU_MEM = {"cpu": "1", "memory": "1Gi"}


@pytest.mark.parametrize(("containers", "init", "expected"), [
    ([{}], None, "BestEffort"),
    ([{"requests": {"cpu": "0"}, "limits": {"memory": "0"}}], None, "BestEffort"),
    ([{"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "1000m", "memory": "1024Mi"}}], None, "Guaranteed"),
    ([{"limits": CPU_MEM}], None, "Guaranteed"),  # requests default to limits
    ([{"requests": {"cpu": "500m"}, "limits": CPU_MEM}], None, "Burstable"),
    ([{"requests": CPU_MEM, "limits": {"cpu": "1"}}], None, "Burstable"),
    ([{"limits": CPU_MEM}, {}], None, "Burstable"),
    ([{"limits": CPU_MEM}], [{"limits": {"cpu": "100m", "memory": "8Mi"}}], "Guaranteed"),
    ([{"limits": CPU_MEM}], [{}], "Burstable"),  # init containers count too
    ([{"requests": {"ephemeral-storage": "1Gi"}}], None, "BestEffort"),  # only cpu and memory decide
    ([{"limits": {**CPU_MEM, "ephemeral-storage": "1Gi"}}], None, "Guaranteed"),
])
def test_qos_class_is_kubernetes_compute_pod_qos(containers: list[dict], init: list[dict] | None, expected: str) -> None:
    assert qos_class(_pod(containers, init)) == expected


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from(["", "m", "k", "Mi", "Gi"]))
def test_quantities_parse_exactly(n: int, suffix: str) -> None:
    scale = {"": 1, "m": Fraction(1, 1000), "k": 1000, "Mi": 2**20, "Gi": 2**30}[suffix]
    assert parse_quantity(f"{n}{suffix}") == n * scale


def test_legacy_v1beta1_and_hyper_pod_files() -> None:
    legacy = load_pods(EXAMPLES / "legacy-v1beta1.json")[0]
    assert (legacy.metadata.name, legacy.metadata.labels) == ("redis-controller", {"name": "redis-controller"})
    assert legacy.spec.containers[0].ports[0].host_port == 6379
    hyper = load_pods(EXAMPLES / "hyper-pod.json")[0]
    c = hyper.spec.containers[0]
    assert (hyper.metadata.name, hyper.spec.hostname, c.name, c.working_dir) == ("hyper-web", "hyper-web", "web", "/")
    assert [(e.name, e.value) for e in c.env] == [("GREETING", "hello")]
    assert c.resources.limits == {"cpu": "1", "memory": "128Mi"}


def test_hyper_pod_file_maps_pod_wide_ports_resources_volumes_and_tty() -> None:
    """Hyper's pod-wide portmappings and resource go to the first container, its volumes become
    hostPath or emptyDir, a string command runs under sh -c after the entryPoint, tty opens stdin."""
    pod = load_pods(json.dumps({
        "id": "multi", "tty": True, "restartPolicy": "onFailure",
        "portmappings": [{"containerPort": 80, "hostPort": 8080, "protocol": "tcp"}], "resource": {"memory": 256},
        "volumes": [{"name": "data", "source": "/srv/data"}, {"name": "scratch"}],
        "containers": [{"image": "registry.example.com/team/My_App:1.0", "command": "echo hi", "entryPoint": "/bin/sh",
                        "volumes": [{"volume": "data", "path": "/d", "readOnly": True}, {"volume": "scratch", "path": "/s"}]},
                       {"image": "busybox", "command": ["ls", "-l"], "ports": [{"containerPort": 53, "protocol": "udp"}]}]}))[0]
    assert to_dict(pod)["spec"] == {
        "volumes": [{"name": "data", "hostPath": {"path": "/srv/data"}}, {"name": "scratch", "emptyDir": {}}],
        "containers": [
            {"name": "my-app", "image": "registry.example.com/team/My_App:1.0", "command": ["/bin/sh"],
             "args": ["sh", "-c", "echo hi"], "ports": [{"hostPort": 8080, "containerPort": 80, "protocol": "TCP"}],
             "resources": {"limits": {"memory": "256Mi"}},
             "volumeMounts": [{"name": "data", "readOnly": True, "mountPath": "/d"}, {"name": "scratch", "mountPath": "/s"}],
             "stdin": True, "tty": True},
            {"name": "busybox", "image": "busybox", "command": ["ls"], "args": ["-l"],
             "ports": [{"containerPort": 53, "protocol": "UDP"}], "stdin": True, "tty": True}],
        "restartPolicy": "OnFailure"}


def test_multi_document_files_lists_and_errors_name_the_document() -> None:
    objs = load_objects("""
apiVersion: v1
kind: List
items:
- {apiVersion: v1, kind: Pod, metadata: {name: a}, spec: {containers: [{name: c, image: i}]}}
- {apiVersion: v1, kind: Node, metadata: {name: n}}
---
apiVersion: v1
kind: Pod
metadata: {name: b}
spec: {containers: [{name: c, image: i}]}
""", "f.yaml")
    assert [type(o) for o in objs] == [Pod, Node, Pod]
    with pytest.raises(Invalid) as err:
        load_objects("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\napiVersion: v1\nkind: Pd\n", "f.yaml")
    assert str(err.value.errors[0]).startswith('f.yaml#2: kind: Unsupported value: "Pd"')


def test_fields_read_but_not_implemented_are_named() -> None:
    from podbay.api.support import unsupported_fields

    pod = load_pods("""
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  runtimeClassName: gvisor
  affinity: {podAntiAffinity: {requiredDuringSchedulingIgnoredDuringExecution: []}}
  containers:
  - {name: c, image: i, livenessProbe: {grpc: {port: 9000}}, securityContext: {appArmorProfile: {type: RuntimeDefault}}}
""")[0]
    assert unsupported_fields(pod) == [
        "spec.affinity.podAntiAffinity", "spec.containers[0].securityContext.appArmorProfile"]


def test_the_support_table_in_docs_is_the_rendering() -> None:
    from podbay.api.support import render_support_table

    docs = Path(__file__).resolve().parents[2] / "docs" / "support.md"
    assert docs.read_text() == render_support_table(), "run: python -m podbay.api.support > docs/support.md"
