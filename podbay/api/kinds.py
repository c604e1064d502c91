"""The resources podbay serves: kind, plural, scope, short names, group and version. The API
server serves this table; the client and kubectl derive their names and paths from it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from podbay.api.apps import (
    Deployment,
    ReplicaSet,
    ReplicationController,
    default_deployment,
    default_replica_set,
    default_replication_controller,
    validate_deployment,
    validate_replica_set,
    validate_replication_controller,
)
from podbay.api.batch import Job, prepare_job, validate_job, validate_job_update
from podbay.api.errors import FieldError
from podbay.api.models import (
    ConfigMap,
    Event,
    Lease,
    Namespace,
    Node,
    Pod,
    RuntimeClass,
    Secret,
)
from podbay.api.resourcenames import BY_PLURAL
from podbay.api.owners import PropagationPolicy
from podbay.api.networking import Ingress, validate_ingress
from podbay.api.services import Endpoints, EndpointSlice, Service
from podbay.api.storage import (
    PersistentVolume,
    PersistentVolumeClaim,
    default_persistent_volume,
    default_persistent_volume_claim,
    validate_persistent_volume,
    validate_persistent_volume_claim,
    validate_persistent_volume_claim_update,
)
from podbay.api.uncontrolled import CronJob, DaemonSet, StatefulSet, no_controller


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
    # The kind's registry strategy beyond pods': defaulting (in place), validation, an update's
    # extra rules, whether spec changes bump metadata.generation, the categories it is listed
    # in, and the propagation a delete without one uses (DefaultGarbageCollectionPolicy).
    defaults: Callable[[Any], None] | None = None
    validate: Callable[[Any], list[FieldError]] | None = None
    validate_update: Callable[[Any, Any], list[FieldError]] | None = None
    generation: bool = False
    categories: tuple[str, ...] = ()
    default_propagation: PropagationPolicy = "Background"
    # The status PrepareForCreate gives a new object, whatever the client sent (None: as sent).
    created_status: dict[str, Any] | None = None
    # Why admission refuses every write of this kind (""): kinds served for listing only.
    denied: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def _selector_immutable(new: Deployment | ReplicaSet, old: Deployment | ReplicaSet) -> list[FieldError]:
    """apps/v1's ValidateDeploymentUpdate and ValidateReplicaSetUpdate: the selector stays."""
    if new.spec.selector != old.spec.selector:
        return [FieldError("spec.selector", None, "Invalid value: field is immutable")]
    return []


def _stored(plural: str, model: type[Any], subresources: tuple[str, ...] = (), **rules: Any) -> ResourceInfo:
    """A stored kind: its names from podbay.api.resourcenames, its model and rules from here."""
    r = BY_PLURAL[plural]
    return ResourceInfo(r.name, r.kind, r.namespaced, model, r.short_names, subresources, group=r.group,
                        version=r.version, **rules)


RESOURCES: dict[str, ResourceInfo] = {
    "pods": _stored("pods", Pod, ("status", "binding", "log", "exec", "attach", "portforward",
                                  "ephemeralcontainers")),
    "nodes": _stored("nodes", Node, ("status",)),
    "namespaces": _stored("namespaces", Namespace, ("status",)),
    "events": _stored("events", Event),
    "configmaps": _stored("configmaps", ConfigMap),
    "secrets": _stored("secrets", Secret),
    "services": _stored("services", Service, ("status",)),
    "endpoints": _stored("endpoints", Endpoints),
    "replicationcontrollers": _stored(
        "replicationcontrollers", ReplicationController, ("scale", "status"),
        defaults=default_replication_controller, validate=validate_replication_controller, generation=True,
        categories=("all",)),
    "persistentvolumes": _stored(
        "persistentvolumes", PersistentVolume, ("status",), defaults=default_persistent_volume,
        validate=validate_persistent_volume, created_status={"phase": "Pending"}),
    "persistentvolumeclaims": _stored(
        "persistentvolumeclaims", PersistentVolumeClaim, ("status",), defaults=default_persistent_volume_claim,
        validate=validate_persistent_volume_claim, validate_update=validate_persistent_volume_claim_update,
        created_status={"phase": "Pending"}),
}

# The named API groups, served under /apis/{group}/{version}: group -> version -> resources,
# the preferred version first. Store keys are the plurals, so they are unique across all groups.
API_GROUPS: dict[str, dict[str, dict[str, ResourceInfo]]] = {
    "coordination.k8s.io": {
        "v1": {"leases": _stored("leases", Lease)},
    },
    "apps": {
        "v1": {
            "deployments": _stored(
                "deployments", Deployment, ("scale", "status"), defaults=default_deployment,
                validate=validate_deployment, validate_update=_selector_immutable, generation=True,
                categories=("all",)),
            "replicasets": _stored(
                "replicasets", ReplicaSet, ("scale", "status"), defaults=default_replica_set,
                validate=validate_replica_set, validate_update=_selector_immutable, generation=True,
                categories=("all",)),
            "daemonsets": _stored(
                "daemonsets", DaemonSet, ("status",), categories=("all",),
                denied=no_controller("DaemonSet", "run the pods with a Deployment, or one pod per node")),
            "statefulsets": _stored(
                "statefulsets", StatefulSet, ("scale", "status"), categories=("all",),
                denied=no_controller("StatefulSet", "run the pods with a Deployment")),
        },
    },
    "batch": {
        "v1": {
            # batch/v1 Jobs orphan their pods unless told otherwise, for compatibility (kubectl asks
            # for Background).
            "jobs": _stored(
                "jobs", Job, ("status",), defaults=prepare_job, validate=validate_job,
                validate_update=validate_job_update, generation=True, categories=("all",),
                default_propagation="Orphan"),
            "cronjobs": _stored(
                "cronjobs", CronJob, ("status",), categories=("all",),
                denied=no_controller("CronJob", "create the Job when it should run")),
        },
    },
    "networking.k8s.io": {
        "v1": {"ingresses": _stored("ingresses", Ingress, ("status",), validate=validate_ingress,
                                    created_status={"loadBalancer": {}})},
    },
    "discovery.k8s.io": {
        "v1": {"endpointslices": _stored("endpointslices", EndpointSlice)},
    },
    "node.k8s.io": {
        "v1": {"runtimeclasses": _stored("runtimeclasses", RuntimeClass)},
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
