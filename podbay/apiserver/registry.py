"""What the API does to objects, independent of HTTP: kube-apiserver's generic registry
(create, update, patch, apply, delete, list, watch, scale, binding) over a `Store` of dicts,
calling each resource's strategy (`podbay.apiserver.strategies`) for its own rules.
"""
from __future__ import annotations

import asyncio
import copy
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, AsyncIterator, Callable

from pydantic import BaseModel

from podbay.api.apps import validate_scale
from podbay.api.base import now, rfc3339
from podbay.api.errors import (
    AlreadyExists,
    BadRequest,
    Conflict,
    FieldError,
    Forbidden,
    Invalid,
    NotFound,
)
from podbay.api.kinds import ALL_RESOURCES, ResourceInfo
from podbay.api.owners import (
    PROPAGATION_POLICIES,
    PropagationPolicy,
    deletion_finalizers,
    validate_owner_references,
)
from podbay.api.serialize import from_dict, to_dict, unknown_fields
from podbay.apiserver import fieldmanager
from podbay.apiserver.fieldmanager import WriteOptions
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.apiserver.meta import object_meta as _meta
from podbay.apiserver.params import json_object, json_string
from podbay.apiserver.patch import JSON_PATCH, apply_patch
from podbay.apiserver.binding import bind_pod
from podbay.apiserver.scale import decode_scale, scale_of
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import SYSTEM_NAMESPACES, Strategy, strategy_for
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, Store, WatchEvent

log = logging.getLogger(__name__)

_MAX_UPDATE_RETRIES = 16
# Kubernetes' name generator alphabet (no vowels, no confusable digits).
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def _name_errors(strategy: Strategy, name: str) -> list[FieldError]:
    if not name:
        return [FieldError("metadata.name", "", "Required value: name or generateName is required")]
    return strategy.validate_name(name)


def _check_name(info: ResourceInfo, meta: dict[str, Any], namespace: str, name: str, required: bool) -> None:
    """kube-apiserver's checkName: the object names what the URL names. An update may leave
    the name out (the URL's is kept); a patch's result may not."""
    if (required or meta.get("name")) and meta.get("name") != name:
        raise BadRequest(f"the name of the object ({meta.get('name', '')}) does not match the name on the URL ({name})")
    if info.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
        raise BadRequest(
            f"the namespace of the object ({meta['namespace']}) does not match the namespace on the request ({namespace})"
        )


@dataclass
class DeleteOptions:
    grace_period_seconds: int | None = None
    precondition_uid: str | None = None
    precondition_rv: str | None = None
    dry_run: bool = False
    propagation_policy: PropagationPolicy | None = None
    orphan_dependents: bool | None = None


