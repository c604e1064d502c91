"""Services and their endpoints: core/v1 Service and Endpoints, discovery.k8s.io/v1 EndpointSlice,
mirroring Kubernetes' Go types; Service defaulting and validation (pkg/apis/core/validation's
ValidateService) as pure functions over the models."""
from __future__ import annotations

import ipaddress
import re
from typing import Any, Literal

from pydantic import Field

from podbay.api.base import IntOrString, Model
from podbay.api.errors import FieldError
from podbay.api.models import ObjectMeta, ObjectReference
from podbay.api.validation import validate_metadata

# What podbay's proxy implements; LoadBalancer and ExternalName need parts it has not (a load
# balancer, CNAME answers), so they are refused rather than stored and silently ignored.
SERVICE_TYPES = ("ClusterIP", "NodePort")
PROTOCOLS = ("TCP", "UDP", "SCTP")
HEADLESS = "None"
SESSION_AFFINITIES = ("ClientIP", "None")
TRAFFIC_POLICIES = ("Cluster", "Local")
DEFAULT_AFFINITY_SECONDS = 10800  # v1.DefaultClientIPServiceAffinitySeconds: 3 hours
MAX_AFFINITY_SECONDS = 86400  # core.MaxClientIPServiceAffinitySeconds: a day
SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_IANA_SVC_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


class ServicePort(Model):
    name: str | None = None
    protocol: str | None = None
    app_protocol: str | None = None
    port: int = 0
    target_port: IntOrString | None = None
    node_port: int | None = None


class ClientIPConfig(Model):
    timeout_seconds: int | None = None


class SessionAffinityConfig(Model):
    client_ip: ClientIPConfig | None = Field(default=None, alias="clientIP")


class ServiceSpec(Model):
    ports: list[ServicePort] = Field(default_factory=list)
    selector: dict[str, str] = Field(default_factory=dict)
    cluster_ip: str | None = Field(default=None, alias="clusterIP")
    cluster_ips: list[str] = Field(default_factory=list, alias="clusterIPs")
    type: str | None = None
    external_ips: list[str] = Field(default_factory=list, alias="externalIPs")
    session_affinity: str | None = None
    load_balancer_ip: str | None = Field(default=None, alias="loadBalancerIP")
    load_balancer_source_ranges: list[str] = Field(default_factory=list)
    external_name: str | None = None
    external_traffic_policy: str | None = None
    health_check_node_port: int | None = None
    publish_not_ready_addresses: bool | None = None
    session_affinity_config: SessionAffinityConfig | None = None
    ip_families: list[str] = Field(default_factory=list)
    ip_family_policy: str | None = None
    allocate_load_balancer_node_ports: bool | None = None
    load_balancer_class: str | None = None
    internal_traffic_policy: str | None = None


class ServiceStatus(Model):
    load_balancer: dict[str, Any] = Field(default_factory=dict)
    conditions: list[dict[str, Any]] = Field(default_factory=list)


class Service(Model):
    """Service is a named abstraction of software service (for example, mysql) consisting of local
    port (for example 3306) that the proxy listens on, and the selector that determines which pods
    will answer requests sent through the proxy."""
    api_version: Literal["v1"] = "v1"
    kind: Literal["Service"] = "Service"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: ServiceSpec = Field(default_factory=ServiceSpec)
    status: ServiceStatus = Field(default_factory=ServiceStatus)


class EndpointConditions(Model):
    ready: bool | None = None
    serving: bool | None = None
    terminating: bool | None = None


class Endpoint(Model):
    addresses: list[str] = Field(default_factory=list)
    conditions: EndpointConditions = Field(default_factory=EndpointConditions)
    hostname: str | None = None
    target_ref: ObjectReference | None = None
    node_name: str | None = None
    zone: str | None = None


class EndpointPort(Model):
    name: str | None = None
    protocol: str | None = None
    port: int | None = None
    app_protocol: str | None = None


class EndpointSlice(Model):
    """EndpointSlice represents a subset of the endpoints that implement a service."""
    api_version: Literal["discovery.k8s.io/v1"] = "discovery.k8s.io/v1"
    kind: Literal["EndpointSlice"] = "EndpointSlice"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    address_type: str = ""
    endpoints: list[Endpoint] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)


