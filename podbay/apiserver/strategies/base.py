"""The hooks kube-apiserver's per-resource strategies (rest.RESTCreateStrategy,
RESTUpdateStrategy, RESTDeleteStrategy) give the generic registry; `Strategy`'s defaults are
what a kind without rules of its own gets."""
from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Protocol

from pydantic import BaseModel

from podbay.api.errors import FieldError
from podbay.api.kinds import ResourceInfo
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.store.base import Store

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


class Host(Protocol):
    """What of the registry a strategy's hooks may use."""
    store: Store
    clock: Callable[[], datetime]
    service_ranges: ServiceRanges

    async def delete(self, resource: str, namespace: str, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Deleted:
    """A strategy's own delete: the object as it leaves it, or None when a concurrent write
    means the delete must start again."""
    obj: dict[str, Any] | None


class Strategy:
    # Graceful deletion (pods): a deletion with a grace period is a new generation.
    graceful = False
    # Whether a spec change bumps metadata.generation beyond the kinds ResourceInfo.generation names.
    generation = False
    # Whether a write that leaves a deleted object with no finalizers deletes it.
    collects_finalized = True

    def validate_name(self, name: str) -> list[FieldError]:
        if _DNS_SUBDOMAIN.match(name) and len(name) <= 253:
            return []
        return [FieldError("metadata.name", name, "Invalid value: a lowercase RFC 1123 subdomain must consist of "
                           "lower case alphanumeric characters, '-' or '.', and must start and end with an "
                           "alphanumeric character")]

    async def admit(self, store: Store, obj: dict[str, Any], name: str) -> None:
        """Admission of a new object (mutating and validating), before it is prepared."""

    def prepare_for_create(self, info: ResourceInfo, obj: dict[str, Any]) -> None:
        """The server's fields of a new object, in place: status and generation."""
        if info.generation:
            obj["metadata"]["generation"] = 1
            obj["status"] = {}
        elif info.created_status is not None:
            obj["status"] = copy.deepcopy(info.created_status)

    def default(self, model: Any) -> None:
        """Defaulting of the decoded model, in place."""

    def validate(self, model: Any) -> list[FieldError]:
        return []

    def canonicalize_create(self, out: dict[str, Any], model: BaseModel) -> None:
        """Fields a new object derives from its validated, defaulted self (`out`, parsed as `model`)."""

    def prepare_for_update(self, new: dict[str, Any], old: dict[str, Any], subresource: str | None) -> dict[str, Any]:
        """`new` as the update keeps it; never changes its arguments."""
        return new

    def validate_update(self, out: dict[str, Any], old: dict[str, Any], subresource: str | None) -> list[FieldError]:
        return []

    def allocates(self, subresource: str | None) -> bool:
        """Whether the write takes shared addresses, under the registry's allocation lock."""
        return False

    async def allocate(self, host: Host, obj: dict[str, Any]) -> dict[str, Any]:
        return obj

    def check_delete(self, name: str) -> None:
        """Refuses a delete that may never happen."""

    async def delete(self, host: Host, obj: dict[str, Any]) -> Deleted | None:
        """A kind's own delete in place of the generic graceful one (None: the generic one)."""
        return None

    def check_graceful_delete(self, obj: dict[str, Any], requested: int | None) -> int:
        """The grace period a delete gives the object (0: none, it goes at once)."""
        return 0

    def marks_before_forced_delete(self, obj: dict[str, Any]) -> bool:
        """Whether a delete without grace first marks the object, for a node to see it."""
        return False

    async def after_delete(self, host: Host, obj: dict[str, Any]) -> None:
        """What the object's going leads to."""

    def scale_selector(self, spec: dict[str, Any]) -> str | None:
        """The scale subresource's selector string (None: spec.selector is a LabelSelector)."""
        return None