class Registry:
    def __init__(self, store: Store, clock: Callable[[], datetime] = now,
                 service_ranges: ServiceRanges | None = None) -> None:
        self.store = store
        self.clock = clock
        self.service_ranges = service_ranges or ServiceRanges()
        # Allocation reads every Service's IPs and ports, then writes: one at a time in this server.
        self._allocating = asyncio.Lock()

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def info(resource: str) -> ResourceInfo:
        try:
            return ALL_RESOURCES[resource]
        except KeyError:
            raise NotFound(f'the server could not find the requested resource ({resource})') from None

    async def ensure_system_namespaces(self) -> None:
        for name in SYSTEM_NAMESPACES:
            try:
                await self.create("namespaces", "", {"metadata": {"name": name}})
            except AlreadyExists:
                pass

    async def _check_namespace(self, namespace: str, info: ResourceInfo, name: str) -> None:
        try:
            ns = await self.store.get("namespaces", "", namespace)
        except NotFound:
            raise NotFound(f'namespaces "{namespace}" not found', kind="namespaces", name=namespace) from None
        if ns.get("metadata", {}).get("deletionTimestamp"):
            raise Forbidden(
                f'{info.name} "{name}" is forbidden: unable to create new content in namespace '
                f"{namespace} because it is being terminated",
                kind=info.name,
                name=name,
            )

    @staticmethod
    def _unknown(info: ResourceInfo, obj: dict[str, Any], options: WriteOptions | None) -> dict[str, Any]:
        """`obj` without the fields the schema does not know, as the request's fieldValidation
        says: Strict refuses them (kube's strict decoding error), Warn drops them with a warning
        each, Ignore drops them. Without options (the server's own writes): Strict."""
        unknown = unknown_fields(info.model, obj)
        if not unknown:
            return obj
        validation = options.validation if options else "Strict"
        if validation == "Strict":
            listed = ", ".join(f'unknown field "{e.path}"' for e in unknown)
            raise BadRequest(f'{info.kind} in version "{info.version}" cannot be handled as a {info.kind}: '
                             f"strict decoding error: {listed}")
        obj = copy.deepcopy(obj)  # `obj` may share parts with the stored object
        unknown_fields(info.model, obj, drop=True)
        if validation == "Warn" and options is not None:
            options.warnings += [f'unknown field "{e.path}"' for e in unknown]
        return obj

    def _normalise(self, info: ResourceInfo, obj: dict[str, Any], name: str,
                   options: WriteOptions | None = None) -> dict[str, Any]:
        """Parses through the model (unknown fields as fieldValidation says), defaults and validates."""
        return self._normalised(info, obj, name, options)[1]

    def _normalised(self, info: ResourceInfo, obj: dict[str, Any], name: str,
                    options: WriteOptions | None = None) -> tuple[BaseModel, dict[str, Any]]:
        """`_normalise`'s result and the model it was written from (defaulted and valid)."""
        if info.denied:
            group = f".{info.group}" if info.group else ""
            raise Forbidden(f'{info.name}{group} "{name}" is forbidden: {info.denied}', kind=info.name, name=name)
        obj = self._unknown(info, obj, options)
        try:
            model = from_dict(info.model, obj, strict=False)
        except Invalid as exc:
            raise ObjectInvalid(info.kind, name, list(exc.errors)) from None
        meta_errors = validate_owner_references(model.metadata)
        if meta_errors:
            raise ObjectInvalid(info.kind, name, meta_errors)
        if info.defaults is not None:
            info.defaults(model)
        if info.validate is not None:
            errors = info.validate(model)
            if errors:
                raise ObjectInvalid(info.kind, name, errors)
        strategy = strategy_for(info.name)
        strategy.default(model)
        errors = strategy.validate(model)
        if errors:
            raise ObjectInvalid(info.kind, name, errors)
        out = to_dict(model)
        out["kind"], out["apiVersion"] = info.kind, info.api_version
        return model, out

    @staticmethod
    def _check_type(info: ResourceInfo, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise BadRequest(f"the body of the request must be a {info.kind} object")
        kind, api_version = body.get("kind"), body.get("apiVersion")
        if kind not in (None, "", info.kind) or api_version not in (None, "", info.api_version):
            raise BadRequest(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json (got {api_version}/{kind}, want {info.api_version}/{info.kind})"
            )
        typed: dict[str, Any] = copy.deepcopy(body)
        typed["kind"], typed["apiVersion"] = info.kind, info.api_version
        return typed

    # -- reads -----------------------------------------------------------------

    async def get(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        self.info(resource)
        return await self.store.get(resource, namespace, name)

    async def list(self, resource: str, namespace: str | None, labels: LabelSelectorArg = None,
                   fields: FieldSelectorArg = None) -> tuple[list[dict[str, Any]], str]:
        """The objects and the revision they were read at."""
        self.info(resource)
        return await self.store.list(resource, namespace, labels, fields)

    def watch(self, resource: str, namespace: str | None, since_rv: str | None, labels: LabelSelectorArg = None,
              fields: FieldSelectorArg = None, bookmarks: bool = False) -> AsyncIterator[WatchEvent]:
        """The store's changes after `since_rv` (or from now), in revision order."""
        self.info(resource)
        return self.store.watch(resource, namespace, since_rv, labels, fields, bookmarks=bookmarks)

    # -- create ----------------------------------------------------------------

    async def create(self, resource: str, namespace: str, body: Any, options: WriteOptions | None = None,
                     applied: bool = False) -> dict[str, Any]:
        """Creates `body`; with `options`, records its manager in managedFields (unless `applied`:
        server-side apply recorded them) and may be a dry run."""
        info = self.info(resource)
        strategy = strategy_for(resource)
        obj = self._check_type(info, body)
        meta = _meta(obj)
        if info.namespaced:
            body_ns = meta.get("namespace") or namespace
            if body_ns != namespace:
                raise BadRequest(
                    "the namespace of the provided object does not match the namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
            namespace = ""
        generate = meta.get("generateName") or ""
        generated = bool(generate and not meta.get("name"))
        attempts = 8 if generated else 1
        for attempt in range(attempts):
            if generated:
                meta["name"] = generate_name(generate)
            name = meta.get("name") or ""
            errors = _name_errors(strategy, name)
            if errors:
                raise ObjectInvalid(info.kind, name or generate, errors)
            if info.namespaced:
                await self._check_namespace(namespace, info, name)
            await strategy.admit(self.store, obj, name)
            prepared = self._prepare_create(info, obj, options)
            if options is not None and not applied:
                fieldmanager.write_entries(prepared, fieldmanager.owned_by_update(
                    None, prepared, options.manager, info.api_version, rfc3339(self.clock()), None))
            if options is not None and options.dry_run:
                if await self._exists(info, namespace, name):
                    raise AlreadyExists(f'{info.name} "{name}" already exists', kind=info.name, name=name)
                return prepared
            try:
                if not strategy.allocates(None):
                    return await self.store.create(resource, namespace, prepared)
                async with self._allocating:
                    return await self.store.create(resource, namespace, await strategy.allocate(self, prepared))
            except AlreadyExists:
                if attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    async def _exists(self, info: ResourceInfo, namespace: str, name: str) -> bool:
        try:
            await self.store.get(info.name, namespace, name)
        except NotFound:
            return False
        return True

    def _prepare_create(self, info: ResourceInfo, obj: dict[str, Any],
                        options: WriteOptions | None = None) -> dict[str, Any]:
        """The object to store for `obj`, which is the caller's own copy (`_check_type`'s) and is
        changed in place: the result is a new dict, so no second copy is made here."""
        meta = obj["metadata"]
        if options is not None and "managedFields" in meta and not isinstance(meta["managedFields"], list):
            raise BadRequest("metadata.managedFields: must be a list")
        for field in ("resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink"):
            meta.pop(field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock())
        strategy = strategy_for(info.name)
        strategy.prepare_for_create(info, obj)
        model, out = self._normalised(info, obj, meta["name"], options)
        strategy.canonicalize_create(out, model)
        return out

    # -- update ----------------------------------------------------------------

    async def update(
        self, resource: str, namespace: str, name: str, body: Any, subresource: str | None = None,
        options: WriteOptions | None = None,
    ) -> dict[str, Any]:
        info = self.info(resource)
        obj = self._check_type(info, body)
        meta = _meta(obj)
        _check_name(info, meta, namespace, name, required=False)
        expected = meta.get("resourceVersion") or None
        return await self._guaranteed_update(
            info, namespace, name, lambda old: obj, subresource, expected, options
        )

    async def patch(
        self,
        resource: str,
        namespace: str,
        name: str,
        content_type: str,
        patch: Any,
        subresource: str | None = None,
        options: WriteOptions | None = None,
    ) -> dict[str, Any]:
        info = self.info(resource)
        expected = None
        if isinstance(patch, dict) and content_type != JSON_PATCH:
            # A merge patch naming a resourceVersion is a precondition on it.
            patch_meta = json_object(patch.get("metadata"), "metadata", info.kind, "v1.ObjectMeta")
            expected = json_string(patch_meta.get("resourceVersion"), "metadata.resourceVersion", "ObjectMeta") or None

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            patched = apply_patch(content_type, old, patch)
            if not isinstance(patched, dict):
                raise BadRequest("the patch must produce an object")
            obj = self._check_type(info, patched)
            _check_name(info, _meta(obj), namespace, name, required=True)
            return obj

        return await self._guaranteed_update(info, namespace, name, mutate, subresource, expected, options)

    async def apply(self, resource: str, namespace: str, name: str, body: Any, subresource: str | None,
                    options: WriteOptions) -> tuple[dict[str, Any], bool]:
        """Server-side apply (`fieldmanager.apply`): merges `body` into the object, creating it when
        absent; returns the object and whether it was created."""
        info = self.info(resource)
        applied = self._check_type(info, body)
        _check_name(info, _meta(applied), namespace, name, required=True)
        if _meta(applied).get("managedFields") is not None:
            raise BadRequest("metadata.managedFields must be nil")
        unknown = unknown_fields(info.model, applied)
        if unknown:
            # Whatever fieldValidation says: structured-merge-diff cannot type the applied configuration.
            raise BadRequest(f"failed to create typed patch object ({namespace}/{name}; {info.group}/{info.version}, "
                             f"Kind={info.kind}): " + "\n".join(f".{e.path}: field not declared in schema"
                                                                for e in unknown))
        time = rfc3339(self.clock())

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            return fieldmanager.apply(old, applied, options.manager, info.api_version, time, options.force, subresource)

        try:
            return await self._guaranteed_update(info, namespace, name, mutate, subresource, None, options,
                                                 True), False
        except NotFound as exc:
            if subresource is not None or exc.name != name:
                raise
        created = fieldmanager.apply(None, applied, options.manager, info.api_version, time, options.force)
        return await self.create(resource, namespace, created, options, applied=True), True

    async def _guaranteed_update(
        self,
        info: ResourceInfo,
        namespace: str,
        name: str,
        mutate: Callable[[dict[str, Any]], dict[str, Any]],
        subresource: str | None,
        expected_rv: str | None,
        options: WriteOptions | None = None,
        applying: bool = False,
    ) -> dict[str, Any]:
        """Read, mutate, write with the read's resourceVersion; retried on a race
        unless the client itself named the resourceVersion it expects. `mutate` builds a new
        object and never changes its argument (the result may share parts of it)."""
        ns = namespace if info.namespaced else ""
        strategy = strategy_for(info.name)
        for _ in range(_MAX_UPDATE_RETRIES):
            old = await self.store.get(info.name, ns, name)
            if expected_rv and old["metadata"]["resourceVersion"] != expected_rv:
                raise Conflict(
                    f'Operation cannot be fulfilled on {info.name} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    kind=info.name,
                    name=name,
                )
            new = strategy.prepare_for_update(mutate(old), old, subresource)
            prepared = self._prepare_update(info, new, old, subresource, options)
            if not applying and (subresource is not None or not prepared["metadata"].get("managedFields")):
                # As kube-apiserver's fieldmanager: managedFields a client sends (kubectl's migration
                # from client-side apply does) replace the live ones; none (or a subresource) keeps them.
                fieldmanager.write_entries(prepared, fieldmanager.read_entries(old))
            if _unchanged(prepared, old):
                return old
            if options is not None and not applying:
                fieldmanager.write_entries(prepared, fieldmanager.owned_by_update(
                    old, prepared, options.manager, info.api_version, rfc3339(self.clock()), subresource))
            if options is not None and options.dry_run:
                return prepared
            try:
                if strategy.allocates(subresource):
                    async with self._allocating:
                        stored = await self.store.update(info.name, ns, name, await strategy.allocate(self, prepared),
                                                         expected_rv=old["metadata"]["resourceVersion"])
                else:
                    stored = await self.store.update(
                        info.name, ns, name, prepared, expected_rv=old["metadata"]["resourceVersion"]
                    )
            except Conflict:
                if expected_rv:
                    raise
                continue
            await self._after_write(info, stored)
            return stored
        raise Conflict(
            f'Operation cannot be fulfilled on {info.name} "{name}": too many concurrent updates',
            kind=info.name,
            name=name,
        )

    def _prepare_update(
        self, info: ResourceInfo, new: dict[str, Any], old: dict[str, Any], subresource: str | None,
        options: WriteOptions | None = None,
    ) -> dict[str, Any]:
        meta, old_meta = _meta(new), old["metadata"]
        if meta.get("uid") and meta["uid"] != old_meta.get("uid"):
            # ValidateObjectMetaUpdate; an absent uid keeps the stored one, as BeforeUpdate does.
            raise ObjectInvalid(info.kind, old_meta["name"],
                                [FieldError("metadata.uid", meta["uid"], "Invalid value: field is immutable")])
        # Fields only the server sets.
        for field in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "resourceVersion"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        if subresource == "status":
            # ResetObjectMetaForStatus and the status strategies: only status changes.
            # Shared with `old` without a copy: what follows only reads it and builds anew.
            new = {**old, "status": new.get("status", {})}
        elif subresource == "ephemeralcontainers":
            # dropNonEphemeralContainerUpdates (with ResetObjectMetaForStatus): the stored pod with
            # only its ephemeral containers taken.
            given = new.get("spec")
            spec = given if isinstance(given, dict) else {}
            new = {**old, "spec": {**old.get("spec", {}),
                                                     "ephemeralContainers": spec.get("ephemeralContainers") or []}}
        elif subresource is None:
            if "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        else:
            raise NotFound(f'the server could not find the requested resource ({info.name}/{subresource})')
        name = old_meta["name"]
        out = self._normalise(info, new, name, options)
        strategy = strategy_for(info.name)
        errors = strategy.validate_update(out, old, subresource)
        if errors:
            raise ObjectInvalid(info.kind, name, errors)
        if info.validate_update is not None and subresource is None:
            errors = info.validate_update(from_dict(info.model, out, strict=False),
                                          from_dict(info.model, old, strict=False))
            if errors:
                raise ObjectInvalid(info.kind, name, errors)
        if (strategy.generation or info.generation) and subresource is None and out.get("spec") != old.get("spec"):
            out["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        return out

    async def ensure_kubernetes_service(self, endpoint: tuple[str, int] | None) -> None:
        """default/kubernetes on the range's first address, as kube-apiserver keeps it, with
        its Endpoints and EndpointSlice naming `endpoint` (this server's HTTPS address) if any."""
        service = {"metadata": {"name": "kubernetes", "labels": {"component": "apiserver", "provider": "kubernetes"}},
                   "spec": {"clusterIP": self.service_ranges.kubernetes_ip(),
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
                await self.create(resource, "default", body)
            except AlreadyExists:
                pass
            except ObjectInvalid as exc:
                # A range changed between runs: the old Service keeps its IP; said, not fatal.
                log.warning("cannot create default/kubernetes %s: %s", resource, exc)

    async def _after_write(self, info: ResourceInfo, stored: dict[str, Any]) -> None:
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
                await self.store.delete(info.name, meta.get("namespace", ""), meta["name"], expected_uid=meta["uid"])
            except (NotFound, Conflict):
                return
            await strategy.after_delete(self, stored)

    # -- scale -----------------------------------------------------------------

    async def get_scale(self, resource: str, namespace: str, name: str) -> dict[str, Any]:
        info = self.info(resource)
        return scale_of(strategy_for(info.name), await self.store.get(resource, namespace, name))

    async def update_scale(self, resource: str, namespace: str, name: str, body: Any,
                           patch_type: str | None = None) -> dict[str, Any]:
        """PUT (`patch_type` None: `body` is the Scale) or PATCH of the scale subresource: only
        spec.replicas of the object changes."""
        info = self.info(resource)
        strategy = strategy_for(resource)
        expected = None
        if patch_type is None:
            if not isinstance(body, dict):
                raise BadRequest("the body of the request must be a Scale object")
            scale_meta = json_object(body.get("metadata"), "metadata", "Scale", "v1.ObjectMeta")
            expected = json_string(scale_meta.get("resourceVersion"), "metadata.resourceVersion", "ObjectMeta") or None

        def mutate(old: dict[str, Any]) -> dict[str, Any]:
            wanted = body if patch_type is None else apply_patch(patch_type, scale_of(strategy, old), body)
            if not isinstance(wanted, dict):
                raise BadRequest("the patch must produce an object")
            scale = decode_scale(wanted, name)
            _check_name(info, {"name": scale.metadata.name or "", "namespace": scale.metadata.namespace or ""},
                        namespace, name, required=False)
            errors = validate_scale(scale)
            if errors:
                raise ObjectInvalid("Scale.autoscaling", name, errors)
            new = copy.deepcopy(old)
            new.setdefault("spec", {})["replicas"] = scale.spec.replicas or 0
            return new

        stored = await self._guaranteed_update(info, namespace, name, mutate, None, expected)
        return scale_of(strategy, stored)

    # -- binding ---------------------------------------------------------------

    async def bind(self, namespace: str, name: str, binding: Any) -> None:
        await bind_pod(self.store, self.clock, namespace, name, binding)

    # -- delete ----------------------------------------------------------------

    async def delete(
        self, resource: str, namespace: str, name: str, options: DeleteOptions | None = None
    ) -> dict[str, Any]:
        """Deletes now, or (pods on a node) marks for graceful deletion.

        Returns the object as last stored: without a deletionTimestamp-in-progress
        distinction the caller tells them apart by whether `get` still finds it."""
        info = self.info(resource)
        strategy = strategy_for(resource)
        options = options or DeleteOptions()
        ns = namespace if info.namespaced else ""
        _validate_delete_options(options)
        strategy.check_delete(name)
        for _ in range(_MAX_UPDATE_RETRIES):
            obj = await self.store.get(resource, ns, name)
            meta = obj["metadata"]
            _check_delete_preconditions(resource, name, meta, options)
            if options.dry_run:
                # Everything but the write: the object as the delete would leave it.
                grace = strategy.check_graceful_delete(obj, options.grace_period_seconds)
                if grace == 0 and not meta.get("finalizers"):
                    return obj
                # A real delete bumps the generation of an object deleted gracefully (see below).
                return self._mark_deleting(obj, grace, bump_generation=strategy.graceful)
            own = await strategy.delete(self, obj)
            if own is not None:
                if own.obj is not None:
                    return own.obj
                continue
            grace = strategy.check_graceful_delete(obj, options.grace_period_seconds)
            finalizers = deletion_finalizers(list(meta.get("finalizers", [])), info.default_propagation,
                                             options.propagation_policy, options.orphan_dependents)
            if grace == 0 and not finalizers:
                gone = await self._delete_now(strategy, resource, ns, name, obj)
                if gone is None:
                    continue
                return gone
            marked = self._mark_deleting(obj, grace, bump_generation=strategy.graceful)
            if finalizers:
                marked["metadata"]["finalizers"] = finalizers
            else:
                marked["metadata"].pop("finalizers", None)
            if marked == obj:
                return obj
            try:
                return await self.store.update(resource, ns, name, marked, expected_rv=meta["resourceVersion"])
            except Conflict:
                continue
        raise Conflict(f'Operation cannot be fulfilled on {resource} "{name}": too many concurrent updates',
                       kind=resource, name=name)

    async def _delete_now(self, strategy: Strategy, resource: str, ns: str, name: str,
                          obj: dict[str, Any]) -> dict[str, Any] | None:
        """Removes the object (None: a concurrent write, start again)."""
        expected = obj["metadata"]["resourceVersion"]
        if strategy.marks_before_forced_delete(obj):
            try:
                expected = (await self.store.update(resource, ns, name,
                                                    self._mark_deleting(obj, 0, bump_generation=True),
                                                    expected_rv=expected))["metadata"]["resourceVersion"]
            except Conflict:
                return None
        try:
            gone = await self.store.delete(resource, ns, name, expected_rv=expected)
        except Conflict:
            return None
        await strategy.after_delete(self, gone)
        return gone

    def _mark_deleting(self, obj: dict[str, Any], grace: int, bump_generation: bool) -> dict[str, Any]:
        """deletionTimestamp and the grace period; a graceful (pod) deletion is a new generation, a
        deletion held only by finalizers is not (BeforeDelete vs. markAsDeleting)."""
        obj = copy.deepcopy(obj)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp") and meta.get("deletionGracePeriodSeconds") == grace:
            return obj
        meta["deletionTimestamp"] = rfc3339(self.clock() + timedelta(seconds=grace))
        meta["deletionGracePeriodSeconds"] = grace
        if "generation" in meta and bump_generation:
            meta["generation"] += 1
        return obj


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


def _unchanged(new: dict[str, Any], old: dict[str, Any]) -> bool:
    """Whether a write changes nothing but managedFields' times: then it is not written, as
    kube-apiserver leaves an object a no-op update or apply does not change."""
    def timeless(obj: dict[str, Any]) -> dict[str, Any]:
        entries = [{k: v for k, v in e.items() if k != "time"} for e in obj["metadata"].get("managedFields", [])]
        return {**obj, "metadata": {**obj["metadata"], "managedFields": entries}}
    return new == old or timeless(new) == timeless(old)
