"""pkg/registry/core/service: defaulting and validation, the allocated cluster IP and nodePorts an
update keeps, and the allocation of new ones."""
from __future__ import annotations

import copy
from typing import Any

from podbay.api.errors import FieldError
from podbay.api.serialize import from_dict
from podbay.api.services import (
    HEADLESS,
    Service,
    apply_service_defaults,
    drop_type_dependent_fields,
    keep_allocated,
    validate_service,
    validate_service_update,
)
from podbay.apiserver.ipallocator import AllocationError, allocate_ip, allocate_node_port
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies.base import Host, Strategy


class ServiceStrategy(Strategy):
    def default(self, model: Any) -> None:
        apply_service_defaults(model)

    def validate(self, model: Any) -> list[FieldError]:
        return validate_service(model)

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any], subresource: str | None) -> dict[str, Any]:
        if subresource is not None:
            return new
        new = copy.deepcopy(new)
        keep_allocated(new, old)
        drop_type_dependent_fields(new, old)
        return new

    def validate_update(self, out: dict[str, Any], old: dict[str, Any], subresource: str | None) -> list[FieldError]:
        if subresource is not None:
            return []
        return validate_service_update(from_dict(Service, out), from_dict(Service, old))

    def allocates(self, subresource: str | None) -> bool:
        return subresource is None

    async def allocate(self, host: Host, obj: dict[str, Any]) -> dict[str, Any]:
        """The Service with its cluster IP and nodePorts: the ones it asks for if free, else
        allocated from --service-cluster-ip-range and --service-node-port-range (the others'
        are what the stored Services hold). Callers hold the allocation lock until the write."""
        meta, spec = obj["metadata"], obj["spec"]
        ips: set[str] = set()
        ports: set[int] = set()
        for other in (await host.store.list("services"))[0]:
            if (other["metadata"]["namespace"], other["metadata"]["name"]) == (meta["namespace"], meta["name"]):
                continue
            ips.update(ip for ip in other["spec"].get("clusterIPs", []) if ip != HEADLESS)
            ports.update(p["nodePort"] for p in other["spec"].get("ports", []) if p.get("nodePort"))
        errors: list[FieldError] = []
        ranges = host.service_ranges
        if spec.get("clusterIP") != HEADLESS:
            try:
                ip = allocate_ip(ranges.cluster_ip_range, ips, spec.get("clusterIP"))
                spec["clusterIP"], spec["clusterIPs"] = ip, [ip]
                spec.setdefault("ipFamilies", ["IPv4"])
                spec.setdefault("ipFamilyPolicy", "SingleStack")
            except AllocationError as exc:
                errors.append(FieldError("spec.clusterIPs", spec.get("clusterIPs"), f"Invalid value: {exc}"))
        if spec.get("type") == "NodePort":
            for i, port in enumerate(spec.get("ports", [])):
                try:
                    port["nodePort"] = allocate_node_port(ranges.node_ports, ports, port.get("nodePort"))
                    ports.add(port["nodePort"])
                except AllocationError as exc:
                    errors.append(FieldError(f"spec.ports[{i}].nodePort", port.get("nodePort"),
                                             f"Invalid value: {exc}"))
        if errors:
            raise ObjectInvalid("Service", meta["name"], errors)
        return obj
