"""networking.k8s.io/v1 Ingress as a stored object, with the validation of its required fields
(pkg/apis/networking/validation).

Nothing routes an Ingress in podbay: as on a cluster without an ingress controller, it is
stored and its status.loadBalancer stays empty (see docs/support.md)."""
from __future__ import annotations

from typing import Literal

from pydantic import Field

from podbay.api.base import Model
from podbay.api.errors import FieldError
from podbay.api.models import ObjectMeta
from podbay.api.storage import TypedLocalObjectReference
from podbay.api.validation import SVC_NAME, is_subdomain, validate_metadata

PATH_TYPES = ("Exact", "ImplementationSpecific", "Prefix")


class ServiceBackendPort(Model):
    name: str | None = None
    number: int | None = None


class IngressServiceBackend(Model):
    name: str = ""
    port: ServiceBackendPort | None = None


class IngressBackend(Model):
    service: IngressServiceBackend | None = None
    resource: TypedLocalObjectReference | None = None


class HTTPIngressPath(Model):
    path: str | None = None
    path_type: str | None = None
    backend: IngressBackend = Field(default_factory=IngressBackend)


class HTTPIngressRuleValue(Model):
    paths: list[HTTPIngressPath] = Field(default_factory=list)


class IngressRule(Model):
    host: str | None = None
    http: HTTPIngressRuleValue | None = None


class IngressTLS(Model):
    hosts: list[str] = Field(default_factory=list)
    secret_name: str | None = None


class IngressSpec(Model):
    ingress_class_name: str | None = None
    default_backend: IngressBackend | None = None
    tls: list[IngressTLS] = Field(default_factory=list)
    rules: list[IngressRule] = Field(default_factory=list)


class IngressPortStatus(Model):
    port: int = 0
    protocol: str = ""
    error: str | None = None


class IngressLoadBalancerIngress(Model):
    ip: str | None = None
    hostname: str | None = None
    ports: list[IngressPortStatus] = Field(default_factory=list)


class IngressLoadBalancerStatus(Model):
    ingress: list[IngressLoadBalancerIngress] = Field(default_factory=list)


class IngressStatus(Model):
    load_balancer: IngressLoadBalancerStatus = Field(default_factory=IngressLoadBalancerStatus)


class Ingress(Model):
    """Rules for reaching Services over HTTP; stored, with no ingress controller acting on it."""
    api_version: Literal["networking.k8s.io/v1"] = "networking.k8s.io/v1"
    kind: Literal["Ingress"] = "Ingress"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: IngressSpec = Field(default_factory=IngressSpec)
    status: IngressStatus = Field(default_factory=IngressStatus)


def _backend(path: str, backend: IngressBackend) -> list[FieldError]:
    """validateIngressBackend: one of service and resource; a service names a port by name or number."""
    if backend.service is not None and backend.resource is not None:
        return [FieldError(path, None, "Invalid value: cannot set both resource and service backends")]
    if backend.resource is not None:
        errors = []
        if not backend.resource.kind:
            errors.append(FieldError(f"{path}.resource.kind", None, "Required value"))
        if not backend.resource.name:
            errors.append(FieldError(f"{path}.resource.name", None, "Required value"))
        return errors
    if backend.service is None:
        return [FieldError(path, None, "Invalid value: resource or service backend is required")]
    service, errors = backend.service, []
    if not service.name:
        errors.append(FieldError(f"{path}.service.name", None, "Required value"))
    elif not SVC_NAME.match(service.name) or len(service.name) > 63:
        errors.append(FieldError(f"{path}.service.name", service.name, "Invalid value: must be a DNS-1035 label"))
    port = service.port or ServiceBackendPort()
    if port.name and port.number:
        errors.append(FieldError(f"{path}.service.port", None, "Invalid value: cannot set both port name & port number"))
    elif port.number and not 1 <= port.number <= 65535:
        errors.append(FieldError(f"{path}.service.port.number", port.number,
                                 "Invalid value: must be between 1 and 65535, inclusive"))
    elif not port.name and not port.number:
        errors.append(FieldError(f"{path}.service.port", None, "Required value: port name or number is required"))
    return errors


def _paths(path: str, value: HTTPIngressRuleValue) -> list[FieldError]:
    if not value.paths:
        return [FieldError(f"{path}.paths", None, "Required value")]
    errors: list[FieldError] = []
    for i, item in enumerate(value.paths):
        at = f"{path}.paths[{i}]"
        if item.path_type is None:
            errors.append(FieldError(f"{at}.pathType", None, "Required value: pathType must be specified"))
        elif item.path_type not in PATH_TYPES:
            errors.append(FieldError(f"{at}.pathType", item.path_type,
                                     "Unsupported value: " + ", ".join(f'"{t}"' for t in PATH_TYPES)))
        elif item.path_type in ("Exact", "Prefix") and not (item.path or "").startswith("/"):
            errors.append(FieldError(f"{at}.path", item.path, "Invalid value: must be an absolute path"))
        errors += _backend(f"{at}.backend", item.backend)
    return errors


def validate_ingress(ingress: Ingress) -> list[FieldError]:
    errors = validate_metadata(ingress.metadata)
    spec = ingress.spec
    if spec.default_backend is None and not spec.rules:
        errors.append(FieldError("spec", None, "Invalid value: either `defaultBackend` or `rules` must be specified"))
    if spec.default_backend is not None:
        errors += _backend("spec.defaultBackend", spec.default_backend)
    for i, rule in enumerate(spec.rules):
        at = f"spec.rules[{i}]"
        if rule.host and not is_subdomain(rule.host.removeprefix("*.")):
            errors.append(FieldError(f"{at}.host", rule.host, "Invalid value: a lowercase RFC 1123 subdomain "
                                     "must consist of lower case alphanumeric characters, '-' or '.', and must "
                                     "start and end with an alphanumeric character"))
        if rule.http is not None:
            errors += _paths(f"{at}.http", rule.http)
    if spec.ingress_class_name is not None and not is_subdomain(spec.ingress_class_name):
        errors.append(FieldError("spec.ingressClassName", spec.ingress_class_name,
                                 "Invalid value: a lowercase RFC 1123 subdomain"))
    return errors
