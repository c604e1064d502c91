"""Fields podbay reads but does not act on yet. They are never dropped quietly: the node
agent reports them as a Warning event when it runs the pod, and `podbay validate` prints them."""
from __future__ import annotations

from podbay.api.models import Pod


def unsupported_fields(pod: Pod) -> list[str]:
    spec = pod.spec
    out: list[str] = []
    if spec.affinity is not None:
        if spec.affinity.pod_affinity:
            out.append("spec.affinity.podAffinity")
        if spec.affinity.pod_anti_affinity:
            out.append("spec.affinity.podAntiAffinity")
        node = spec.affinity.node_affinity
        if node is not None and node.preferred_during_scheduling_ignored_during_execution:
            out.append("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")
    for name, value in (("topologySpreadConstraints", spec.topology_spread_constraints),
                        ("imagePullSecrets", spec.image_pull_secrets),
                        ("priorityClassName", spec.priority_class_name), ("hostUsers", spec.host_users),
                        ("setHostnameAsFQDN", spec.set_hostname_as_fqdn), ("preemptionPolicy", spec.preemption_policy),
                        ("os", spec.os), ("automountServiceAccountToken", spec.automount_service_account_token)):
        if value:
            out.append(f"spec.{name}")
    sc = spec.security_context
    if sc is not None:
        for name, option in (("seLinuxOptions", sc.se_linux_options), ("appArmorProfile", sc.app_armor_profile)):
            if option is not None:
                out.append(f"spec.securityContext.{name}")
    for kind, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(containers):
            path = f"spec.{kind}[{i}]"
            if c.volume_devices:
                out.append(f"{path}.volumeDevices")
            if c.resize_policy:
                out.append(f"{path}.resizePolicy")
            csc = c.security_context
            if csc is not None:
                for name, setting in (("seLinuxOptions", csc.se_linux_options), ("appArmorProfile", csc.app_armor_profile),
                                      ("procMount", csc.proc_mount)):
                    if setting is not None:
                        out.append(f"{path}.securityContext.{name}")
    return out


# What each Pod and Container field does here, where it is not simply "supported".
# The table in docs/support.md is rendered from this and the models (`python -m podbay.api.support`);
# a test keeps the file equal to the rendering, so the two cannot drift.
NOTES: dict[str, tuple[str, str]] = {
    "PodSpec.volumes": ("partial", "emptyDir (disk, Memory, sizeLimit: a disk emptyDir used past it evicts the "
                                   "pod, as the kubelet), hostPath (with type checks), configMap, secret, "
                                   "downwardAPI; volumes that need a storage provider are refused"),
    "PodSpec.dnsPolicy": ("supported", "ClusterFirst (and ClusterFirstWithHostNet) use the cluster DNS "
                                       "(--cluster-dns, served by the all-in-one on the pods' bridge address) with "
                                       "the kubelet's search path and ndots:5"),
    "PodSpec.serviceAccountName": ("partial", "stored; no token is mounted"),
    "PodSpec.serviceAccount": ("partial", "stored; no token is mounted"),
    "PodSpec.automountServiceAccountToken": ("not yet", "no service account tokens"),
    "PodSpec.securityContext": ("partial", "runAsUser, runAsGroup, supplementalGroups, fsGroup (as a group), "
                                           "seccompProfile (RuntimeDefault, Unconfined, Localhost under "
                                           "--seccomp-profile-root, default <state root>/seccomp; unset is "
                                           "Unconfined), sysctls parsed; "
                                           "seLinuxOptions, appArmorProfile not yet"),
    "PodSpec.imagePullSecrets": ("not yet", "pull with an auth.json instead (`podbay image pull --auth-file`)"),
    "PodSpec.affinity": ("partial", "required node affinity; preferred terms, pod (anti-)affinity not yet"),
    "PodSpec.schedulerName": ("partial", "only pods for default-scheduler are bound"),
    "PodSpec.tolerations": ("partial", "NoSchedule and NoExecute at scheduling; no NoExecute eviction"),
    "PodSpec.priorityClassName": ("not yet", "no preemption"),
    "PodSpec.priority": ("partial", "stored; no preemption"),
    "PodSpec.runtimeClassName": ("supported", "handlers runc (crun, the default) and runsc (gVisor: "
                                              "no hostNetwork/hostPID/hostIPC, no memory limit enforced; docs/runtimeclass.md); "
                                              "bound only to a node whose runtimeHandlers have the class's"),
    "PodSpec.preemptionPolicy": ("not yet", "no preemption"),
    "PodSpec.topologySpreadConstraints": ("not yet", "reported when the pod runs"),
    "PodSpec.setHostnameAsFQDN": ("not yet", "reported when the pod runs"),
    "PodSpec.os": ("not yet", "Linux only"),
    "PodSpec.hostUsers": ("not yet", "no user namespaces"),
    "Container.envFrom": ("not yet", "configMap and secret sources are refused (optional ones skipped)"),
    "Container.env": ("partial", "value with $(VAR) expansion, fieldRef, resourceFieldRef; configMapKeyRef and "
                                 "secretKeyRef not yet"),
    "Container.resources": ("partial", "cpu and memory requests and limits (shares, CFS quota, memory limit); "
                                       "ephemeral-storage limits evict the pod when its writable layer and log, "
                                       "or the pod's total, use more (the kubelet's local storage isolation); "
                                       "claims not yet"),
    "Container.resizePolicy": ("not yet", "no in-place resize"),
    "Container.volumeDevices": ("not yet", "no block volumes"),
    "Container.securityContext": ("partial", "runAsUser, runAsGroup, privileged, readOnlyRootFilesystem, "
                                             "capabilities, allowPrivilegeEscalation, seccompProfile (privileged "
                                             "is Unconfined); SELinux, AppArmor, procMount not yet"),
    "Container.stdin": ("supported", "held open by conmon; `kubectl attach -i`"),
    "Container.stdinOnce": ("supported", "the first attach's end of input closes stdin"),
    "Container.tty": ("supported", "a terminal; `kubectl attach -it`"),
    "Container.terminationMessagePolicy": ("partial", "File; FallbackToLogsOnError reads the file only"),
}