class EndpointAddress(Model):
    ip: str = ""
    hostname: str | None = None
    node_name: str | None = None
    target_ref: ObjectReference | None = None


class EndpointSubset(Model):
    addresses: list[EndpointAddress] = Field(default_factory=list)
    not_ready_addresses: list[EndpointAddress] = Field(default_factory=list)
    ports: list[EndpointPort] = Field(default_factory=list)


class Endpoints(Model):
    """Endpoints is a collection of endpoints that implement the actual service (the legacy form of
    EndpointSlices, kept for clients that read it)."""
    api_version: Literal["v1"] = "v1"
    kind: Literal["Endpoints"] = "Endpoints"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    subsets: list[EndpointSubset] = Field(default_factory=list)


def is_headless(svc: Service) -> bool:
    return svc.spec.cluster_ip == HEADLESS


def externally_accessible(svc: Service) -> bool:
    """apiservice.ExternallyAccessible: reached at node ports or external IPs, where
    externalTrafficPolicy applies."""
    return svc.spec.type == "NodePort" or (svc.spec.type == "ClusterIP" and bool(svc.spec.external_ips))


def apply_service_defaults(svc: Service) -> None:
    """SetDefaults_Service and the strategy's defaulting of what the client left out."""
    spec = svc.spec
    spec.type = spec.type or "ClusterIP"
    spec.session_affinity = spec.session_affinity or "None"
    if spec.session_affinity == "ClientIP":
        config = spec.session_affinity_config = spec.session_affinity_config or SessionAffinityConfig()
        config.client_ip = config.client_ip or ClientIPConfig()
        if config.client_ip.timeout_seconds is None:
            config.client_ip.timeout_seconds = DEFAULT_AFFINITY_SECONDS
    spec.internal_traffic_policy = spec.internal_traffic_policy or "Cluster"
    if externally_accessible(svc):
        spec.external_traffic_policy = spec.external_traffic_policy or "Cluster"
    for port in spec.ports:
        port.protocol = port.protocol or "TCP"
        if port.target_port is None or port.target_port in (0, ""):
            port.target_port = port.port
    if spec.cluster_ip and not spec.cluster_ips:
        spec.cluster_ips = [spec.cluster_ip]
    elif spec.cluster_ips and not spec.cluster_ip:
        spec.cluster_ip = spec.cluster_ips[0]
    if spec.cluster_ip and spec.cluster_ip != HEADLESS:
        spec.ip_families = spec.ip_families or ["IPv4"]
        spec.ip_family_policy = spec.ip_family_policy or "SingleStack"


def _target_port_errors(path: str, target: IntOrString | None) -> list[FieldError]:
    if isinstance(target, int):
        if not 1 <= target <= 65535:
            return [FieldError(path, target, "Invalid value: must be between 1 and 65535, inclusive")]
        return []
    if isinstance(target, str):
        if len(target) > 15 or not _IANA_SVC_NAME.match(target) or "--" in target \
                or not any(c.isalpha() for c in target):
            return [FieldError(path, target, "Invalid value: must contain only lowercase alphanumeric characters "
                                             "or '-', contain at least one letter, not start or end with '-', "
                                             "and be at most 15 characters (an IANA_SVC_NAME)")]
    return []


def validate_service(svc: Service) -> list[FieldError]:
    """ValidateService over a defaulted Service, for the fields podbay acts on."""
    errs = validate_metadata(svc.metadata)
    name = svc.metadata.name or ""
    if name and not _DNS_1035.match(name):
        errs.append(FieldError("metadata.name", name, "Invalid value: a DNS-1035 label must consist of lower case "
                                                      "alphanumeric characters or '-', start with an alphabetic "
                                                      "character, and end with an alphanumeric character"))
    spec = svc.spec
    if spec.type not in SERVICE_TYPES:
        errs.append(FieldError("spec.type", spec.type, "Unsupported value: supported values: "
                               + ", ".join(f'"{t}"' for t in SERVICE_TYPES)))
    errs += _affinity_errors(spec)
    errs += _traffic_policy_errors(spec, externally_accessible(svc))
    errs += _cluster_ip_errors(spec)
    errs += _port_errors(spec)
    errs += _selector_errors(spec.selector)
    return errs


