"""The columns kubectl shows for each kind, as the API server's printers define them
(pkg/printers/internalversion): one definition serves `podbay get` and the server-side
Tables kubectl asks for (`Accept: application/json;as=Table;g=meta.k8s.io;v=v1`).
Priority-1 columns are the ones `-o wide` adds."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from podbay.api.apps import Deployment, LabelSelector, PodTemplateSpec, ReplicaSet, ReplicationController, \
    selector_string
from podbay.api.base import rfc3339
from podbay.api.batch import Job
from podbay.api.models import ConfigMap, Event, Lease, Namespace, Node, Pod, RuntimeClass, Secret
from podbay.api.networking import Ingress
from podbay.api.printing import age, human_duration, pod_row
from podbay.api.services import EndpointPort, Endpoints, EndpointSlice, Service
from podbay.api.storage import PersistentVolume, PersistentVolumeClaim


@dataclass(frozen=True)
class Column:
    name: str
    description: str
    priority: int = 0
    format: str = ""
    type: str = "string"


def _name(what: str) -> Column:
    return Column("Name", f"Name must be unique within a namespace. {what}", format="name")


_AGE = Column("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.")

POD_COLUMNS = [
    _name("Name of the pod."),
    Column("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column("Status", "The aggregate status of the containers in this pod."),
    Column("Restarts", "The number of times the containers in this pod have been restarted and when the "
                       "last container in this pod has restarted."),
    _AGE,
    Column("IP", "IP address allocated to the pod. Routable at least within the cluster.", 1),
    Column("Node", "Name of the node this pod is bound to.", 1),
    Column("Nominated Node", "Name of the node where the pod is nominated to run.", 1),
    Column("Readiness Gates", "Readiness gates of the pod and how many of them are met.", 1),
]

NODE_COLUMNS = [
    _name("Name of the node."),
    Column("Status", "The status of the node."),
    Column("Roles", "The roles of the node."),
    _AGE,
    Column("Version", "Kubelet Version reported by the node."),
    Column("Internal-IP", "List of internal IPs that the node has.", 1),
    Column("External-IP", "List of external IPs that the node has.", 1),
    Column("OS-Image", "OS Image reported by the node from /etc/os-release.", 1),
    Column("Kernel-Version", "Kernel Version reported by the node from 'uname -r'.", 1),
    Column("Container-Runtime", "Container Runtime Version reported by the node.", 1),
]

EVENT_COLUMNS = [
    Column("Last Seen", "The last time the event was seen."),
    Column("Type", "Type of this event (Normal, Warning)."),
    Column("Reason", "Why the action was taken."),
    Column("Object", "The object this event is about."),
    Column("Subobject", "The part of the object the event is about.", 1),
    Column("Source", "The component reporting this event.", 1),
    Column("Message", "A human-readable description of the status of this operation."),
    Column("First Seen", "The first time the event was seen.", 1),
    Column("Count", "The number of times this event has occurred.", 1),
    Column("Name", "Name of the event.", 1),
]

NAMESPACE_COLUMNS = [_name("Name of the namespace."), Column("Status", "The status of the namespace."), _AGE]
CONFIGMAP_COLUMNS = [_name("Name of the config map."), Column("Data", "The number of keys.", type="integer"), _AGE]
SECRET_COLUMNS = [_name("Name of the secret."), Column("Type", "The type of the secret."),
                  Column("Data", "The number of keys.", type="integer"), _AGE]

LEASE_COLUMNS = [_name("Name of the lease."),
                 Column("Holder", "holderIdentity contains the identity of the holder of a current lease."), _AGE]

RUNTIMECLASS_COLUMNS = [_name("Name of the runtime class."),
                        Column("Handler", "Handler specifies the underlying runtime and configuration that the "
                                          "CRI implementation will use to handle pods of this class."), _AGE]
SERVICE_COLUMNS = [
    _name("Name of the service."),
    Column("Type", "The type of the service."),
    Column("Cluster-IP", "The cluster IP of the service."),
    Column("External-IP", "The external IP of the service."),
    Column("Port(s)", "The ports of the service."),
    _AGE,
    Column("Selector", "The label selector of the service.", 1),
]
ENDPOINTSLICE_COLUMNS = [_name("Name of the EndpointSlice."),
                         Column("AddressType", "The IP protocol for this slice."),
                         Column("Ports", "The ports of this slice."),
                         Column("Endpoints", "The endpoints of this slice."), _AGE]
ENDPOINTS_COLUMNS = [_name("Name of the endpoints."), Column("Endpoints", "The endpoints of the service."), _AGE]
_TEMPLATE_COLUMNS = [
    Column("Containers", "Names of each container in the template.", 1),
    Column("Images", "Images referenced by each container in the template.", 1),
    Column("Selector", "The label selector used to find the pods this controller manages.", 1),
]
REPLICA_SET_COLUMNS = [
    _name("Name of the replica set."),
    Column("Desired", "Replicas is the number of desired pods.", type="integer"),
    Column("Current", "Replicas is the most recently observed number of replicas.", type="integer"),
    Column("Ready", "The number of ready replicas.", type="integer"),
    _AGE, *_TEMPLATE_COLUMNS,
]
DEPLOYMENT_COLUMNS = [
    _name("Name of the deployment."),
    Column("Ready", "Number of the pod with ready state"),
    Column("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired "
                         "template spec.", type="integer"),
    Column("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this "
                        "deployment.", type="integer"),
    _AGE, *_TEMPLATE_COLUMNS,
]
JOB_COLUMNS = [
    _name("Name of the job."),
    Column("Status", "Status of the job."),
    Column("Completions", "The completion status of the job."),
    Column("Duration", "Time required to complete the job."),
    _AGE, *_TEMPLATE_COLUMNS,
]

DEFAULT_COLUMNS = [
    _name("Name of the object."),
    Column("Created At", "CreationTimestamp is a timestamp representing the server time when this object "
                         "was created.", type="date"),
]


def pod_cells(p: Pod, now: datetime) -> list[Any]:
    r = pod_row(p, now)
    gates = p.spec.readiness_gates
    ready_gates = "<none>"
    if gates:
        met = sum(1 for g in gates if any(c.type == g.condition_type and c.status == "True"
                                          for c in p.status.conditions))
        ready_gates = f"{met}/{len(gates)}"
    return [p.metadata.name or "", r.ready, r.status, r.restarts, age(p.metadata.creation_timestamp, now),
            p.status.pod_ip or "<none>", p.spec.node_name or "<none>", p.status.nominated_node_name or "<none>",
            ready_gates]


def node_cells(n: Node, now: datetime) -> list[Any]:
    ready = next((c.status for c in n.status.conditions if c.type == "Ready"), "Unknown")
    status = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if n.spec.unschedulable:
        status += ",SchedulingDisabled"
    roles = ",".join(sorted(k.split("/", 1)[1] for k in n.metadata.labels
                            if k.startswith("node-role.kubernetes.io/"))) or "<none>"
    info = n.status.node_info

    def addresses(kind: str) -> str:
        return ",".join(a.address for a in n.status.addresses if a.type == kind) or "<none>"
    return [n.metadata.name or "", status, roles, age(n.metadata.creation_timestamp, now),
            info.kubelet_version if info else "", addresses("InternalIP"), addresses("ExternalIP"),
            info.os_image if info else "<unknown>", info.kernel_version if info else "<unknown>",
            info.container_runtime_version if info else "<unknown>"]


def event_cells(e: Event, now: datetime) -> list[Any]:
    ref = e.involved_object
    source = e.source.component if e.source and e.source.component else (e.reporting_component or "")
    if e.source and e.source.host:
        source += f", {e.source.host}"
    first = e.first_timestamp or e.event_time
    return [age(e.last_timestamp or e.event_time, now), e.type or "", e.reason or "",
            f"{(ref.kind or '').lower()}/{ref.name}", ref.field_path or "", source, e.message or "",
            age(first, now), e.count or 1, e.metadata.name or ""]


def namespace_cells(ns: Namespace, now: datetime) -> list[Any]:
    return [ns.metadata.name or "", (ns.status.phase if ns.status else None) or "Active",
            age(ns.metadata.creation_timestamp, now)]


def configmap_cells(cm: ConfigMap, now: datetime) -> list[Any]:
    return [cm.metadata.name or "", len(cm.data) + len(cm.binary_data), age(cm.metadata.creation_timestamp, now)]


def secret_cells(sec: Secret, now: datetime) -> list[Any]:
    return [sec.metadata.name or "", sec.type or "Opaque", len(sec.data) + len(sec.string_data),
            age(sec.metadata.creation_timestamp, now)]


def lease_cells(lease: Lease, now: datetime) -> list[Any]:
    return [lease.metadata.name or "", lease.spec.holder_identity or "", age(lease.metadata.creation_timestamp, now)]


def runtimeclass_cells(rc: RuntimeClass, now: datetime) -> list[Any]:
    return [rc.metadata.name or "", rc.handler, age(rc.metadata.creation_timestamp, now)]


def _first_three(items: list[str]) -> str:
    """kubectl's formatEndpoints/formatDiscoveryEndpoints: three, then how many more."""
    if not items:
        return "<none>"
    shown = ",".join(items[:3])
    return f"{shown} + {len(items) - 3} more..." if len(items) > 3 else shown


