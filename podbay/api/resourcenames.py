"""The names of every kind podbay stores: plural (as in URLs and store keys), kind, scope,
short names, group and version, with their API paths. The one home of this vocabulary:
`podbay.api.kinds` adds each kind's model and rules to it, and the command line's read-only
verbs use it alone, since they must start without loading the models."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote


@dataclass(frozen=True)
class Resource:
    name: str  # the plural
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    group: str = ""  # "": the core group, under /api/v1
    version: str = "v1"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

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


RESOURCE_NAMES: tuple[Resource, ...] = (
    Resource("pods", "Pod", True, ("po",)),
    Resource("nodes", "Node", False, ("no",)),
    Resource("namespaces", "Namespace", False, ("ns",)),
    Resource("events", "Event", True, ("ev",)),
    Resource("configmaps", "ConfigMap", True, ("cm",)),
    Resource("secrets", "Secret", True),
    Resource("services", "Service", True, ("svc",)),
    Resource("endpoints", "Endpoints", True, ("ep",)),
    Resource("replicationcontrollers", "ReplicationController", True, ("rc",)),
    Resource("persistentvolumes", "PersistentVolume", False, ("pv",)),
    Resource("persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",)),
    Resource("leases", "Lease", True, group="coordination.k8s.io"),
    Resource("deployments", "Deployment", True, ("deploy",), group="apps"),
    Resource("replicasets", "ReplicaSet", True, ("rs",), group="apps"),
    Resource("daemonsets", "DaemonSet", True, ("ds",), group="apps"),
    Resource("statefulsets", "StatefulSet", True, ("sts",), group="apps"),
    Resource("jobs", "Job", True, group="batch"),
    Resource("cronjobs", "CronJob", True, ("cj",), group="batch"),
    Resource("ingresses", "Ingress", True, ("ing",), group="networking.k8s.io"),
    Resource("endpointslices", "EndpointSlice", True, group="discovery.k8s.io"),
    Resource("runtimeclasses", "RuntimeClass", False, group="node.k8s.io"),
)

BY_PLURAL: dict[str, Resource] = {r.name: r for r in RESOURCE_NAMES}
