"""client-go's SharedInformerFactory: one list+watch per (kind, namespace, selectors) in a process,
shared by every consumer in it. Each event is decoded once into its model and kept in one indexed
cache (by namespace, by owner UID, by node name for pods) that consumers read instead of keeping
copies of their own; consumers register add/update/delete handlers.

Objects in the cache and those handed to handlers are shared: as in client-go, nobody may change
them. A consumer that means to modify one (to send it back in an update, say) copies it first
(`model_copy(deep=True)`)."""
from __future__ import annotations

import asyncio
import builtins
import contextlib
import logging
from dataclasses import dataclass
from typing import AsyncIterator, Callable, Generic, Iterable, Mapping, Protocol, TypeVar, cast

from podbay.api.models import ObjectMeta, Pod
from podbay.client.client import Client

log = logging.getLogger(__name__)

Key = tuple[str, str]  # (namespace, name)

# Between failed attempts to list and watch again (a server that is restarting, or refusing).
_RETRY = 1.0


class Object(Protocol):
    """What informers and controllers read of any API object."""

    @property
    def metadata(self) -> ObjectMeta: ...


T = TypeVar("T", bound=Object)
T_contra = TypeVar("T_contra", bound=Object, contravariant=True)

IndexFunc = Callable[[T], Iterable[str]]

NAMESPACE_INDEX = "namespace"
OWNER_UID_INDEX = "owner-uid"
NODE_NAME_INDEX = "spec.nodeName"
UID_INDEX = "uid"


def namespace_index(obj: Object) -> Iterable[str]:
    return (obj.metadata.namespace or "",)


def owner_uid_index(obj: Object) -> Iterable[str]:
    return [ref.uid for ref in obj.metadata.owner_references if ref.uid]


def uid_index(obj: Object) -> Iterable[str]:
    return (obj.metadata.uid,) if obj.metadata.uid else ()


def node_name_index(pod: Pod) -> Iterable[str]:
    return (pod.spec.node_name,) if pod.spec.node_name else ()


def key_of(obj: Object) -> Key:
    return (obj.metadata.namespace or "", obj.metadata.name or "")


class ResourceEventHandler(Protocol[T_contra]):
    """What a consumer is told, in the order the cache changed, after the cache has changed."""

    def on_add(self, obj: T_contra) -> None: ...

    def on_update(self, old: T_contra, new: T_contra) -> None: ...

    def on_delete(self, obj: T_contra) -> None: ...


@dataclass(frozen=True)
class WatchEvents(Generic[T]):
    """A handler for a consumer written against a watch: `handle("ADDED" | "MODIFIED" | "DELETED", obj)`."""
    handle: Callable[[str, T], None]

    def on_add(self, obj: T) -> None:
        self.handle("ADDED", obj)

    def on_update(self, old: T, new: T) -> None:
        self.handle("MODIFIED", new)

    def on_delete(self, obj: T) -> None:
        self.handle("DELETED", obj)


@dataclass(frozen=True)
class EventHandlerFuncs(Generic[T]):
    """client-go's ResourceEventHandlerFuncs: a handler made of three functions."""
    add: Callable[[T], None]
    update: Callable[[T, T], None]
    delete: Callable[[T], None]

    def on_add(self, obj: T) -> None:
        self.add(obj)

    def on_update(self, old: T, new: T) -> None:
        self.update(old, new)

    def on_delete(self, obj: T) -> None:
        self.delete(obj)


