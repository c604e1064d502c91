"""The resources the read-only verbs name (`get pods`, `get deploy/web`), by plural, kind, singular
and short name, with their API paths: kubectl's RESTMapper over what podbay serves. A table of
plain names, because the read-only verbs must start without loading the models that
podbay.api.kinds is built from; tests/cli/test_restmapper_rules.py keeps it equal to that table."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    name: str  # the plural, as in URLs
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    group: str = ""  # "": the core group, under /api/v1
    version: str = "v1"

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        path = f"/apis/{self.group}/{self.version}" if self.group else "/api/v1"
        if self.namespaced and namespace:
            path += f"/namespaces/{quote(namespace, safe='')}"
        path += f"/{self.name}"
        if name is not None:
            path += f"/{quote(name, safe='')}"
        if subresource:
            path += f"/{subresource}"
        return path


RESOURCES: tuple[Resource, ...] = (
    Resource("pods", "Pod", True, ("po",)),
    Resource("nodes", "Node", False, ("no",)),
    Resource("namespaces", "Namespace", False, ("ns",)),
    Resource("events", "Event", True, ("ev",)),
    Resource("configmaps", "ConfigMap", True, ("cm",)),
    Resource("secrets", "Secret", True),
    Resource("services", "Service", True, ("svc",)),
    Resource("endpoints", "Endpoints", True, ("ep",)),
    Resource("replicationcontrollers", "ReplicationController", True, ("rc",)),
    Resource("leases", "Lease", True, group="coordination.k8s.io"),
    Resource("deployments", "Deployment", True, ("deploy",), group="apps"),
    Resource("replicasets", "ReplicaSet", True, ("rs",), group="apps"),
    Resource("jobs", "Job", True, group="batch"),
    Resource("endpointslices", "EndpointSlice", True, group="discovery.k8s.io"),
    Resource("runtimeclasses", "RuntimeClass", False, group="node.k8s.io"),
)

_BY_ALIAS: dict[str, Resource] = {alias: r for r in RESOURCES for alias in (r.name, r.kind.lower(), *r.short_names)}

POD = _BY_ALIAS["pods"]
EVENT = _BY_ALIAS["events"]


def resource_for(alias: str) -> Resource | None:
    return _BY_ALIAS.get(alias)