def service_cells(svc: Service, now: datetime) -> list[Any]:
    spec = svc.spec
    ports = ",".join(f"{p.port}:{p.node_port}/{p.protocol}" if p.node_port else f"{p.port}/{p.protocol}"
                     for p in spec.ports) or "<none>"
    selector = ",".join(f"{k}={v}" for k, v in sorted(spec.selector.items())) or "<none>"
    external = ",".join(spec.external_ips) or "<none>"
    return [svc.metadata.name or "", spec.type or "", spec.cluster_ip or "<none>", external, ports,
            age(svc.metadata.creation_timestamp, now), selector]


def endpointslice_cells(es: EndpointSlice, now: datetime) -> list[Any]:
    ports = ",".join(str(p.port) for p in es.ports if p.port is not None) or "<unset>"
    addresses = [a for e in es.endpoints for a in e.addresses]
    return [es.metadata.name or "", es.address_type, ports, _first_three(addresses)
            if addresses else "<unset>", age(es.metadata.creation_timestamp, now)]


def endpoints_cells(ep: Endpoints, now: datetime) -> list[Any]:
    items = [f"{a.ip}:{p.port}" if p.port else a.ip for s in ep.subsets for a in s.addresses
             for p in (s.ports or [EndpointPort()])]
    return [ep.metadata.name or "", _first_three(items), age(ep.metadata.creation_timestamp, now)]


