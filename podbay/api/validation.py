"""Validation of defaulted objects, after Kubernetes' ValidatePodCreate and
ValidatePodUpdate (pkg/apis/core/validation): every error names its field path."""
from __future__ import annotations

import re
from pathlib import PurePosixPath

from pydantic import BaseModel

from podbay.api.errors import FieldError
from podbay.api.models import (
    UNSUPPORTED_VOLUME_SOURCES, Container, ContainerPort, EnvVar, Lease, LifecycleHandler, Namespace, Node,
    NodeAffinity, ObjectMeta, Pod, PodSecurityContext, PodSpec, Probe, ResourceRequirements, RuntimeClass,
    SeccompProfile, Toleration, Volume, VolumeMount, is_restartable_init,
)
from podbay.api.quantity import parse_quantity
from podbay.api.serialize import to_dict

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])*$")
SYSCTL = re.compile(r"^([a-z0-9]([-_a-z0-9]*[a-z0-9])?[\./])*[a-z0-9]([-_a-z0-9]*[a-z0-9])?$")

MSG_LABEL = ("must be a lowercase RFC 1123 label: lower case alphanumeric characters or '-', "
             "starting and ending with an alphanumeric character (e.g. 'my-name', or '123-abc'), "
             "at most 63 characters")
MSG_SUBDOMAIN = ("must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', "
                 "starting and ending with an alphanumeric character (e.g. 'example.com'), at most 253 characters")


def _unsupported(value: object, allowed: tuple[str, ...]) -> str:
    return "Unsupported value: supported values: " + ", ".join(f'"{a}"' for a in allowed)


def is_label(name: str) -> bool:
    return bool(LABEL.match(name)) and len(name) <= 63


def is_subdomain(name: str) -> bool:
    return bool(SUBDOMAIN.match(name)) and len(name) <= 253


def _qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not is_subdomain(prefix):
        return False
    return bool(QUALIFIED.match(name)) and len(name) <= 63


# Other kinds' validation (a Job's pod condition types) checks qualified names too.
is_qualified_name = _qualified_name