def _cluster_ip_errors(spec: ServiceSpec) -> list[FieldError]:
    """validateServiceClusterIPsRelatedFields for one IPv4 family; the port rule a headless
    Service is exempt from."""
    errs: list[FieldError] = []
    headless = spec.cluster_ip == HEADLESS
    if not spec.ports and not headless:
        errs.append(FieldError("spec.ports", None, "Required value"))
    if headless and spec.type == "NodePort":
        errs.append(FieldError("spec.clusterIPs[0]", HEADLESS,
                               "Invalid value: may not be set to 'None' for NodePort services"))
    for i, ip in enumerate(spec.cluster_ips):
        if ip == HEADLESS and i == 0:
            continue
        try:
            ipaddress.IPv4Address(ip)
        except ValueError:
            errs.append(FieldError(f"spec.clusterIPs[{i}]", ip, "Invalid value: must be a valid IP address, "
                                   "(e.g. 10.9.8.7 or 2001:db8::ffff)"))
    if len(spec.cluster_ips) > 1:
        errs.append(FieldError("spec.clusterIPs", spec.cluster_ips,
                               "Invalid value: this cluster serves IPv4 only (one cluster IP)"))
    if spec.cluster_ips and spec.cluster_ip != spec.cluster_ips[0]:
        errs.append(FieldError("spec.clusterIPs", spec.cluster_ips,
                               "Invalid value: element [0] must match clusterIP"))
    return errs


def _port_errors(spec: ServiceSpec) -> list[FieldError]:
    """validateServicePort for each port; names, and port/protocol pairs, unique."""
    errs: list[FieldError] = []
    names: set[str] = set()
    pairs: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        path = f"spec.ports[{i}]"
        if len(spec.ports) > 1 and not port.name:
            errs.append(FieldError(f"{path}.name", "", "Required value"))
        elif port.name:
            if not _DNS_LABEL.match(port.name) or len(port.name) > 63:
                errs.append(FieldError(f"{path}.name", port.name, "Invalid value: a lowercase RFC 1123 label must "
                                       "consist of lower case alphanumeric characters or '-', and must start and "
                                       "end with an alphanumeric character"))
            elif port.name in names:
                errs.append(FieldError(f"{path}.name", port.name, "Duplicate value"))
            names.add(port.name)
        if not 1 <= port.port <= 65535:
            errs.append(FieldError(f"{path}.port", port.port, "Invalid value: must be between 1 and 65535, inclusive"))
        if port.protocol not in PROTOCOLS:
            errs.append(FieldError(f"{path}.protocol", port.protocol,
                                   'Unsupported value: supported values: "SCTP", "TCP", "UDP"'))
        elif (port.port, port.protocol) in pairs:
            errs.append(FieldError(f"{path}", f"{port.port}/{port.protocol}", "Duplicate value"))
        pairs.add((port.port, port.protocol or ""))
        errs += _target_port_errors(f"{path}.targetPort", port.target_port)
        if port.node_port is not None and port.node_port != 0:
            if spec.type == "ClusterIP":
                errs.append(FieldError(f"{path}.nodePort", port.node_port,
                                       "Forbidden: may not be used when `type` is 'ClusterIP'"))
            elif not 1 <= port.node_port <= 65535:
                errs.append(FieldError(f"{path}.nodePort", port.node_port,
                                       "Invalid value: must be between 1 and 65535, inclusive"))
    return errs


def _selector_errors(selector: dict[str, str]) -> list[FieldError]:
    """ValidateLabels over the selector: keys non-empty, values label values."""
    errs: list[FieldError] = []
    for key, value in selector.items():
        if not _label_value_ok(value):
            errs.append(FieldError("spec.selector", value, "Invalid value: a valid label must be an empty string "
                                   "or consist of alphanumeric characters, '-', '_' or '.', and must start and end "
                                   "with an alphanumeric character"))
        if not key:
            errs.append(FieldError("spec.selector", key, "Invalid value: name part must be non-empty"))
    return errs


