"""The endpointslice controller (kube-controller-manager's endpointslice and endpoints
controllers): for every Service with a selector, EndpointSlices listing its pods' IPs with their
ready/serving/terminating conditions and the ports each pod serves the Service's ports on (named
targetPorts resolved per pod), and the legacy Endpoints object of the same content.

Pure rules first (`desired_slices`, `desired_endpoints`), then the loop that writes them."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from podbay.api.errors import AlreadyExists, Conflict, NotFound
from podbay.api.models import ObjectMeta, ObjectReference, OwnerReference, Pod
from podbay.api.services import (
    MANAGED_BY_LABEL,
    SERVICE_NAME_LABEL,
    Endpoint,
    EndpointAddress,
    EndpointConditions,
    EndpointPort,
    Endpoints,
    EndpointSlice,
    EndpointSubset,
    Service,
    ServicePort,
)
from podbay.client.client import Client
from podbay.client.informer import Key, Object, SharedInformer, SharedInformerFactory, WatchEvents, key_of
from podbay.controllers.writetracker import WriteTracker

log = logging.getLogger(__name__)

CONTROLLER_NAME = "endpointslice-controller.k8s.io"
# A safety net behind the watches: every Service is reconciled this often even without events.
_RESYNC = 30.0


@dataclass(frozen=True)
class SliceContent:
    """One slice's worth: the ports every endpoint in it shares, and the endpoints."""
    ports: tuple[EndpointPort, ...]
    endpoints: tuple[Endpoint, ...]


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _pod_ready(pod: Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def find_port(pod: Pod, port: ServicePort) -> int | None:
    """podutil.FindPort: a numeric targetPort as it is; a name, the container port of that name
    and protocol in this pod (None: this pod does not serve the port)."""
    target = port.target_port if port.target_port is not None else port.port
    if isinstance(target, int):
        return target
    for container in pod.spec.containers:
        for cp in container.ports:
            if cp.name == target and (cp.protocol or "TCP") == port.protocol:
                return cp.container_port
    return None


def _eligible(pod: Pod, svc: Service) -> bool:
    """ShouldPodBeInEndpoints (terminating pods included, as the slices carry them)."""
    return (pod.metadata.namespace == svc.metadata.namespace and selects(svc.spec.selector, pod.metadata.labels)
            and bool(pod.status.pod_ip) and pod.status.phase not in ("Succeeded", "Failed"))


def _endpoint(pod: Pod, svc: Service) -> Endpoint:
    terminating = pod.metadata.deletion_timestamp is not None
    serving = _pod_ready(pod) or bool(svc.spec.publish_not_ready_addresses)
    hostname = pod.spec.hostname if pod.spec.hostname and pod.spec.subdomain == svc.metadata.name else None
    return Endpoint(addresses=[pod.status.pod_ip or ""],
                    conditions=EndpointConditions(ready=serving and not terminating, serving=serving,
                                                  terminating=terminating),
                    hostname=hostname, node_name=pod.spec.node_name,
                    target_ref=ObjectReference(kind="Pod", namespace=pod.metadata.namespace,
                                               name=pod.metadata.name, uid=pod.metadata.uid))


def desired_slices(svc: Service, pods: list[Pod]) -> list[SliceContent]:
    """The slices `svc` should have: its pods grouped by the ports they serve (pods resolving a
    named targetPort differently go to different slices, as Kubernetes groups them)."""
    # Keyed by the ports' fields: the models compare by value but do not hash.
    groups: dict[tuple[tuple[str | None, str | None, int | None, str | None], ...],
                 tuple[list[EndpointPort], list[Endpoint]]] = {}
    for pod in sorted(pods, key=lambda p: p.metadata.name or ""):
        if not _eligible(pod, svc):
            continue
        ports: list[EndpointPort] = []
        for sp in svc.spec.ports:
            number = find_port(pod, sp)
            if number is not None:
                ports.append(EndpointPort(name=sp.name or "", protocol=sp.protocol, port=number,
                                          app_protocol=sp.app_protocol))
        key = tuple((p.name, p.protocol, p.port, p.app_protocol) for p in ports)
        groups.setdefault(key, (ports, []))[1].append(_endpoint(pod, svc))
    return [SliceContent(tuple(ports), tuple(eps)) for ports, eps in groups.values()]


def desired_endpoints(svc: Service, pods: list[Pod]) -> list[EndpointSubset]:
    """The legacy Endpoints' subsets: ready addresses and not-ready ones per port set; terminating
    pods are left out (unless publishNotReadyAddresses), as the endpoints controller does."""
    subsets: list[EndpointSubset] = []
    for content in desired_slices(svc, pods):
        subset = EndpointSubset(ports=list(content.ports))
        for ep in content.endpoints:
            if ep.conditions.terminating and not svc.spec.publish_not_ready_addresses:
                continue
            address = EndpointAddress(ip=ep.addresses[0], hostname=ep.hostname, node_name=ep.node_name,
                                      target_ref=ep.target_ref)
            (subset.addresses if ep.conditions.ready else subset.not_ready_addresses).append(address)
        if subset.addresses or subset.not_ready_addresses:
            subsets.append(subset)
    return subsets


def _owner(svc: Service) -> OwnerReference:
    return OwnerReference(api_version="v1", kind="Service", name=svc.metadata.name or "", uid=svc.metadata.uid or "",
                          controller=True, block_owner_deletion=True)


# The controller's slices of a Service, "namespace/name", in the shared EndpointSlice informer.
SERVICE_SLICES_INDEX = "endpointslice-controller/service"


def _service_slices_index(es: EndpointSlice) -> list[str]:
    if es.metadata.labels.get(MANAGED_BY_LABEL) != CONTROLLER_NAME:
        return []
    return [f"{es.metadata.namespace or ''}/{es.metadata.labels.get(SERVICE_NAME_LABEL, '')}"]


class EndpointSliceController:
    """Reads Services, Pods, EndpointSlices and Endpoints from the process's shared informers and
    writes through the API; what it wrote and the cache does not show yet, its WriteTrackers know."""

    def __init__(self, client: Client, informers: SharedInformerFactory) -> None:
        self.client = client
        self.changed = asyncio.Event()
        self.services = informers.informer(Service)
        self.pods = informers.informer(Pod)
        self.slices = informers.informer(EndpointSlice)
        self.slices.add_indexers({SERVICE_SLICES_INDEX: _service_slices_index})
        self.endpoints = informers.informer(Endpoints)
        self.slice_writes = WriteTracker()
        self.endpoints_writes = WriteTracker()

    async def run(self) -> None:
        wake: WatchEvents[Object] = WatchEvents(lambda _, __: self.changed.set())
        informers: list[SharedInformer[Any]] = [self.services, self.pods, self.slices, self.endpoints]
        tasks = [asyncio.create_task(i.serve(wake)) for i in informers]
        try:
            await asyncio.gather(*(i.wait_synced() for i in informers))
            while True:
                with_timeout = asyncio.create_task(self.changed.wait())
                await asyncio.wait([with_timeout, *tasks], timeout=_RESYNC, return_when=asyncio.FIRST_COMPLETED)
                with_timeout.cancel()
                for t in tasks:
                    if t.done():
                        t.result()  # a handler that ended has failed: say why
                self.changed.clear()
                try:
                    await self.sync_all()
                except Exception as exc:  # the next event or resync tries again
                    log.warning("endpointslice sync failed: %s", exc)
                    self.changed.set()
                    await asyncio.sleep(1.0)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def sync_all(self) -> None:
        services = {key_of(s): s for s in self.services.list() if s.spec.selector}
        pods = self.pods.list()
        for writes in (self.slice_writes, self.endpoints_writes):
            writes.keep_only(services.keys())
        for key, svc in services.items():
            # Until the watch brings back what the last pass wrote, a sync would work from older
            # copies; the event that brings it wakes the loop again.
            if not self.slice_writes.stale(key, lambda k: self.slices.get(*k)):
                await self._sync_slices(svc, pods)
            if not self.endpoints_writes.stale(key, lambda k: self.endpoints.get(*k)):
                await self._sync_endpoints(svc, pods)
        # Slices of Services gone (or without a selector now): no garbage collector does it here.
        for es in self.slices.list():
            ns = es.metadata.namespace or ""
            if es.metadata.labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME and \
                    (ns, es.metadata.labels.get(SERVICE_NAME_LABEL, "")) not in services:
                await self._delete(EndpointSlice, es.metadata.name or "", ns)
        for ep in self.endpoints.list():
            if key_of(ep) not in services and ep.metadata.labels.get(MANAGED_BY_LABEL) == CONTROLLER_NAME:
                await self._delete(Endpoints, ep.metadata.name or "", ep.metadata.namespace or "")

    @staticmethod
    def _track_update(writes: WriteTracker, owner: Key, old: Object, new: Object) -> None:
        # An update the server found to change nothing keeps the resourceVersion: no event comes.
        if new.metadata.resource_version != old.metadata.resource_version:
            writes.updated(owner, key_of(old), old.metadata.resource_version)

    async def _delete(self, kind: type[EndpointSlice] | type[Endpoints], name: str, ns: str) -> None:
        try:
            await self.client.delete(kind, name, ns)
        except NotFound:
            pass

    async def _sync_slices(self, svc: Service, pods: list[Pod]) -> None:
        owner = key_of(svc)
        ns, name = owner
        existing = self.slices.by_index(SERVICE_SLICES_INDEX, f"{ns}/{name}")
        wanted = desired_slices(svc, pods) or [SliceContent((), ())]
        # Each wanted slice takes the existing one with its ports if any, else any spare one.
        spare = list(existing)
        pairs: list[tuple[SliceContent, EndpointSlice | None]] = []
        for content in wanted:
            match = next((es for es in spare if tuple(es.ports) == content.ports), None)
            if match is not None:
                spare.remove(match)
            pairs.append((content, match))
        for content, current in pairs:
            if current is None and spare:
                current = spare.pop()
            if current is not None:
                owners = [_owner(svc)]  # a Service made again under the same name owns them anew
                if tuple(current.endpoints) == content.endpoints and tuple(current.ports) == content.ports \
                        and current.metadata.owner_references == owners:
                    continue
                meta = current.metadata.model_copy(update={"owner_references": owners})
                updated = current.model_copy(update={"endpoints": list(content.endpoints),
                                                     "ports": list(content.ports), "metadata": meta})
                try:
                    self._track_update(self.slice_writes, owner, current, await self.client.update(updated))
                except (Conflict, NotFound):
                    self.changed.set()  # the informer brings the newer object; try again
                continue
            slice_ = EndpointSlice(
                metadata=ObjectMeta(generate_name=f"{name}-", namespace=ns, owner_references=[_owner(svc)],
                                    labels={SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: CONTROLLER_NAME}),
                address_type="IPv4", endpoints=list(content.endpoints), ports=list(content.ports))
            self.slice_writes.created(owner, key_of(await self.client.create(slice_)))
        for es in spare:
            await self._delete(EndpointSlice, es.metadata.name or "", ns)
            self.slice_writes.deleted(owner, key_of(es))

    async def _sync_endpoints(self, svc: Service, pods: list[Pod]) -> None:
        ns, name = key_of(svc)
        subsets = desired_endpoints(svc, pods)
        current = self.endpoints.get(ns, name)
        if current is not None:
            if current.subsets == subsets:
                return
            try:
                self._track_update(self.endpoints_writes, (ns, name), current,
                                   await self.client.update(current.model_copy(update={"subsets": subsets})))
            except (Conflict, NotFound):
                self.changed.set()
            return
        ep = Endpoints(metadata=ObjectMeta(name=name, namespace=ns, labels={MANAGED_BY_LABEL: CONTROLLER_NAME}),
                       subsets=subsets)
        try:
            await self.client.create(ep)
            self.endpoints_writes.created((ns, name), (ns, name))
        except AlreadyExists:
            self.changed.set()
