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
                        ("setHostnameAsFQDN", spec.set_hostname_as_fqdn)):
        if value:
            out.append(f"spec.{name}")
    sc = spec.security_context
    if sc is not None:
        for name, value in (("seLinuxOptions", sc.se_linux_options), ("seccompProfile", sc.seccomp_profile),
                            ("appArmorProfile", sc.app_armor_profile)):
            if value is not None:
                out.append(f"spec.securityContext.{name}")
    for kind, containers in (("initContainers", spec.init_containers), ("containers", spec.containers)):
        for i, c in enumerate(containers):
            path = f"spec.{kind}[{i}]"
            if c.volume_devices:
                out.append(f"{path}.volumeDevices")
            if c.resize_policy:
                out.append(f"{path}.resizePolicy")
            for probe_name, probe in (("livenessProbe", c.liveness_probe), ("readinessProbe", c.readiness_probe),
                                      ("startupProbe", c.startup_probe)):
                if probe is not None and probe.grpc is not None:
                    out.append(f"{path}.{probe_name}.grpc")
            csc = c.security_context
            if csc is not None:
                for name, value in (("seLinuxOptions", csc.se_linux_options), ("seccompProfile", csc.seccomp_profile),
                                    ("appArmorProfile", csc.app_armor_profile), ("procMount", csc.proc_mount)):
                    if value is not None:
                        out.append(f"{path}.securityContext.{name}")
    return out