def _template_cells(template: PodTemplateSpec | None, selector: str) -> list[Any]:
    containers = template.spec.containers if template else []
    return [",".join(c.name for c in containers), ",".join(c.image or "" for c in containers), selector or "<none>"]


def _label_selector(selector: LabelSelector | None) -> str:
    return selector_string(selector) if selector is not None else "<none>"


def replica_set_cells(rs: ReplicaSet | ReplicationController, now: datetime) -> list[Any]:
    if isinstance(rs, ReplicationController):
        selector = ",".join(f"{k}={v}" for k, v in sorted(rs.spec.selector.items()))
    else:
        selector = _label_selector(rs.spec.selector)
    return [rs.metadata.name or "", rs.spec.replicas or 0, rs.status.replicas, rs.status.ready_replicas or 0,
            age(rs.metadata.creation_timestamp, now), *_template_cells(rs.spec.template, selector)]


def deployment_cells(d: Deployment, now: datetime) -> list[Any]:
    return [d.metadata.name or "", f"{d.status.ready_replicas or 0}/{d.spec.replicas or 0}",
            d.status.updated_replicas or 0, d.status.available_replicas or 0, age(d.metadata.creation_timestamp, now),
            *_template_cells(d.spec.template, _label_selector(d.spec.selector))]


def job_status(job: Job) -> str:
    """printJob's Status: the first of the job's conditions that holds, else Running."""
    held = {c.type for c in job.status.conditions if c.status == "True"}
    if "Complete" in held:
        return "Complete"
    if "Failed" in held:
        return "Failed"
    if job.metadata.deletion_timestamp is not None:
        return "Terminating"
    for condition in ("Suspended", "FailureTarget", "SuccessCriteriaMet"):
        if condition in held:
            return condition
    return "Running"


def job_cells(job: Job, now: datetime) -> list[Any]:
    succeeded = job.status.succeeded or 0
    if job.spec.completions is not None:
        completions = f"{succeeded}/{job.spec.completions}"
    elif (job.spec.parallelism or 0) > 1:
        completions = f"{succeeded}/1 of {job.spec.parallelism}"
    else:
        completions = f"{succeeded}/1"
    start, end = job.status.start_time, job.status.completion_time
    duration = "" if start is None else human_duration(((end or now) - start).total_seconds())
    return [job.metadata.name or "", job_status(job), completions, duration, age(job.metadata.creation_timestamp, now),
            *_template_cells(job.spec.template, _label_selector(job.spec.selector))]


_VOLUME_MODE = Column("VolumeMode", "The volume mode of the volume.", 1)
_ATTRIBUTES_CLASS = Column("VolumeAttributesClass", "VolumeAttributesClass of the volume.")
PVC_COLUMNS = [
    _name("Name of the persistent volume claim."), Column("Status", "The phase of the claim."),
    Column("Volume", "The volume bound to the claim."), Column("Capacity", "The capacity of the bound volume."),
    Column("Access Modes", "The access modes of the bound volume."),
    Column("StorageClass", "The storage class of the claim."), _ATTRIBUTES_CLASS, _AGE, _VOLUME_MODE,
]
PV_COLUMNS = [
    _name("Name of the persistent volume."), Column("Capacity", "The capacity of the volume."),
    Column("Access Modes", "The access modes of the volume."),
    Column("Reclaim Policy", "What happens to the volume when its claim is released."),
    Column("Status", "The phase of the volume."), Column("Claim", "The claim bound to the volume."),
    Column("StorageClass", "The storage class of the volume."), _ATTRIBUTES_CLASS,
    Column("Reason", "Why the volume is in its phase."), _AGE, _VOLUME_MODE,
]
INGRESS_COLUMNS = [
    _name("Name of the ingress."), Column("Class", "The ingress class of the ingress."),
    Column("Hosts", "The hosts of its rules."), Column("Address", "The addresses its controller publishes."),
    Column("Ports", "The ports it serves."), _AGE,
]
_ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX", "ReadWriteOncePod": "RWOP"}


