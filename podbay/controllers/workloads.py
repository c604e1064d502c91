"""The workload controllers kube-controller-manager runs beside pod GC and node lifecycle:
garbage collector, ReplicaSet, ReplicationController, Deployment and Job."""
from __future__ import annotations

from typing import Awaitable

from podbay.api.apps import ReplicaSet, ReplicationController
from podbay.client import Client
from podbay.client.informer import SharedInformerFactory
from podbay.controllers.deployment import DeploymentController
from podbay.controllers.garbagecollector import GarbageCollector
from podbay.controllers.job import JobController
from podbay.controllers.replicaset import ReplicaSetController


def workload_controllers(client: Client, informers: SharedInformerFactory) -> list[Awaitable[None]]:
    """Each controller's loop, to run while this process leads the controllers; all read the
    process's shared informers."""
    return [
        GarbageCollector(client, informers).run(),
        ReplicaSetController(client, informers, ReplicaSet).run(),
        ReplicaSetController(client, informers, ReplicationController).run(),
        DeploymentController(client, informers).run(),
        JobController(client, informers).run(),
    ]