class SharedInformer(Generic[T]):
    """One list+watch and its cache. The first list fills the cache (`has_synced`); the watch
    keeps it current, resuming and relisting after a 410 as `Client.watch` does; a watch that
    fails lists again and tells handlers the difference, as a reflector's relist does."""

    def __init__(self, client: Client, kind: type[T], namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None,
                 indexers: Mapping[str, IndexFunc[T]] | None = None) -> None:
        self.client, self.kind = client, kind
        self.namespace, self.label_selector, self.field_selector = namespace, label_selector, field_selector
        self._items: dict[Key, T] = {}
        self._indexers: dict[str, IndexFunc[T]] = {}
        self._indices: dict[str, dict[str, set[Key]]] = {}
        self._handlers: list[ResourceEventHandler[T]] = []
        self._synced = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # Keys changed by the watch while a check-up list is under way (None: none is).
        self._touched: set[Key] | None = None
        self._checking: asyncio.Task[None] | None = None
        self.add_indexers(indexers or {})

    # -- reading the cache --

    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def list(self) -> list[T]:
        return list(self._items.values())

    def get(self, namespace: str, name: str) -> T | None:
        return self._items.get((namespace, name))

    def by_index(self, index: str, value: str) -> builtins.list[T]:
        return [self._items[k] for k in self._indices[index].get(value, ())]

    def add_indexers(self, indexers: Mapping[str, IndexFunc[T]]) -> None:
        """More indexes, built at once over what the cache holds (a name already indexed is kept)."""
        for name, func in indexers.items():
            if name in self._indexers:
                continue
            self._indexers[name] = func
            self._indices[name] = {}
            for key, obj in self._items.items():
                self._index(name, func, key, obj)

    # -- handlers --

    def add_event_handler(self, handler: ResourceEventHandler[T]) -> None:
        """`handler` is told of every object already in the cache (on_add), then of each change."""
        self._handlers.append(handler)
        for obj in list(self._items.values()):
            self._call(handler.on_add, obj)

    def remove_event_handler(self, handler: ResourceEventHandler[T]) -> None:
        with contextlib.suppress(ValueError):
            self._handlers.remove(handler)

    @contextlib.asynccontextmanager
    async def handling(self, handler: ResourceEventHandler[T]) -> AsyncIterator[None]:
        """`handler` registered for the block: a consumer that stops (a controller losing its
        lease) is told nothing more."""
        self.add_event_handler(handler)
        try:
            yield
        finally:
            self.remove_event_handler(handler)

    async def serve(self, handler: ResourceEventHandler[T]) -> None:
        """`handler` registered until cancelled: what a consumer's watch loop was."""
        async with self.handling(handler):
            await asyncio.Future()

    # -- the list and watch --

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer {self.kind.__name__}")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, self._checking) if t is not None]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = self._checking = None

    async def _run(self) -> None:
        while True:
            try:
                items, rv = await self.client.list(self.kind, self.namespace, self.label_selector,
                                                   self.field_selector)
                self._replace(items)
                self._synced.set()
                async for type_, obj in self.client.watch(self.kind, self.namespace, resource_version=rv,
                                                          label_selector=self.label_selector,
                                                          field_selector=self.field_selector):
                    self._apply(type_, obj)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the server may be (re)starting or refusing: list again, said once per failure
                log.warning("list and watch of %s failed, starting again: %s", self.kind.__name__, exc)
                await asyncio.sleep(_RETRY)

    def _replace(self, items: builtins.list[T]) -> None:
        """The cache becomes `items`; handlers hear what differs."""
        fresh = {key_of(o): o for o in items}
        for key in [k for k in self._items if k not in fresh]:
            self._delete(key, self._items[key])
        for key, obj in fresh.items():
            self._store(key, obj)

    def _apply(self, type_: str, obj: T) -> None:
        key = key_of(obj)
        if self._touched is not None:
            self._touched.add(key)
        if type_ == "DELETED":
            if key in self._items:
                self._delete(key, obj)
            return
        if type_ == "ADDED" and key in self._items:
            # Only the watch's own relist (after a 410) adds what the cache holds. It tells of
            # objects deleted meanwhile only if the watch itself had delivered them, not those
            # from this informer's list: a list of our own finds those.
            self._check_deleted()
        self._store(key, obj)

    def _check_deleted(self) -> None:
        if self._checking is None or self._checking.done():
            self._touched = set()
            self._checking = asyncio.create_task(self._drop_deleted())

    async def _drop_deleted(self) -> None:
        """Removes what a fresh list no longer has and the watch has not changed since the list
        was asked for (what it changed, it reports itself)."""
        try:
            items, _ = await self.client.list(self.kind, self.namespace, self.label_selector, self.field_selector)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the watch's next relist asks again
            log.warning("listing %s to find deleted objects failed: %s", self.kind.__name__, exc)
            return
        finally:
            touched, self._touched = self._touched or set(), None
        listed = {key_of(o) for o in items}
        for key in [k for k in self._items if k not in listed and k not in touched]:
            self._delete(key, self._items[key])

    def _store(self, key: Key, obj: T) -> None:
        old = self._items.get(key)
        if old is not None and old.metadata.resource_version == obj.metadata.resource_version:
            return  # nothing new: the cached object (and what consumers hold of it) stays
        self._items[key] = obj
        for name, func in self._indexers.items():
            if old is not None:
                self._unindex(name, func, key, old)
            self._index(name, func, key, obj)
        for handler in list(self._handlers):
            if old is None:
                self._call(handler.on_add, obj)
            else:
                self._call(handler.on_update, old, obj)

    def _delete(self, key: Key, last: T) -> None:
        """Removes `key`; handlers get `last`, the object as its deletion showed it."""
        old = self._items.pop(key)
        for name, func in self._indexers.items():
            self._unindex(name, func, key, old)
        for handler in list(self._handlers):
            self._call(handler.on_delete, last)

    def _index(self, name: str, func: IndexFunc[T], key: Key, obj: T) -> None:
        index = self._indices[name]
        for value in func(obj):
            index.setdefault(value, set()).add(key)

    def _unindex(self, name: str, func: IndexFunc[T], key: Key, obj: T) -> None:
        index = self._indices[name]
        for value in func(obj):
            keys = index.get(value)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[value]

    def _call(self, method: Callable[..., None], *objs: T) -> None:
        # One consumer's failure must not keep the others (or the cache) from the next event.
        try:
            method(*objs)
        except Exception:
            log.exception("an event handler of %s failed", self.kind.__name__)


