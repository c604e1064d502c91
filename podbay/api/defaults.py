"""Defaulting, as the API server applies it on create (pkg/apis/core/v1/defaults.go)."""
from __future__ import annotations

from podbay.api.models import Container, EmptyDirVolumeSource, Pod, PodSecurityContext, Probe

DEFAULT_SCHEDULER = "default-scheduler"
DEFAULT_GRACE_SECONDS = 30


def default_pod(pod: Pod) -> Pod:
    """Fills in what Kubernetes fills in; returns a new Pod, the input is untouched."""
    pod = pod.model_copy(deep=True)
    apply_pod_defaults(pod)
    return pod


def apply_pod_defaults(pod: Pod) -> None:
    """default_pod in place, for a Pod nobody else holds (the API server's freshly decoded one)."""
    pod.metadata.namespace = pod.metadata.namespace or "default"
    spec = pod.spec
    spec.restart_policy = spec.restart_policy or "Always"
    if spec.termination_grace_period_seconds is None:
        spec.termination_grace_period_seconds = DEFAULT_GRACE_SECONDS
    spec.dns_policy = spec.dns_policy or "ClusterFirst"
    spec.scheduler_name = spec.scheduler_name or DEFAULT_SCHEDULER
    if spec.enable_service_links is None:
        spec.enable_service_links = True
    if spec.security_context is None:
        spec.security_context = PodSecurityContext()
    if spec.host_network:
        for c in spec.init_containers + spec.containers:
            for port in c.ports:
                if port.host_port is None:
                    port.host_port = port.container_port
    for c in spec.init_containers + spec.containers:
        _default_container(c)
    for v in spec.volumes:
        if v.empty_dir is None and v.host_path is None and not v.sources():
            v.empty_dir = EmptyDirVolumeSource()
        if v.host_path is not None and v.host_path.type is None:
            v.host_path.type = ""
        if v.config_map is not None and v.config_map.default_mode is None:
            v.config_map.default_mode = 0o644
        if v.secret is not None and v.secret.default_mode is None:
            v.secret.default_mode = 0o644
        if v.downward_api is not None and v.downward_api.default_mode is None:
            v.downward_api.default_mode = 0o644
    _default_requests_from_limits(spec.init_containers + spec.containers)


def _default_container(c: Container) -> None:
    if c.image_pull_policy is None:
        tag = (c.image or "").rsplit("/", 1)[-1]
        c.image_pull_policy = "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent"
        if "@" in (c.image or ""):
            c.image_pull_policy = "IfNotPresent"
    c.termination_message_path = c.termination_message_path or "/dev/termination-log"
    c.termination_message_policy = c.termination_message_policy or "File"
    for port in c.ports:
        port.protocol = port.protocol or "TCP"
    for env in c.env:
        if env.value_from and env.value_from.field_ref and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for probe in (c.liveness_probe, c.readiness_probe, c.startup_probe):
        if probe is not None:
            _default_probe(probe)
    for handler in (c.lifecycle.post_start, c.lifecycle.pre_stop) if c.lifecycle else ():
        if handler is not None and handler.http_get is not None:
            handler.http_get.path = handler.http_get.path or "/"
            handler.http_get.scheme = handler.http_get.scheme or "HTTP"


def _default_probe(probe: Probe) -> None:
    probe.timeout_seconds = probe.timeout_seconds or 1
    probe.period_seconds = probe.period_seconds or 10
    probe.success_threshold = probe.success_threshold or 1
    probe.failure_threshold = probe.failure_threshold or 3
    if probe.initial_delay_seconds is None:
        probe.initial_delay_seconds = 0
    if probe.http_get is not None:
        probe.http_get.path = probe.http_get.path or "/"
        probe.http_get.scheme = probe.http_get.scheme or "HTTP"


def _default_requests_from_limits(containers: list[Container]) -> None:
    # A limit without a request means request == limit (Kubernetes' defaulting).
    for c in containers:
        if c.resources is None:
            continue
        for name, value in c.resources.limits.items():
            c.resources.requests.setdefault(name, value)