def _labels(path: str, labels: dict[str, str]) -> list[FieldError]:
    errs: list[FieldError] = []
    for key, value in labels.items():
        if not _qualified_name(key):
            errs.append(FieldError(path, key, "name part must consist of alphanumeric characters, "
                                   "'-', '_' or '.', and must start and end with an alphanumeric character"))
        if len(value) > 63 or not LABEL_VALUE.match(value):
            errs.append(FieldError(path, value, "a valid label must be an empty string or consist of "
                                   "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                                   "alphanumeric character, at most 63 characters"))
    return errs


def validate_metadata(meta: ObjectMeta, path: str = "metadata", namespaced: bool = True) -> list[FieldError]:
    errs: list[FieldError] = []
    if not meta.name and not meta.generate_name:
        errs.append(FieldError(f"{path}.name", None, "Required value: name or generateName is required"))
    elif meta.name and not is_subdomain(meta.name):
        errs.append(FieldError(f"{path}.name", meta.name, MSG_SUBDOMAIN))
    if namespaced and meta.namespace and not is_label(meta.namespace):
        errs.append(FieldError(f"{path}.namespace", meta.namespace, MSG_LABEL))
    errs += _labels(f"{path}.labels", meta.labels)
    for key in meta.annotations:
        if not _qualified_name(key):
            errs.append(FieldError(f"{path}.annotations", key, "name part must consist of alphanumeric "
                                   "characters, '-', '_' or '.', and must start and end with an alphanumeric character"))
    if sum(len(k) + len(v) for k, v in meta.annotations.items()) > 256 * 1024:
        errs.append(FieldError(f"{path}.annotations", None, "Too long: must have at most 262144 bytes"))
    return errs


def _quantity(path: str, value: str) -> list[FieldError]:
    try:
        q = parse_quantity(value)
    except ValueError as exc:
        return [FieldError(path, value, str(exc))]
    if q < 0:
        return [FieldError(path, value, "must be greater than or equal to 0")]
    return []


def _resources(path: str, r: ResourceRequirements | None) -> list[FieldError]:
    if r is None:
        return []
    errs: list[FieldError] = []
    for kind in ("limits", "requests"):
        for name, value in getattr(r, kind).items():
            errs += _quantity(f"{path}.{kind}[{name}]", value)
    if not errs:
        for name, value in r.requests.items():
            if name in r.limits and parse_quantity(value) > parse_quantity(r.limits[name]):
                errs.append(FieldError(f"{path}.requests", value, f"must be less than or equal to {name} limit "
                                       f"of {r.limits[name]}"))
    return errs


def _handler_count(h: Probe | LifecycleHandler) -> int:
    return sum(1 for x in (h.exec, h.http_get, h.tcp_socket, getattr(h, "grpc", None), getattr(h, "sleep", None))
               if x is not None)


def _port(path: str, port: int | str, container: Container) -> list[FieldError]:
    if isinstance(port, int) or (isinstance(port, str) and port.isdigit()):
        if not 1 <= int(port) <= 65535:
            return [FieldError(path, port, "must be between 1 and 65535, inclusive")]
        return []
    if not any(p.name == port for p in container.ports):
        return [FieldError(path, port, "must contain at least one port name defined in the container's ports")]
    return []


def _probe(path: str, probe: Probe | None, container: Container, must_succeed_once: bool) -> list[FieldError]:
    if probe is None:
        return []
    errs: list[FieldError] = []
    n = _handler_count(probe)
    if n == 0:
        errs.append(FieldError(path, None, "Required value: must specify a handler type"))
    elif n > 1:
        errs.append(FieldError(path, None, "Forbidden: may not specify more than 1 handler type"))
    for name in ("initial_delay_seconds", "timeout_seconds", "period_seconds", "success_threshold",
                 "failure_threshold"):
        value = getattr(probe, name)
        camel = "".join(w.capitalize() if i else w for i, w in enumerate(name.split("_")))
        minimum = 0 if name == "initial_delay_seconds" else 1
        if value is not None and value < minimum:
            errs.append(FieldError(f"{path}.{camel}", value, f"must be greater than or equal to {minimum}"))
    if must_succeed_once and probe.success_threshold not in (None, 1):
        errs.append(FieldError(f"{path}.successThreshold", probe.success_threshold, "must be 1"))
    if probe.http_get is not None:
        errs += _port(f"{path}.httpGet.port", probe.http_get.port, container)
    if probe.tcp_socket is not None:
        errs += _port(f"{path}.tcpSocket.port", probe.tcp_socket.port, container)
    if probe.grpc is not None:
        errs += _port(f"{path}.grpc.port", probe.grpc.port, container)
    return errs


def _seccomp_profile(path: str, sp: SeccompProfile | None) -> list[FieldError]:
    """validateSeccompProfileField: a Localhost profile is a file under the node's
    profile root, so it must name one there; other types take no file."""
    if sp is None:
        return []
    errs: list[FieldError] = []
    kinds = ("Localhost", "RuntimeDefault", "Unconfined")
    if not sp.type:
        errs.append(FieldError(f"{path}.type", None, "Required value: type is required when seccompProfile is set"))
    elif sp.type not in kinds:
        errs.append(FieldError(f"{path}.type", sp.type, _unsupported(sp.type, kinds)))
    profile = sp.localhost_profile
    if sp.type == "Localhost":
        if not profile:
            errs.append(FieldError(f"{path}.localhostProfile", None,
                                   "Required value: must be set when seccomp type is Localhost"))
        else:
            if PurePosixPath(profile).is_absolute():
                errs.append(FieldError(f"{path}.localhostProfile", profile, "must be a relative path"))
            if ".." in profile.split("/"):
                errs.append(FieldError(f"{path}.localhostProfile", profile, "must not contain '..'"))
    elif profile is not None:
        errs.append(FieldError(f"{path}.localhostProfile", profile, "can only be set when seccomp type is Localhost"))
    return errs


def _container(path: str, c: Container, volumes: set[str], init: bool, pod: Pod) -> list[FieldError]:
    """validateContainerCommon, with the probe and hook rules of validateInitContainers and
    validateContainers."""
    errs: list[FieldError] = []
    if not c.name:
        errs.append(FieldError(f"{path}.name", None, "Required value"))
    elif not is_label(c.name):
        errs.append(FieldError(f"{path}.name", c.name, MSG_LABEL))
    if not c.image or not c.image.strip():
        errs.append(FieldError(f"{path}.image", None, "Required value"))
    if c.image_pull_policy not in (None, "Always", "IfNotPresent", "Never"):
        errs.append(FieldError(f"{path}.imagePullPolicy", c.image_pull_policy,
                               _unsupported(c.image_pull_policy, ("Always", "IfNotPresent", "Never"))))
    if c.restart_policy is not None:
        if not init:
            errs.append(FieldError(f"{path}.restartPolicy", c.restart_policy,
                                   "Forbidden: may not be set for non-init containers"))
        elif c.restart_policy != "Always":
            errs.append(FieldError(f"{path}.restartPolicy", c.restart_policy, _unsupported(c.restart_policy, ("Always",))))
    errs += _container_ports(path, c.ports, pod.spec.host_network)
    errs += _env(path, c.env)
    errs += _volume_mounts(path, c.volume_mounts, volumes)
    errs += _resources(f"{path}.resources", c.resources)
    errs += _probes_and_lifecycle(path, c, init)
    if c.security_context is not None:
        errs += _seccomp_profile(f"{path}.securityContext.seccompProfile", c.security_context.seccomp_profile)
    if c.termination_message_policy not in (None, "File", "FallbackToLogsOnError"):
        errs.append(FieldError(f"{path}.terminationMessagePolicy", c.termination_message_policy,
                               _unsupported(c.termination_message_policy, ("File", "FallbackToLogsOnError"))))
    return errs


def _container_ports(path: str, ports: list[ContainerPort], host_network: bool | None) -> list[FieldError]:
    """validateContainerPorts, and validateHostNetwork's hostPort rule."""
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, p in enumerate(ports):
        pp = f"{path}.ports[{i}]"
        if not 1 <= p.container_port <= 65535:
            errs.append(FieldError(f"{pp}.containerPort", p.container_port, "must be between 1 and 65535, inclusive"))
        if p.host_port is not None and not 0 <= p.host_port <= 65535:
            errs.append(FieldError(f"{pp}.hostPort", p.host_port, "must be between 1 and 65535, inclusive"))
        if p.protocol not in (None, "TCP", "UDP", "SCTP"):
            errs.append(FieldError(f"{pp}.protocol", p.protocol, _unsupported(p.protocol, ("SCTP", "TCP", "UDP"))))
        if p.name:
            if len(p.name) > 15 or not SVC_NAME.match(p.name) or not re.search("[a-z]", p.name):
                errs.append(FieldError(f"{pp}.name", p.name, "must be no more than 15 characters, contain only "
                                       "lowercase alphanumerics or '-', at least one letter"))
            elif p.name in names:
                errs.append(FieldError(f"{pp}.name", p.name, "Duplicate value"))
            names.add(p.name)
        if host_network and p.host_port not in (None, p.container_port):
            errs.append(FieldError(f"{pp}.hostPort", p.host_port, "must match `containerPort` when `hostNetwork` is true"))
    return errs


def _env(path: str, env: list[EnvVar]) -> list[FieldError]:
    """ValidateEnv: each name one a process can read, with a value or a valueFrom, not both."""
    errs: list[FieldError] = []
    for i, e in enumerate(env):
        if not e.name:
            errs.append(FieldError(f"{path}.env[{i}].name", None, "Required value"))
        elif not ENV_NAME.match(e.name):
            errs.append(FieldError(f"{path}.env[{i}].name", e.name, "a valid environment variable name must "
                                   "consist of alphabetic characters, digits, '_', '-', or '.', and must not start "
                                   "with a digit"))
        if e.value and e.value_from is not None:
            errs.append(FieldError(f"{path}.env[{i}].valueFrom", None,
                                   "Invalid value: may not be specified when `value` is not empty"))
    return errs


def _volume_mounts(path: str, mounts: list[VolumeMount], volumes: set[str]) -> list[FieldError]:
    """ValidateVolumeMounts: each names one of the pod's volumes at its own absolute path."""
    errs: list[FieldError] = []
    mount_paths: set[str] = set()
    for i, m in enumerate(mounts):
        mp = f"{path}.volumeMounts[{i}]"
        if m.name not in volumes:
            errs.append(FieldError(f"{mp}.name", m.name, "Not found"))
        if not m.mount_path:
            errs.append(FieldError(f"{mp}.mountPath", None, "Required value"))
        elif not m.mount_path.startswith("/"):
            errs.append(FieldError(f"{mp}.mountPath", m.mount_path, "must be an absolute path"))
        elif m.mount_path in mount_paths:
            errs.append(FieldError(f"{mp}.mountPath", m.mount_path, "must be unique"))
        mount_paths.add(m.mount_path)
        if m.sub_path and (PurePosixPath(m.sub_path).is_absolute() or ".." in PurePosixPath(m.sub_path).parts):
            errs.append(FieldError(f"{mp}.subPath", m.sub_path, "must be a relative path without '..'"))
    return errs


def _probes_and_lifecycle(path: str, c: Container, init: bool) -> list[FieldError]:
    """An init container that is not a sidecar takes no probes or hooks (validateInitContainers);
    any other container's are checked as validateContainers checks them."""
    errs: list[FieldError] = []
    if init and not is_restartable_init(c):
        for name in ("liveness_probe", "readiness_probe", "startup_probe"):
            if getattr(c, name) is not None:
                camel = name.split("_")[0] + "Probe"
                errs.append(FieldError(f"{path}.{camel}", None, "Forbidden: may not be set for init containers "
                                       "without restartPolicy=Always"))
        if c.lifecycle is not None:
            errs.append(FieldError(f"{path}.lifecycle", None, "Forbidden: may not be set for init containers "
                                   "without restartPolicy=Always"))
        return errs
    errs += _probe(f"{path}.livenessProbe", c.liveness_probe, c, True)
    errs += _probe(f"{path}.readinessProbe", c.readiness_probe, c, False)
    errs += _probe(f"{path}.startupProbe", c.startup_probe, c, True)
    if c.lifecycle is not None:
        for hook, h in (("postStart", c.lifecycle.post_start), ("preStop", c.lifecycle.pre_stop)):
            if h is not None and _handler_count(h) != 1:
                errs.append(FieldError(f"{path}.lifecycle.{hook}", None,
                                       "Required value: must specify exactly one handler type"))
    return errs


def _tolerations(path: str, tolerations: list[Toleration]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, t in enumerate(tolerations):
        tp = f"{path}[{i}]"
        if t.operator not in (None, "Equal", "Exists"):
            errs.append(FieldError(f"{tp}.operator", t.operator, _unsupported(t.operator, ("Equal", "Exists"))))
        if t.operator == "Exists" and t.value:
            errs.append(FieldError(f"{tp}.operator", t.value, "value must be empty when `operator` is 'Exists'"))
        if t.effect not in (None, "", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            errs.append(FieldError(f"{tp}.effect", t.effect,
                                   _unsupported(t.effect, ("NoSchedule", "PreferNoSchedule", "NoExecute"))))
    return errs


# EphemeralContainerCommon's fields outside Kubernetes' allow list (validateFieldAllowList): an
# ephemeral container has no ports, probes, hooks or resources, and is never restarted.
_EPHEMERAL_FORBIDDEN = (("ports", "ports"), ("liveness_probe", "livenessProbe"),
                        ("readiness_probe", "readinessProbe"), ("startup_probe", "startupProbe"),
                        ("lifecycle", "lifecycle"), ("resources", "resources"),
                        ("resize_policy", "resizePolicy"), ("restart_policy", "restartPolicy"))
_NOT_FOR_EPHEMERAL = "Forbidden: cannot be set for an Ephemeral Container"


def _is_set(value: object) -> bool:
    return bool(to_dict(value)) if isinstance(value, BaseModel) else bool(value)


def validate_ephemeral_containers(pod: Pod) -> list[FieldError]:
    """validateEphemeralContainers: each is a valid container without the forbidden fields, its
    name unique among all the pod's containers, its target one of the pod's (init) containers."""
    errs: list[FieldError] = []
    volumes = {v.name for v in pod.spec.volumes}
    others = {c.name for c in [*pod.spec.init_containers, *pod.spec.containers]}
    seen = set(others)
    for i, ec in enumerate(pod.spec.ephemeral_containers):
        path = f"spec.ephemeralContainers[{i}]"
        # Set means not the zero value, as Go compares: an empty `resources: {}` is allowed.
        forbidden = [(attr, name) for attr, name in _EPHEMERAL_FORBIDDEN if _is_set(getattr(ec, attr))]
        errs += [FieldError(f"{path}.{name}", None, _NOT_FOR_EPHEMERAL) for _, name in forbidden]
        errs += [FieldError(f"{path}.volumeMounts[{j}].subPath", None, _NOT_FOR_EPHEMERAL)
                 for j, m in enumerate(ec.volume_mounts) if m.sub_path]
        # The rest is checked as any container's, the forbidden fields already reported.
        common = ec.model_copy(update={attr: type(ec).model_fields[attr].get_default(call_default_factory=True)
                                       for attr, _ in forbidden})
        errs += _container(path, common, volumes, False, pod)
        if ec.name and ec.name in seen:
            errs.append(FieldError(f"{path}.name", ec.name, "Duplicate value"))
        seen.add(ec.name)
        if ec.target_container_name and ec.target_container_name not in others:
            errs.append(FieldError(f"{path}.targetContainerName", ec.target_container_name, "Not found"))
    return errs


def validate_ephemeral_update(new: Pod, old: Pod) -> list[FieldError]:
    """ValidatePodEphemeralContainersUpdate's part 2: entries may be added, never removed or changed."""
    errs: list[FieldError] = []
    by_name = {ec.name: ec for ec in new.spec.ephemeral_containers}
    for ec in old.spec.ephemeral_containers:
        if ec.name not in by_name:
            errs.append(FieldError("spec.ephemeralContainers", None,
                                   f'Forbidden: existing ephemeral containers "{ec.name}" may not be removed'))
        elif by_name[ec.name] != ec:
            errs.append(FieldError("spec.ephemeralContainers", None,
                                   f'Forbidden: existing ephemeral containers "{ec.name}" may not be changed'))
    return errs


def validate_pod(pod: Pod) -> list[FieldError]:
    """ValidatePodCreate: the metadata, then ValidatePodSpec's checks in its order."""
    errs = validate_metadata(pod.metadata)
    spec = pod.spec
    volumes, volume_errs = _volumes(spec.volumes)
    errs += volume_errs
    errs += _containers(pod, volumes)
    if spec.restart_policy not in (None, "Always", "OnFailure", "Never"):
        errs.append(FieldError("spec.restartPolicy", spec.restart_policy,
                               _unsupported(spec.restart_policy, ("Always", "OnFailure", "Never"))))
    errs += _dns(spec)
    if spec.termination_grace_period_seconds is not None and spec.termination_grace_period_seconds < 0:
        errs.append(FieldError("spec.terminationGracePeriodSeconds", spec.termination_grace_period_seconds,
                               "must be greater than or equal to 0"))
    if spec.active_deadline_seconds is not None and spec.active_deadline_seconds <= 0:
        errs.append(FieldError("spec.activeDeadlineSeconds", spec.active_deadline_seconds,
                               "must be between 1 and 2147483647, inclusive"))
    for name, value in (("hostname", spec.hostname), ("subdomain", spec.subdomain)):
        if value and not is_label(value):
            errs.append(FieldError(f"spec.{name}", value, MSG_LABEL))
    if spec.share_process_namespace and spec.host_pid:
        errs.append(FieldError("spec.shareProcessNamespace", True,
                               "ShareProcessNamespace and HostPID cannot both be enabled"))
    errs += _tolerations("spec.tolerations", spec.tolerations)
    errs += _node_affinity(spec.affinity.node_affinity if spec.affinity else None)
    errs += _pod_security_context(spec.security_context)
    for k, quantity in spec.overhead.items():
        errs += _quantity(f"spec.overhead[{k}]", quantity)
    return errs + validate_ephemeral_containers(pod)


def _volumes(volumes: list[Volume]) -> tuple[set[str], list[FieldError]]:
    """validateVolumes: the volumes' names, and what is wrong with them."""
    errs: list[FieldError] = []
    names: set[str] = set()
    for i, v in enumerate(volumes):
        vp = f"spec.volumes[{i}]"
        if not v.name:
            errs.append(FieldError(f"{vp}.name", None, "Required value"))
        elif not is_label(v.name):
            errs.append(FieldError(f"{vp}.name", v.name, MSG_LABEL))
        elif v.name in names:
            errs.append(FieldError(f"{vp}.name", v.name, "Duplicate value"))
        names.add(v.name)
        errs += _volume_source(vp, v)
    return names, errs


def _volume_source(vp: str, v: Volume) -> list[FieldError]:
    """validateVolumeSource: one type, one podbay supports, with valid fields."""
    errs: list[FieldError] = []
    sources = v.sources()
    if len(sources) > 1:
        errs.append(FieldError(vp, None, "Forbidden: may not specify more than 1 volume type"))
    for s in sources:
        if s in UNSUPPORTED_VOLUME_SOURCES:
            errs.append(FieldError(f"{vp}.{s}", None, f"Unsupported value: podbay runs pods on one machine "
                                   f"without a storage provider; {s} volumes are not supported (use emptyDir "
                                   f"or hostPath)"))
    if v.host_path is not None:
        if not v.host_path.path:
            errs.append(FieldError(f"{vp}.hostPath.path", None, "Required value"))
        kinds = ("", "DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket", "CharDevice",
                 "BlockDevice")
        if v.host_path.type not in (None, *kinds):
            errs.append(FieldError(f"{vp}.hostPath.type", v.host_path.type, _unsupported(v.host_path.type, kinds)))
    if v.empty_dir is not None:
        if v.empty_dir.medium not in (None, "", "Memory", "HugePages"):
            errs.append(FieldError(f"{vp}.emptyDir.medium", v.empty_dir.medium,
                                   _unsupported(v.empty_dir.medium, ("", "Memory"))))
        if v.empty_dir.size_limit is not None:
            errs += _quantity(f"{vp}.emptyDir.sizeLimit", v.empty_dir.size_limit)
    return errs


def _containers(pod: Pod, volumes: set[str]) -> list[FieldError]:
    """validateInitContainers and validateContainers: each valid, every name unique in the pod."""
    errs: list[FieldError] = []
    if not pod.spec.containers:
        errs.append(FieldError("spec.containers", None, "Required value"))
    seen: set[str] = set()
    for kind, containers, init in (("initContainers", pod.spec.init_containers, True),
                                   ("containers", pod.spec.containers, False)):
        for i, c in enumerate(containers):
            path = f"spec.{kind}[{i}]"
            errs += _container(path, c, volumes, init, pod)
            if c.name and c.name in seen:
                errs.append(FieldError(f"{path}.name", c.name, "Duplicate value"))
            seen.add(c.name)
    return errs


def _dns(spec: PodSpec) -> list[FieldError]:
    """validateDNSPolicy and validatePodDNSConfig."""
    errs: list[FieldError] = []
    if spec.dns_policy not in (None, "ClusterFirstWithHostNet", "ClusterFirst", "Default", "None"):
        errs.append(FieldError("spec.dnsPolicy", spec.dns_policy, _unsupported(
            spec.dns_policy, ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"))))
    if spec.dns_policy == "None" and (spec.dns_config is None or not spec.dns_config.nameservers):
        errs.append(FieldError("spec.dnsConfig.nameservers", None,
                               "Required value: must provide at least one DNS nameserver when DNSPolicy is None"))
    if spec.dns_config is not None and len(spec.dns_config.nameservers) > 3:
        errs.append(FieldError("spec.dnsConfig.nameservers", None, "Too many: must not have more than 3 nameservers"))
    return errs


def _node_affinity(affinity: NodeAffinity | None) -> list[FieldError]:
    """validateNodeAffinity's required node selector terms (ValidateNodeSelectorRequirement)."""
    errs: list[FieldError] = []
    required = affinity.required_during_scheduling_ignored_during_execution if affinity else None
    if required is None:
        return errs
    for i, term in enumerate(required.node_selector_terms):
        for j, r in enumerate(term.match_expressions):
            rp = (f"spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
                  f".nodeSelectorTerms[{i}].matchExpressions[{j}]")
            ops = ("In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt")
            if r.operator not in ops:
                errs.append(FieldError(f"{rp}.operator", r.operator, _unsupported(r.operator, ops)))
            elif r.operator in ("In", "NotIn") and not r.values:
                errs.append(FieldError(f"{rp}.values", None, "Required value: must be specified when `operator` is 'In' or 'NotIn'"))
            elif r.operator in ("Exists", "DoesNotExist") and r.values:
                errs.append(FieldError(f"{rp}.values", None, "Forbidden: may not be specified when `operator` is 'Exists' or 'DoesNotExist'"))
    return errs


def _pod_security_context(sc: PodSecurityContext | None) -> list[FieldError]:
    """validatePodSpecSecurityContext: its seccomp profile and sysctls' names."""
    if sc is None:
        return []
    errs = _seccomp_profile("spec.securityContext.seccompProfile", sc.seccomp_profile)
    for i, sysctl in enumerate(sc.sysctls):
        if not SYSCTL.match(sysctl.name):
            errs.append(FieldError(f"spec.securityContext.sysctls[{i}].name", sysctl.name,
                                   "must have at most 253 characters and match regex " + SYSCTL.pattern))
    return errs


# Fields of a pod spec that may change after creation (ValidatePodUpdate).
_MUTABLE = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def validate_pod_update(new: Pod, old: Pod) -> list[FieldError]:
    errs = validate_pod(new)
    a, b = to_dict(new.spec), to_dict(old.spec)
    for key in ("containers", "initContainers"):
        for ca, cb in zip(a.get(key, []), b.get(key, [])):
            ca.pop("image", None)
            cb.pop("image", None)
    for key in _MUTABLE:
        a.pop(key, None)
        b.pop(key, None)
    if not b.get("nodeName"):
        a.pop("nodeName", None)
    if a != b:
        errs.append(FieldError("spec", None, "Forbidden: pod updates may not change fields other than "
                               "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                               "`spec.activeDeadlineSeconds`, `spec.tolerations` (only additions to existing "
                               "tolerations), `spec.terminationGracePeriodSeconds` (allow it to be set to 1 if "
                               "it was previously negative)"))
    return errs


def validate_node(node: Node) -> list[FieldError]:
    return validate_metadata(node.metadata, namespaced=False)


def validate_namespace(ns: Namespace) -> list[FieldError]:
    errs = validate_metadata(ns.metadata, namespaced=False)
    if ns.metadata.name and not is_label(ns.metadata.name):
        errs.append(FieldError("metadata.name", ns.metadata.name, MSG_LABEL))
    return errs


LEASE_STRATEGIES = ("OldestEmulationVersion",)


def validate_lease(lease: Lease) -> list[FieldError]:
    """coordination's ValidateLease: the metadata, then ValidateLeaseSpec."""
    errs = validate_metadata(lease.metadata)
    spec = lease.spec
    if spec.lease_duration_seconds is not None and spec.lease_duration_seconds <= 0:
        errs.append(FieldError("spec.leaseDurationSeconds", spec.lease_duration_seconds,
                               "Invalid value: must be greater than 0"))
    if spec.lease_transitions is not None and spec.lease_transitions < 0:
        errs.append(FieldError("spec.leaseTransitions", spec.lease_transitions,
                               "Invalid value: must be greater than or equal to 0"))
    if spec.strategy and spec.strategy not in LEASE_STRATEGIES:
        errs.append(FieldError("spec.strategy", spec.strategy,
                               f'Unsupported value: supported values: "{LEASE_STRATEGIES[0]}"'))
    if spec.preferred_holder and not spec.strategy:
        errs.append(FieldError("spec.preferredHolder", spec.preferred_holder,
                               "Forbidden: may only be specified if `strategy` is defined"))
    return errs


def validate_runtime_class(rc: RuntimeClass) -> list[FieldError]:
    """node's ValidateRuntimeClass: a DNS-label handler, a valid overhead and scheduling."""
    errs = validate_metadata(rc.metadata, namespaced=False)
    if not is_label(rc.handler):
        errs.append(FieldError("handler", rc.handler, MSG_LABEL))
    if rc.overhead is not None:
        for k, v in rc.overhead.pod_fixed.items():
            errs += _quantity(f"overhead.podFixed[{k}]", v)
    if rc.scheduling is not None:
        errs += _labels("scheduling.nodeSelector", rc.scheduling.node_selector)
        errs += _tolerations("scheduling.tolerations", rc.scheduling.tolerations)
        seen: set[tuple[str | None, ...]] = set()
        for i, t in enumerate(rc.scheduling.tolerations):
            key = (t.key, t.operator, t.value, t.effect)  # the API's list keys
            if key in seen:
                errs.append(FieldError(f"scheduling.tolerations[{i}]", to_dict(t), "Duplicate value"))
            seen.add(key)
    return errs
