"""What the API does to objects, independent of HTTP: kube-apiserver's generic registry
(create, update, patch, apply, delete, list, watch, scale, binding) over a `Store` of dicts,
calling each resource's strategy (`podbay.apiserver.strategies`) for its own rules. The steps
every resource shares have their own modules, as genericregistry.Store delegates to the rest
package: `decoding` (a body made a valid object), `prepare` (BeforeCreate, BeforeUpdate) and
`deletion` (graceful deletion and finalizers).
"""
from __future__ import annotations

import asyncio
import copy
from datetime import datetime
from typing import Any, AsyncIterator, Callable

from podbay.api.apps import validate_scale
from podbay.api.base import now, rfc3339
from podbay.api.errors import AlreadyExists, BadRequest, Conflict, NotFound
from podbay.api.kinds import ALL_RESOURCES, ResourceInfo
from podbay.api.serialize import unknown_fields
from podbay.apiserver import deletion, fieldmanager
from podbay.apiserver.binding import bind_pod
from podbay.apiserver.decoding import check_name, check_type
from podbay.apiserver.deletion import MAX_RETRIES, DeleteOptions
from podbay.apiserver.fieldmanager import WriteOptions
from podbay.apiserver.ipallocator import ServiceRanges
from podbay.apiserver.meta import object_meta as _meta
from podbay.apiserver.nslifecycle import NamespaceLifecycle
from podbay.apiserver.params import json_object, json_string
from podbay.apiserver.patch import JSON_PATCH, apply_patch
from podbay.apiserver.prepare import generate_name, name_errors, prepare_create, prepare_update, unchanged
from podbay.apiserver.scale import decode_scale, scale_of
from podbay.apiserver.status import ObjectInvalid
from podbay.apiserver.strategies import strategy_for
from podbay.store.base import FieldSelectorArg, LabelSelectorArg, Store, WatchEvent


class Registry:
    def __init__(self, store: Store, clock: Callable[[], datetime] = now,
                 service_ranges: ServiceRanges | None = None) -> None:
        self.store = store
        self.clock = clock
        self.service_ranges = service_ranges or ServiceRanges()
        # Allocation reads every Service's IPs and ports, then writes: one at a time in this server.
        self._allocating = asyncio.Lock()
        # Read live until its owner starts it (make_app does): a Registry alone needs no task.
        self.namespaces = NamespaceLifecycle(store)

    # -- helpers ---------------------------------------------------------------

    @staticmethod
    def info(resource: str) -> ResourceInfo:
        try:
            return ALL_RESOURCES[resource]
        except KeyError:
            raise NotFound(f'the server could not find the requested resource ({resource})') from None

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
        obj = check_type(info, body)
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
            errors = name_errors(strategy, name)
            if errors:
                raise ObjectInvalid(info.kind, name or generate, errors)
            if info.namespaced:
                await self.namespaces.admit_create(namespace, info.name, name)
            await strategy.admit(self.store, obj, name)
            prepared = prepare_create(info, obj, self.clock, options)
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

    # -- update ----------------------------------------------------------------

    async def update(
        self, resource: str, namespace: str, name: str, body: Any, subresource: str | None = None,
        options: WriteOptions | None = None,
    ) -> dict[str, Any]:
        info = self.info(resource)
        obj = check_type(info, body)
        meta = _meta(obj)
        check_name(info, meta, namespace, name, required=False)
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
            obj = check_type(info, patched)
            check_name(info, _meta(obj), namespace, name, required=True)
            return obj

        return await self._guaranteed_update(info, namespace, name, mutate, subresource, expected, options)

    async def apply(self, resource: str, namespace: str, name: str, body: Any, subresource: str | None,
                    options: WriteOptions) -> tuple[dict[str, Any], bool]:
        """Server-side apply (`fieldmanager.apply`): merges `body` into the object, creating it when
        absent; returns the object and whether it was created."""
        info = self.info(resource)
        applied = check_type(info, body)
        check_name(info, _meta(applied), namespace, name, required=True)
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
        for _ in range(MAX_RETRIES):
            old = await self.store.get(info.name, ns, name)
            if expected_rv and old["metadata"]["resourceVersion"] != expected_rv:
                raise Conflict(
                    f'Operation cannot be fulfilled on {info.name} "{name}": the object has been modified; '
                    "please apply your changes to the latest version and try again",
                    kind=info.name,
                    name=name,
                )
            new = strategy.prepare_for_update(mutate(old), old, subresource)
            prepared = prepare_update(info, new, old, subresource, options)
            if not applying and (subresource is not None or not prepared["metadata"].get("managedFields")):
                # As kube-apiserver's fieldmanager: managedFields a client sends (kubectl's migration
                # from client-side apply does) replace the live ones; none (or a subresource) keeps them.
                fieldmanager.write_entries(prepared, fieldmanager.read_entries(old))
            if unchanged(prepared, old):
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
            await deletion.collect_finalized(self, info, stored)
            return stored
        raise Conflict(
            f'Operation cannot be fulfilled on {info.name} "{name}": too many concurrent updates',
            kind=info.name,
            name=name,
        )

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
            check_name(info, {"name": scale.metadata.name or "", "namespace": scale.metadata.namespace or ""},
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
        if resource == "namespaces":
            self.namespaces.deleting(name)
        return await deletion.delete(self, info, namespace, name, options or DeleteOptions())
