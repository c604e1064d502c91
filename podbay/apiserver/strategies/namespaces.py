"""pkg/registry/core/namespace: a namespace's name is a DNS label, it is created Active, the
system ones stay, and deleting one with pods turns it Terminating until its last pod goes."""
from __future__ import annotations

import copy
import re
from typing import Any

from podbay.api.base import rfc3339
from podbay.api.errors import Conflict, FieldError, Forbidden, NotFound
from podbay.api.kinds import ResourceInfo
from podbay.apiserver.strategies.base import Deleted, Host, Strategy
from podbay.store.base import Store

SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class NamespaceStrategy(Strategy):
    # A namespace goes when its content has gone (`finish_namespace`), not on a write.
    collects_finalized = False

    def validate_name(self, name: str) -> list[FieldError]:
        if _DNS_LABEL.match(name) and len(name) <= 63:
            return []
        return [FieldError("metadata.name", name, "Invalid value: a lowercase RFC 1123 label must consist of "
                           "lower case alphanumeric characters or '-', and must start and end with an "
                           "alphanumeric character")]

    def prepare_for_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        obj.setdefault("spec", {})
        obj["status"] = {"phase": "Active"}

    def check_delete(self, name: str) -> None:
        if name in SYSTEM_NAMESPACES[:3]:
            raise Forbidden(f'namespaces "{name}" is forbidden: this namespace may not be deleted',
                            kind="namespaces", name=name)

    async def delete(self, host: Host, obj: dict[str, Any]) -> Deleted | None:
        """Empty namespaces go at once; others turn Terminating, their pods are
        deleted, and the last pod to go takes the namespace with it."""
        store, name, rv = host.store, obj["metadata"]["name"], obj["metadata"]["resourceVersion"]
        # Events go, and the workloads before their pods: they would make new ones.
        for resource in ("events", "deployments", "replicasets", "replicationcontrollers", "jobs"):
            for item in (await store.list(resource, name))[0]:
                try:
                    await store.delete(resource, name, item["metadata"]["name"])
                except NotFound:
                    pass
        pods = (await store.list("pods", name))[0]
        if not pods:
            try:
                return Deleted(await store.delete("namespaces", "", name, expected_rv=rv))
            except Conflict:
                return Deleted(None)
        if not obj["metadata"].get("deletionTimestamp"):
            marked = copy.deepcopy(obj)
            marked["metadata"]["deletionTimestamp"] = rfc3339(host.clock())
            marked["status"] = {"phase": "Terminating"}
            try:
                obj = await store.update("namespaces", "", name, marked, expected_rv=rv)
            except Conflict:
                return Deleted(None)
        for pod in pods:
            try:
                await host.delete("pods", name, pod["metadata"]["name"])
            except NotFound:
                pass
        await finish_namespace(store, name)
        return Deleted(obj)


async def finish_namespace(store: Store, name: str) -> None:
    """Removes a Terminating namespace once its last pod is gone."""
    try:
        ns_obj = await store.get("namespaces", "", name)
    except NotFound:
        return
    if not ns_obj["metadata"].get("deletionTimestamp") or (await store.list("pods", name))[0]:
        return
    try:
        await store.delete("namespaces", "", name, expected_rv=ns_obj["metadata"]["resourceVersion"])
    except (NotFound, Conflict):
        pass