def render_support_table() -> str:
    from podbay.api.models import Container, PodSpec

    lines = ["# What podbay does with each Pod field", "",
             "Rendered from `podbay/api/support.py` by `python -m podbay.api.support > docs/support.md`; a test "
             "keeps this file equal to the rendering. Fields marked *not yet* are accepted, never dropped "
             "quietly: `podbay validate` prints them and the node agent records a Warning event when it runs "
             "the pod.", ""]
    for model in (PodSpec, Container):
        lines += [f"## {model.__name__}", "", "| field | support | notes |", "|---|---|---|"]
        for name, info in model.model_fields.items():
            wire = info.alias or name
            support, note = NOTES.get(f"{model.__name__}.{wire}", ("supported", ""))
            lines.append(f"| `{wire}` | {support} | {note} |")
        lines.append("")
    return "\n".join(lines + RUNTIME_HANDLERS + STREAMING + API_REQUESTS + SERVICES + POD_TEMPLATE_HASH
                     + CONTROLLERLESS_KINDS)


# What works per runtime handler (a RuntimeClass's `handler`; docs/runtimeclass.md).
RUNTIME_HANDLERS = [
    "## Runtime handlers", "",
    "A pod's RuntimeClass names the handler that runs it; a pod without one gets the default. "
    "The node lists its handlers in `status.runtimeHandlers` (neither `recursiveReadOnlyMounts` nor "
    "`userNamespaces` for any), and the scheduler binds a pod of a class only to a node that has the "
    "class's handler; elsewhere it stays Pending with FailedScheduling `0/N nodes are available: N "
    "node(s) didn't have the runtime handler \"X\".` (podbay's words: kube-scheduler has no such filter).",
    "",
    "| | `\"\"`, `runc`, `crun` (the default: crun under conmon) | `runsc` (gVisor) |",
    "|---|---|---|",
    "| where | every node | nodes with runsc installed; `podbay up` then makes RuntimeClass `gvisor` |",
    "| kernel | the host's (namespaces, cgroups, seccomp) | gVisor's user-space kernel (`uname -r` 4.4.0), "
    "ptrace platform |",
    "| pod network (own IP, ports) | supported | supported: gVisor's netstack, or the host's stack "
    "where runsc refuses the netstack (Warning `SandboxFallback`) |",
    "| `hostNetwork`, `hostPID`, `hostIPC` | supported | refused |",
    "| containers sharing localhost, `shareProcessNamespace` | supported | supported |",
    "| `podbay logs`, exit codes, restarts, liveness restarts | supported | supported (gVisor's exit codes: "
    "a pid 1 without a TERM handler ends with 143) |",
    "| the sandbox dies (its kernel killed) | no such process (namespaces are pinned) | the containers end (Error); the sandbox is NOTREADY and the "
    "restart policy applies in a new one |",
    "| memory limits, `OOMKilled` | supported | the pod's (the containers' limits summed plus the class's 32Mi "
    "overhead, on its cgroup): over it the host's OOM killer takes the sandbox, so every container of the pod ends "
    "OOMKilled (137) and the restart policy applies in a new sandbox; a container alone is not held to its own limit |",
    "| exec | supported, `-i` and `-t` | supported, `-i` and `-t` (runsc takes a terminal as the exec's stdio) |",
    "| `stdin`, `tty`, attach | supported | supported (gvisormon serves conmon's attach socket; a container's "
    "terminal is not named: `tty` prints \"not a tty\", `[ -t 0 ]` holds) |",
    "| HyperContainer stop, start, replace | supported | supported; replace only between pods of one "
    "RuntimeClass, in the same running kernel |",
    "| warm sandboxes | `--warm-sandboxes` (namespaces and network) | `--warm-gvisor-sandboxes` (default 1 "
    "for `podbay up`): the kernel booted too |",
    "| known quirks | | under the host's stack a blocking socket read may fail with EAGAIN (busybox `wget`) |",
    "",
]