def _access_modes(modes: list[str]) -> str:
    """kubectl's GetAccessModesAsString: each mode once, abbreviated, in its fixed order."""
    return ",".join(short for mode, short in _ACCESS_MODES.items() if mode in modes)


def pvc_cells(pvc: PersistentVolumeClaim, now: datetime) -> list[Any]:
    phase = "Terminating" if pvc.metadata.deletion_timestamp else pvc.status.phase or ""
    bound = bool(pvc.spec.volume_name)
    return [pvc.metadata.name or "", phase, pvc.spec.volume_name or "",
            pvc.status.capacity.get("storage", "") if bound else "",
            _access_modes(pvc.status.access_modes) if bound else "", pvc.spec.storage_class_name or "",
            pvc.spec.volume_attributes_class_name or "<unset>", age(pvc.metadata.creation_timestamp, now),
            pvc.spec.volume_mode or "<unset>"]


def pv_cells(pv: PersistentVolume, now: datetime) -> list[Any]:
    spec = pv.spec
    claim = f"{spec.claim_ref.namespace}/{spec.claim_ref.name}" if spec.claim_ref else ""
    phase = "Terminating" if pv.metadata.deletion_timestamp else pv.status.phase or ""
    return [pv.metadata.name or "", spec.capacity.get("storage", ""), _access_modes(spec.access_modes),
            spec.persistent_volume_reclaim_policy or "", phase, claim, spec.storage_class_name or "",
            spec.volume_attributes_class_name or "<unset>", pv.status.reason or "",
            age(pv.metadata.creation_timestamp, now), spec.volume_mode or "<unset>"]


def ingress_cells(ing: Ingress, now: datetime) -> list[Any]:
    hosts = ",".join(r.host for r in ing.spec.rules if r.host) or "*"
    addresses = ",".join(a.ip or a.hostname or "" for a in ing.status.load_balancer.ingress)
    ports = "80, 443" if ing.spec.tls else "80"
    return [ing.metadata.name or "", ing.spec.ingress_class_name or "<none>", hosts, addresses, ports,
            age(ing.metadata.creation_timestamp, now)]


def default_cells(obj: Any, now: datetime) -> list[Any]:
    created = obj.metadata.creation_timestamp
    return [obj.metadata.name or "", rfc3339(created) if created else ""]


def table_of(kind: type) -> tuple[list[Column], Callable[[Any, datetime], list[Any]]]:
    """The columns of `kind` and the function that fills a row from an object."""
    tables: dict[type, tuple[list[Column], Callable[[Any, datetime], list[Any]]]] = {
        Pod: (POD_COLUMNS, pod_cells), Node: (NODE_COLUMNS, node_cells), Event: (EVENT_COLUMNS, event_cells),
        Namespace: (NAMESPACE_COLUMNS, namespace_cells), ConfigMap: (CONFIGMAP_COLUMNS, configmap_cells),
        Secret: (SECRET_COLUMNS, secret_cells), Lease: (LEASE_COLUMNS, lease_cells),
        RuntimeClass: (RUNTIMECLASS_COLUMNS, runtimeclass_cells),
        Service: (SERVICE_COLUMNS, service_cells), EndpointSlice: (ENDPOINTSLICE_COLUMNS, endpointslice_cells),
        Endpoints: (ENDPOINTS_COLUMNS, endpoints_cells),
        ReplicaSet: (REPLICA_SET_COLUMNS, replica_set_cells),
        ReplicationController: (REPLICA_SET_COLUMNS, replica_set_cells),
        Deployment: (DEPLOYMENT_COLUMNS, deployment_cells), Job: (JOB_COLUMNS, job_cells),
        PersistentVolumeClaim: (PVC_COLUMNS, pvc_cells), PersistentVolume: (PV_COLUMNS, pv_cells),
        Ingress: (INGRESS_COLUMNS, ingress_cells)}
    return tables.get(kind, (DEFAULT_COLUMNS, default_cells))
