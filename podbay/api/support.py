"""Fields podbay reads but does not act on yet. They are never dropped quietly: the node
agent reports them as a Warning event when it runs the pod, and `podbay validate` prints them."""
from __future__ import annotations

from podbay.api.models import Pod


def unsupported_fields(pod: Pod) -> list[str]:
    spec = pod.spec
    out: list[str] = []
    if spec.ephemeral_containers:
        out.append("spec.ephemeralContainers")
    if spec.affinity is not None:
        if spec.affinity.pod_affinity:
            out.append("spec.affinity.podAffinity")
        if spec.affinity.pod_anti_affinity:
            out.append("spec.affinity.podAntiAffinity")
        node = spec.affinity.node_affinity
        if node is not None and node.preferred_during_scheduling_ignored_during_execution:
            out.append("spec.affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution")
    for name, value in (("topologySpreadConstraints", spec.topology_spread_constraints),
                        ("runtimeClassName", spec.runtime_class_name), ("imagePullSecrets", spec.image_pull_secrets),
                        ("priorityClassName", spec.priority_class_name), ("hostUsers", spec.host_users),
                        ("setHostnameAsFQDN", spec.set_hostname_as_fqdn), ("preemptionPolicy", spec.preemption_policy),
                        ("os", spec.os), ("automountServiceAccountToken", spec.automount_service_account_token)):
        if value:
            out.append(f"spec.{name}")
    sc = spec.security_context
    if sc is not None:
        for name, value in (("seLinuxOptions", sc.se_linux_options), ("appArmorProfile", sc.app_armor_profile)):
            if value is not None:
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
                for name, value in (("seLinuxOptions", csc.se_linux_options), ("appArmorProfile", csc.app_armor_profile),
                                    ("procMount", csc.proc_mount)):
                    if value is not None:
                        out.append(f"{path}.securityContext.{name}")
    return out


# What each Pod and Container field does here, where it is not simply "supported".
# The table in docs/support.md is rendered from this and the models (`python -m podbay.api.support`);
# a test keeps the file equal to the rendering, so the two cannot drift.
NOTES: dict[str, tuple[str, str]] = {
    "PodSpec.volumes": ("partial", "emptyDir (disk, Memory, sizeLimit: a disk emptyDir used past it evicts the "
                                   "pod, as the kubelet), hostPath (with type checks), configMap, secret, "
                                   "downwardAPI; volumes that need a storage provider are refused"),
    "PodSpec.ephemeralContainers": ("not yet", "reported when the pod runs"),
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
    "PodSpec.runtimeClassName": ("not yet", "always crun"),
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
    "Container.stdin": ("partial", "a stdin pipe; no attach yet"),
    "Container.stdinOnce": ("not yet", "no attach"),
    "Container.tty": ("partial", "a terminal; no attach yet"),
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
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_support_table(), end="")