# The pods/exec, attach and portforward subresources, by client and transport.
STREAMING = [
    "## Streaming: exec, cp, attach, port-forward", "",
    "| kubectl | exec, cp, attach | port-forward |",
    "|---|---|---|",
    "| before 1.30 | SPDY/3.1 (`v4.channel.k8s.io`) | SPDY/3.1 (`portforward.k8s.io`) |",
    "| 1.30 | WebSocket (`v5.channel.k8s.io`), SPDY when that fails | SPDY/3.1 |",
    "| 1.31 and later | WebSocket, SPDY when that fails | SPDY tunnelled in a WebSocket "
    "(`SPDY/3.1+portforward.k8s.io`), SPDY when that fails |",
    "",
    "The API server ends SPDY itself and reaches the pod's node agent over WebSockets. Port-forward "
    "connects to `127.0.0.1:PORT` inside the pod's network namespace (a port bound to the pod's "
    "loopback works), several ports, up to 128 connections at once per port-forward, each direction "
    "half-closed on its own; a refused connection is reported as the kubelet words it (`error forwarding port "
    "... connect: connection refused`). Other clients (the official Python client) may use the kubelet's plain "
    "WebSocket form instead: `v4.channel.k8s.io` with `?ports=` (at most 16), two channels per "
    "port. Attach goes through conmon's attach socket: the container needs `stdin: true` for `-i` "
    "and `tty: true` for `-t`.",
    "",
]


# What the API server does with kube-apiserver's write options.
API_REQUESTS = [
    '## API requests',
    '',
    '| request | support | notes |',
    '|---|---|---|',
    "| server-side apply (`PATCH` `application/apply-patch+yaml`) | supported | `fieldManager` required, `force`; merges by the published list types (map lists by their merge key, sets, atomic lists); conflicts are 409 with kube's message and causes; fields a manager stops applying are removed unless another owns them; the `kubectl` manager takes fields client-side apply set and nobody changed since without a conflict, and keeps `last-applied-configuration` current, as kube-apiserver's lastAppliedManager/Updater |",
    "| `metadata.managedFields` | partial | FieldsV1, Apply and Update entries (manager from `fieldManager` or the User-Agent's program), `subresource: status`; managedFields a client sends on create, PUT or PATCH replace the live ones (`[{}]` resets them); Update entries never mark a newly added map with `.` (kube does for granular maps such as labels) |",
    "| `dryRun=All` | supported | create, update, patch, apply and delete (query, or DeleteOptions' `dryRun`): everything but the store write; a dry-run create of an existing name is 409 |",
    "| protobuf request bodies (`application/vnd.kubernetes.protobuf`) | supported | what kubectl 1.32+ sends for its typed creates (`create` deployment, job, configmap, secret, namespace, service, ingress, cronjob; `debug --copy-to`): decoded for every served kind from Kubernetes' field numbers and podbay's models; a set field podbay's models lack is 415 naming the field; older kubectl, `run`, `expose`, `scale` and `apply` send JSON |",
    '| `fieldValidation` | supported | `Warn` (the default, as kube-apiserver\'s): unknown fields dropped, one `Warning: 299` header each; `Ignore`: dropped; `Strict`: 400 `strict decoding error: unknown field "..."`; an apply with an unknown field is always 400 `field not declared in schema`, as kube\'s (its path names list items by index, not by key); duplicate fields are not detected |',
    '',
]


