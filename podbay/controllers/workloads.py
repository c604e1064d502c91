"""The workload controllers kube-controller-manager runs beside pod GC and node lifecycle:
garbage collector, ReplicaSet, ReplicationController, Deployment and Job."""
from __future__ import annotations

from typing import Awaitable

from podbay.api.apps import ReplicaSet, ReplicationController
from podbay.client import Client
from podbay.controllers.deployment import DeploymentController
from podbay.controllers.garbagecollector import GarbageCollector
from podbay.controllers.job import JobController
from podbay.controllers.replicaset import ReplicaSetController


def workload_controllers(client: Client) -> list[Awaitable[None]]:
    """Each controller's loop, to run while this process leads the controllers."""
    return [
        GarbageCollector(client).run(),
        ReplicaSetController(client, ReplicaSet).run(),
        ReplicaSetController(client, ReplicationController).run(),
        DeploymentController(client).run(),
        JobController(client).run(),
    ]