class PodSource(Protocol):
    """What the agent reads its node's pods from: its own node-filtered informer, or a `NodePods`
    view of the process's informer of all pods."""

    async def wait_synced(self) -> None: ...

    def list(self) -> builtins.list[Pod]: ...

    async def serve(self, handler: ResourceEventHandler[Pod]) -> None: ...


class NodePods:
    """The pods bound to one node as a `spec.nodeName=NODE` field-selected watch shows them, read
    from an informer of all pods: a process that already holds every pod (the all-in-one) keeps
    no second decoded copy of its node's pods. A pod enters the view when it is bound (an add, as
    the filtered watch's ADDED) and leaves it when deleted; spec.nodeName does not change once set."""

    def __init__(self, pods: SharedInformer[Pod], node_name: str) -> None:
        self.pods, self.node_name = pods, node_name  # `pods` has the node-name index: every pod informer does

    async def wait_synced(self) -> None:
        await self.pods.wait_synced()

    def list(self) -> builtins.list[Pod]:
        return self.pods.by_index(NODE_NAME_INDEX, self.node_name)

    async def serve(self, handler: ResourceEventHandler[Pod]) -> None:
        await self.pods.serve(_OnNode(handler, self.node_name))


@dataclass(frozen=True)
class _OnNode:
    """Passes on the events of pods bound to `node_name`, in a filtered watch's terms."""
    handler: ResourceEventHandler[Pod]
    node_name: str

    def _on(self, pod: Pod) -> bool:
        return pod.spec.node_name == self.node_name

    def on_add(self, obj: Pod) -> None:
        if self._on(obj):
            self.handler.on_add(obj)

    def on_update(self, old: Pod, new: Pod) -> None:
        if self._on(new):
            if self._on(old):
                self.handler.on_update(old, new)
            else:
                self.handler.on_add(new)
        elif self._on(old):
            self.handler.on_delete(old)

    def on_delete(self, obj: Pod) -> None:
        if self._on(obj):
            self.handler.on_delete(obj)


def _default_indexers(kind: type[T]) -> dict[str, IndexFunc[T]]:
    indexers: dict[str, IndexFunc[T]] = {NAMESPACE_INDEX: namespace_index, OWNER_UID_INDEX: owner_uid_index}
    if kind is Pod:
        indexers[NODE_NAME_INDEX] = cast("IndexFunc[T]", node_name_index)
    return indexers


class SharedInformerFactory:
    """The informers of one process, one per (kind, namespace, label selector, field selector),
    each started when first asked for and stopped by `shutdown`."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self._informers: dict[tuple[type[Object], str | None, str | None, str | None], SharedInformer[Object]] = {}

    def informer(self, kind: type[T], namespace: str | None = None, label_selector: str | None = None,
                 field_selector: str | None = None) -> SharedInformer[T]:
        """The running informer of `kind` (all namespaces when `namespace` is None), made and
        started on the first call."""
        key = (cast("type[Object]", kind), namespace, label_selector or None, field_selector or None)
        informer = self._informers.get(key)
        if informer is None:
            made = SharedInformer(self.client, kind, namespace, label_selector, field_selector,
                                  _default_indexers(kind))
            made.start()
            informer = self._informers[key] = cast("SharedInformer[Object]", made)
        return cast("SharedInformer[T]", informer)

    async def shutdown(self) -> None:
        informers = list(self._informers.values())
        self._informers.clear()
        await asyncio.gather(*(i.stop() for i in informers))
