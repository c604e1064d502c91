"""The objects kube-apiserver's control-plane controllers keep in every cluster: the system
namespaces (systemnamespaces) and default/kubernetes, the Service of the API itself
(kubernetesservice), made through the registry when the server starts."""
from __future__ import annotations

import logging
from typing import Any

from podbay.api.errors import AlreadyExists
from podbay.apiserver.registry import Registry
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import SYSTEM_NAMESPACES

log = logging.getLogger(__name__)


async def ensure_system_namespaces(registry: Registry) -> None:
    for name in SYSTEM_NAMESPACES:
        try:
            await registry.create("namespaces", "", {"metadata": {"name": name}})
        except AlreadyExists:
            pass


async def ensure_kubernetes_service(registry: Registry, endpoint: tuple[str, int] | None) -> None:
    """default/kubernetes on the range's first address, as kube-apiserver keeps it, with
    its Endpoints and EndpointSlice naming `endpoint` (this server's HTTPS address) if any."""
    service = {"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
               "spec": {"clusterIP": registry.service_ranges.kubernetes_ip(),
                        "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                                   "targetPort": endpoint[1] if endpoint else 6443}]}}
    objects: list[tuple[str, dict[str, Any]]] = [("services", service)]
    if endpoint is not None:
        address, port = endpoint
        objects.append(("endpoints", {"metadata": {"name": "kubernetes"}, "subsets": [
            {"addresses": [{"ip": address}], "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}))
        objects.append(("endpointslices", {
            "metadata": {"name": "kubernetes", "labels": {"kubernetes.io/service-name": "kubernetes"}},
            "addressType": "IPv4", "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}))
    for resource, body in objects:
        try:
            await registry.create(resource, "default", body)
        except AlreadyExists:
            pass
        except ObjectInvalid as exc:
            # A range changed between runs: the old Service keeps its IP; said, not fatal.
            log.warning("cannot create default/kubernetes %s: %s", resource, exc)
