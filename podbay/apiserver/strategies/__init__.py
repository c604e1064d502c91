"""Per-resource registry strategies, by resource name (kube-apiserver's pkg/registry/<group>/<kind>/strategy.go)."""
from __future__ import annotations

from podbay.apiserver.strategies.base import Deleted, Host, Strategy
from podbay.apiserver.strategies.namespaces import SYSTEM_NAMESPACES, NamespaceStrategy
from podbay.apiserver.strategies.pods import PodStrategy
from podbay.apiserver.strategies.services import ServiceStrategy
from podbay.apiserver.strategies.small import (
    EndpointsStrategy,
    LeaseStrategy,
    ReplicationControllerStrategy,
    RuntimeClassStrategy,
)

_DEFAULT = Strategy()
STRATEGIES: dict[str, Strategy] = {
    "pods": PodStrategy(),
    "services": ServiceStrategy(),
    "namespaces": NamespaceStrategy(),
    "runtimeclasses": RuntimeClassStrategy(),
    "leases": LeaseStrategy(),
    "endpoints": EndpointsStrategy(),
    "endpointslices": EndpointsStrategy(),
    "replicationcontrollers": ReplicationControllerStrategy(),
}


def strategy_for(resource: str) -> Strategy:
    return STRATEGIES.get(resource, _DEFAULT)


__all__ = ["Deleted", "Host", "STRATEGIES", "SYSTEM_NAMESPACES", "Strategy", "strategy_for"]
