"""The registry's delete, as kube-apiserver's generic Store and rest.BeforeDelete do it: the
options and preconditions, graceful deletion (deletionTimestamp and a grace period),
finalizers (the garbage collector's included) holding an object, and the write that removes
the last finalizer deleting it."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from podbay.api.base import rfc3339
from podbay.api.errors import Conflict, FieldError, NotFound
from podbay.api.kinds import ResourceInfo
from podbay.api.owners import PROPAGATION_POLICIES, PropagationPolicy, deletion_finalizers
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import Host, Strategy, strategy_for

MAX_RETRIES = 16


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    propagation_policy: PropagationPolicy | None = None
    orphan_dependents: bool | None = None


async def delete(host: Host, info: ResourceInfo, namespace: str, name: str,
                 options: DeleteOptions) -> dict[str, Any]:
    """Deletes now, or (pods on a node, finalizers) marks for deletion; the object as last stored."""
    resource = info.name
    strategy = strategy_for(resource)
    ns = namespace if info.namespaced else ""
    _validate_delete_options(options)
    strategy.check_delete(name)
    for _ in range(MAX_RETRIES):
        obj = await host.store.get(resource, ns, name)
        meta = obj["metadata"]
        _check_delete_preconditions(resource, name, meta, options)
        if options.dry_run:
            # Everything but the write: the object as the delete would leave it.
            grace = strategy.check_graceful_delete(obj, options.grace_period_seconds)
            if grace == 0 and not meta.get("finalizers"):
                return obj
            # A real delete bumps the generation of an object deleted gracefully (see below).
            return mark_deleting(obj, grace, strategy.graceful, host.clock)
        own = await strategy.delete(host, obj)
        if own is not None:
            if own.obj is not None:
                return own.obj
            continue
        grace = strategy.check_graceful_delete(obj, options.grace_period_seconds)
        finalizers = deletion_finalizers(list(meta.get("finalizers", [])), info.default_propagation,
                                         options.propagation_policy, options.orphan_dependents)
        if grace == 0 and not finalizers:
            gone = await _delete_now(host, strategy, resource, ns, name, obj)
            if gone is None:
                continue
            return gone
        marked = mark_deleting(obj, grace, strategy.graceful, host.clock)
        if finalizers:
            marked["metadata"]["finalizers"] = finalizers
        else:
            marked["metadata"].pop("finalizers", None)
        if marked == obj:
            return obj
        try:
            return await host.store.update(resource, ns, name, marked, expected_rv=meta["resourceVersion"])
        except Conflict:
            continue
    raise Conflict(f'Operation cannot be fulfilled on {resource} "{name}": too many concurrent updates',
                   kind=resource, name=name)


async def _delete_now(host: Host, strategy: Strategy, resource: str, ns: str, name: str,
                      obj: dict[str, Any]) -> dict[str, Any] | None:
    """Removes the object (None: a concurrent write, start again)."""
    expected = obj["metadata"]["resourceVersion"]
    if strategy.marks_before_forced_delete(obj):
        try:
            expected = (await host.store.update(resource, ns, name, mark_deleting(obj, 0, True, host.clock),
                                                expected_rv=expected))["metadata"]["resourceVersion"]
        except Conflict:
            return None
    try:
        gone = await host.store.delete(resource, ns, name, expected_rv=expected)
    except Conflict:
        return None
    await strategy.after_delete(host, gone)
    return gone


def mark_deleting(obj: dict[str, Any], grace: int, bump_generation: bool,
                  clock: Callable[[], datetime]) -> dict[str, Any]:
    """deletionTimestamp and the grace period; a graceful (pod) deletion is a new generation, a
    deletion held only by finalizers is not (BeforeDelete vs. markAsDeleting)."""
    obj = copy.deepcopy(obj)
    meta = obj["metadata"]
    if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == grace:
        return obj
    meta["deletionTimestamp"] = rfc3339(clock() + timedelta(seconds=grace))
    meta["deletionGracePeriodSeconds"] = grace
    if "generation" in meta and bump_generation:
        meta["generation"] += 1
    return obj


async def collect_finalized(host: Host, info: ResourceInfo, stored: dict[str, Any]) -> None:
    """An object whose deletion is due and which no longer holds finalizers goes (the last
    finalizer's removal deletes it)."""
    meta = stored["metadata"]
    strategy = strategy_for(info.name)
    if (
        strategy.collects_finalized
        and meta.get("deletionTimestamp")
        and meta.get("deletionGracePeriodSeconds") == 0
        and not meta.get("finalizers")
    ):
        try:
            await host.store.delete(info.name, meta.get("namespace", ""), meta["name"], expected_uid=meta["uid"])
        except (NotFound, Conflict):
            return
        await strategy.after_delete(host, stored)


def _validate_delete_options(options: DeleteOptions) -> None:
    if options.grace_period_seconds is not None and options.grace_period_seconds < 0:
        raise ObjectInvalid(
            "DeleteOptions", "", [FieldError("gracePeriodSeconds", options.grace_period_seconds,
                                             "Invalid value: must be >= 0")]
        )
    if options.orphan_dependents is not None and options.propagation_policy is not None:
        raise ObjectInvalid("DeleteOptions", "", [FieldError(
            "propagationPolicy", options.propagation_policy,
            "Invalid value: orphanDependents and deletionPropagation cannot be both set")])
    if options.propagation_policy is not None and options.propagation_policy not in PROPAGATION_POLICIES:
        raise ObjectInvalid("DeleteOptions", "", [FieldError(
            "propagationPolicy", options.propagation_policy,
            "Unsupported value: supported values: " + ", ".join(f'"{p}"' for p in PROPAGATION_POLICIES))])


def _check_delete_preconditions(resource: str, name: str, meta: dict[str, Any], options: DeleteOptions) -> None:
    if options.precondition_uid and meta.get("uid") != options.precondition_uid:
        raise Conflict(
            f'Operation cannot be fulfilled on {resource} "{name}": Precondition failed: UID in '
            f"precondition: {options.precondition_uid}, UID in object meta: {meta.get('uid', '')}",
            kind=resource, name=name,
        )
    if options.precondition_rv and meta["resourceVersion"] != options.precondition_rv:
        raise Conflict(
            f'Operation cannot be fulfilled on {resource} "{name}": Precondition failed: '
            f"ResourceVersion in precondition: {options.precondition_rv}, "
            f"ResourceVersion in object meta: {meta['resourceVersion']}",
            kind=resource, name=name,
        )