def _affinity_errors(spec: ServiceSpec) -> list[FieldError]:
    """ValidateService's sessionAffinity and validateClientIPAffinityConfig."""
    if spec.session_affinity not in SESSION_AFFINITIES:
        return [FieldError("spec.sessionAffinity", spec.session_affinity,
                           'Unsupported value: supported values: "ClientIP", "None"')]
    config = spec.session_affinity_config
    if spec.session_affinity == "None":
        if config is not None:
            return [FieldError("spec.sessionAffinityConfig", None,
                               "Forbidden: must not be set when session affinity is None")]
        return []
    timeout = config.client_ip.timeout_seconds if config and config.client_ip else None
    if timeout is None:
        return [FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds", None,
                           "Required value: when session affinity type is ClientIP")]
    if not 0 < timeout <= MAX_AFFINITY_SECONDS:
        return [FieldError("spec.sessionAffinityConfig.clientIP.timeoutSeconds", timeout,
                           f"Invalid value: must be greater than 0 and less than {MAX_AFFINITY_SECONDS}")]
    return []


def _traffic_policy_errors(spec: ServiceSpec, external: bool) -> list[FieldError]:
    """validateServiceExternalTrafficPolicy and validateServiceInternalTrafficFieldsValue; a
    healthCheckNodePort needs a LoadBalancer, which this cluster has not."""
    errs: list[FieldError] = []
    supported = 'Unsupported value: supported values: "Cluster", "Local"'
    if not external:
        if spec.external_traffic_policy:
            errs.append(FieldError("spec.externalTrafficPolicy", spec.external_traffic_policy,
                                   "Invalid value: may only be set for externally-accessible services"))
    elif spec.external_traffic_policy not in TRAFFIC_POLICIES:
        errs.append(FieldError("spec.externalTrafficPolicy", spec.external_traffic_policy, supported))
    if spec.health_check_node_port:
        errs.append(FieldError("spec.healthCheckNodePort", spec.health_check_node_port,
                               "Invalid value: may only be set when `type` is 'LoadBalancer' and "
                               "`externalTrafficPolicy` is 'Local'"))
    if spec.internal_traffic_policy not in TRAFFIC_POLICIES:
        errs.append(FieldError("spec.internalTrafficPolicy", spec.internal_traffic_policy, supported))
    return errs


_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def validate_service_update(new: Service, old: Service) -> list[FieldError]:
    """ValidateServiceUpdate's immutable cluster IPs (a headless Service stays headless)."""
    if old.spec.cluster_ips and new.spec.cluster_ips != old.spec.cluster_ips:
        return [FieldError("spec.clusterIPs[0]", new.spec.cluster_ips[0] if new.spec.cluster_ips else "",
                           "Invalid value: may not change once set")]
    return []


def keep_allocated(new: dict[str, Any], old: dict[str, Any]) -> None:
    """The registry's patchAllocatedValues: an update that leaves out the cluster IPs or a
    port's nodePort keeps what was allocated (a `kubectl apply` of the original file)."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec", {})
    if not spec.get("clusterIP") and not spec.get("clusterIPs"):
        for field in ("clusterIP", "clusterIPs", "ipFamilies", "ipFamilyPolicy"):
            if field in old_spec:
                spec[field] = old_spec[field]
    if spec.get("type") == "NodePort":
        by_key = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort") for p in old_spec.get("ports", [])}
        for port in spec.get("ports", []) or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                allocated = by_key.get((port.get("port"), port.get("protocol", "TCP")))
                if allocated:
                    port["nodePort"] = allocated


def drop_type_dependent_fields(new: dict[str, Any], old: dict[str, Any]) -> None:
    """The strategy's dropTypeDependentFields: a Service changed to a type without node ports
    loses the nodePorts and externalTrafficPolicy it kept unchanged from the old one (a `kubectl
    edit` of type alone), rather than being refused for them."""
    spec, old_spec = new.get("spec"), old.get("spec", {})
    if not isinstance(spec, dict) or old_spec.get("type") != "NodePort" or spec.get("type") in (None, "NodePort"):
        return
    if spec.get("externalTrafficPolicy") == old_spec.get("externalTrafficPolicy") and not spec.get("externalIPs"):
        spec.pop("externalTrafficPolicy", None)
    old_ports = [p.get("nodePort") for p in old_spec.get("ports", []) if isinstance(p, dict)]
    ports = [p for p in spec.get("ports", []) or [] if isinstance(p, dict)]
    if [p.get("nodePort") for p in ports] == old_ports:
        for port in ports:
            port.pop("nodePort", None)