# The Service fields the proxy and cluster DNS act on (docs/services.md).
SERVICES = [
    "## Services",
    "",
    "| field | support | notes |",
    "|---|---|---|",
    "| `type` | partial | ClusterIP and NodePort; LoadBalancer and ExternalName are refused (422) |",
    "| `clusterIP`, `clusterIPs` | supported | IPv4 only; `None` makes a headless Service (DNS answers the "
    "ready pods' IPs) |",
    "| `sessionAffinity`, `sessionAffinityConfig` | supported | ClientIP as kube-proxy's `recent` lists, "
    "`timeoutSeconds` 10800 by default (1 to 86400) |",
    "| `externalTrafficPolicy` | supported | NodePort: Local keeps the client's address and serves outside "
    "clients from this node's endpoints only, dropping their packets where there are none |",
    "| `internalTrafficPolicy` | supported | Local: the ClusterIP reaches this node's endpoints only, and "
    "drops where there are none |",
    "| `healthCheckNodePort` | not yet | out of scope: it belongs to LoadBalancer Services, which this "
    "cluster has not; refused (422) |",
    "| `publishNotReadyAddresses` | supported |  |",
    "| `externalIPs`, `loadBalancer*`, `ipFamilies` beyond IPv4 | not yet | stored, no rules |",
    "",
]


# Why a Deployment's pod-template-hash is not the value a real cluster computes.
POD_TEMPLATE_HASH = [
    "## The pod-template-hash", "",
    "A Deployment's ReplicaSets and pods carry `pod-template-hash`. Kubernetes computes it as FNV-1a 32 over "
    "`dump.ForHash(template)`, go-spew's `%#v` dump of the `k8s.io/api/core/v1` PodTemplateSpec struct (every "
    "field in Go declaration order, with Go type names, zero values and library internals such as a "
    "`resource.Quantity`'s cached forms and a `metav1.Time`'s `time.Time` words), then the collisionCount, "
    "printed in decimal and safe-encoded. The dump is deterministic, but it is a function of the struct layout "
    "of the controller's Kubernetes release: a release that adds a PodSpec or Container field changes every hash "
    "(Kubernetes copes because it finds a Deployment's current set by comparing templates, not hashes). podbay "
    "keeps the recipe and the encoding but hashes the template's canonical JSON, so its hashes are stable from "
    "one podbay version to the next, have Kubernetes' form (e.g. `7c5ddbdf54`) and differ from a real cluster's "
    "for the same template. Nothing in podbay or kubectl reads the value itself: sets are matched to the "
    "template semantically, as Kubernetes matches them.",
    "",
]


# Kinds served so that clients listing every kind (kubectl apply --prune's default allowlist:
# ConfigMap, Endpoints, Namespace, PersistentVolumeClaim, PersistentVolume, Pod,
# ReplicationController, Secret, Service, Job, CronJob, Ingress, DaemonSet, Deployment,
# ReplicaSet, StatefulSet) find them, though nothing in podbay acts on them.
CONTROLLERLESS_KINDS = [
    "## Kinds without a controller",
    "",
    "| kind | support | notes |",
    "|---|---|---|",
    "| `v1` PersistentVolumeClaim | stored | validated (accessModes, `resources.requests.storage` > 0, volumeMode) and stays `Pending`, as on a cluster whose storage class has no provisioner; its spec is immutable; pods cannot mount it |",
    "| `v1` PersistentVolume | stored | validated (capacity.storage, accessModes, exactly one volume source, `local` needs nodeAffinity); starts `Pending` and nothing binds it |",
    "| `networking.k8s.io/v1` Ingress | stored | validated (rules or defaultBackend, pathType, absolute paths, one backend with a port name or number); nothing routes it and `status.loadBalancer` stays empty, as without an ingress controller |",
    "| `apps/v1` DaemonSet, StatefulSet; `batch/v1` CronJob | listed, writes refused | served (discovery, get, list, watch, delete) so that `kubectl apply --prune` without `--prune-allowlist` and `kubectl get all` work; every create, update, patch or apply is refused by admission with 403 Forbidden naming the reason, never stored to do nothing |",
    "",
]


if __name__ == "__main__":
    print(render_support_table(), end="")
