"""The resources podbay serves: kind, plural, scope, short names, group and version. The API
server serves this table; the client and kubectl derive their names and paths from it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from podbay.api.models import ConfigMap, Event, Lease, Namespace, Node, Pod, RuntimeClass, Secret
from podbay.api.services import Endpoints, EndpointSlice, Service


@dataclass(frozen=True)
class ResourceInfo:
    name: str  # the plural, as in URLs and store keys
    kind: str
    namespaced: bool
    model: type[Any]
    short_names: tuple[str, ...] = ()
    subresources: tuple[str, ...] = ()
    group: str = ""  # "": the core group, served under /api/v1
    version: str = "v1"
    verbs: tuple[str, ...] = ()  # (): every verb of a stored resource

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: dict[str, ResourceInfo] = {
    "pods": ResourceInfo("pods", "Pod", True, Pod, ("po",),
                         ("status", "binding", "log", "exec", "attach", "portforward", "ephemeralcontainers")),
    "nodes": ResourceInfo("nodes", "Node", False, Node, ("no",), ("status",)),
    "namespaces": ResourceInfo("namespaces", "Namespace", False, Namespace, ("ns",), ("status",)),
    "events": ResourceInfo("events", "Event", True, Event, ("ev",)),
    "configmaps": ResourceInfo("configmaps", "ConfigMap", True, ConfigMap, ("cm",)),
    "secrets": ResourceInfo("secrets", "Secret", True, Secret, ()),
    "services": ResourceInfo("services", "Service", True, Service, ("svc",), ("status",)),
    "endpoints": ResourceInfo("endpoints", "Endpoints", True, Endpoints, ("ep",)),
}

# The named API groups, served under /apis/{group}/{version}: group -> version -> resources,
# the preferred version first. Store keys are the plurals, so they are unique across all groups.
API_GROUPS: dict[str, dict[str, dict[str, ResourceInfo]]] = {
    "coordination.k8s.io": {
        "v1": {"leases": ResourceInfo("leases", "Lease", True, Lease, group="coordination.k8s.io")},
    },
    "discovery.k8s.io": {
        "v1": {"endpointslices": ResourceInfo("endpointslices", "EndpointSlice", True, EndpointSlice,
                                              group="discovery.k8s.io")},
    },
    "node.k8s.io": {
        "v1": {"runtimeclasses": ResourceInfo("runtimeclasses", "RuntimeClass", False, RuntimeClass,
                                              group="node.k8s.io")},
    },
}
# Groups whose objects are computed when read, not stored: their handlers answer them, and as their
# plurals repeat core ones (pods, nodes, events) they stay out of the store's resource table.
COMPUTED_GROUPS: dict[str, dict[str, dict[str, ResourceInfo]]] = {
    "events.k8s.io": {
        "v1": {"events": ResourceInfo("events", "Event", True, dict, group="events.k8s.io",
                                      verbs=("get", "list"))},
    },
    "metrics.k8s.io": {
        "v1beta1": {
            "nodes": ResourceInfo("nodes", "NodeMetrics", False, dict, group="metrics.k8s.io", version="v1beta1",
                                  verbs=("get", "list")),
            "pods": ResourceInfo("pods", "PodMetrics", True, dict, group="metrics.k8s.io", version="v1beta1",
                                 verbs=("get", "list")),
        },
    },
}
# Every stored resource, core and grouped, by plural.
ALL_RESOURCES: dict[str, ResourceInfo] = {
    **RESOURCES,
    **{name: info for versions in API_GROUPS.values() for table in versions.values() for name, info in table.items()},
}
