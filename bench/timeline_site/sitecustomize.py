"""Stamps for bench/pod_timeline.py, loaded by every Python the benchmark starts (its directory is put
on PYTHONPATH): with PODBAY_TIMELINE naming a file, the hand-offs of one pod's way through the
control plane append `monotonic-seconds pid label` lines to it. The product knows nothing of this:
the wrappers are put on its functions from outside, here."""
from __future__ import annotations

import functools
import inspect
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

_PATH = os.environ.get("PODBAY_TIMELINE")


def stamp(label: str) -> None:
    if _PATH:
        # One write per line in append mode: lines from the processes do not interleave.
        with open(_PATH, "a") as out:
            out.write(f"{time.monotonic():.6f} {os.getpid()} {label}\n")


def _before(owner: Any, name: str, label: Callable[..., str | None]) -> None:
    """`owner.name` stamps `label(*args)` (unless None) before it runs."""
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            text = label(*args)
            if text is not None:
                stamp(text)
            return await original(*args, **kwargs)
        setattr(owner, name, wrapped_async)
    else:
        @functools.wraps(original)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            text = label(*args)
            if text is not None:
                stamp(text)
            return original(*args, **kwargs)
        setattr(owner, name, wrapped)


def _around(owner: Any, name: str, label: str) -> None:
    """`owner.name` stamps `begin label` and `end label` around its run (its await, for a coroutine
    function): the runtime's steps, which pod_timeline charts by the interval each spans in a pod."""
    original = getattr(owner, name)
    if inspect.iscoroutinefunction(original):
        @functools.wraps(original)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            stamp(f"begin {label}")
            try:
                return await original(*args, **kwargs)
            finally:
                stamp(f"end {label}")
        setattr(owner, name, wrapped_async)
        return

    @functools.wraps(original)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        stamp(f"begin {label}")
        try:
            return original(*args, **kwargs)
        finally:
            stamp(f"end {label}")
    setattr(owner, name, wrapped)


def _install() -> None:
    # This runs before `python -m` puts the working directory on sys.path: podbay is imported from
    # the tree this benchmark belongs to (as bench/podbay_side.py runs it), not an installed copy.
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from podbay.agent.podsync import PodSync
    from podbay.apiserver import app
    from podbay.client.client import Client
    from podbay.client.informer import SharedInformer
    from podbay.scheduler.scheduler import Scheduler
    from podbay.store.groupcommit import GroupCommitter
    from podbay.store.sqlite import SQLiteStore

    request = Client.request

    @functools.wraps(request)
    async def timed_request(self: Client, method: str, path: str, *args: Any, **kwargs: Any) -> Any:
        stamp(f"request {method} {path}")
        try:
            return await request(self, method, path, *args, **kwargs)
        finally:
            stamp(f"answered {method} {path}")
    Client.request = timed_request  # type: ignore[method-assign]

    event_writer = app._event_writer

    def timed_event_writer(request: Any, target: Any, response: Any) -> Any:
        send = event_writer(request, target, response)

        async def timed_send(type_: str, obj: dict[str, Any]) -> None:
            if target.resource == "pods":
                stamp(f"watch-sent {type_} {obj.get('metadata', {}).get('name')}")
            await send(type_, obj)
        return timed_send
    app._event_writer = timed_event_writer

    def pod_seen(informer: Any, type_: str, obj: Any) -> str | None:
        if informer.kind.__name__ != "Pod":
            return None
        return f"informer {type_} {obj.metadata.name} node={obj.spec.node_name} phase={obj.status.phase}"
    _before(SharedInformer, "_apply", pod_seen)
    _before(GroupCommitter, "_commit", lambda _self, _loop, batch: f"commit {len(batch)}")
    _before(SQLiteStore, "_committed", lambda store: f"committed {sorted(store._changed)}")
    _before(Scheduler, "schedule_one", lambda _self, pod: f"schedule {pod.metadata.name}")
    _before(PodSync, "sync_pod", lambda _self, w: f"sync {w.pod.metadata.name if w.pod else None}")
    from podbay.agent import containers as agent_containers
    from podbay.runtime import cgroups
    from podbay.runtime import containers as runtime_containers
    from podbay.runtime import hostports
    from podbay.runtime import sandboxes as runtime_sandboxes
    from podbay.runtime.network import PodNetwork
    from podbay.runtime.oci import OCIRuntime
    from podbay.runtime.records import ContainerRecord, SandboxRecord
    _around(runtime_sandboxes.Sandboxes, "run", "sandbox")
    _around(cgroups, "set_pids_limit", "sandbox-pids-limit")
    _around(runtime_sandboxes, "pin_namespaces", "sandbox-uts")
    _around(runtime_sandboxes, "write_pod_etc", "sandbox-etc")
    _around(SandboxRecord, "save", "sandbox-save")
    _around(PodNetwork, "add_port_mappings", "sandbox-ports")
    _around(hostports, "add", "sandbox-ports-restore")
    _around(ContainerRecord, "save", "container-save")
    _around(agent_containers.ContainerManager, "ensure_image", "image")
    _around(agent_containers.ContainerManager, "_create", "agent-create")
    _around(runtime_containers.Containers, "create", "runtime-create")
    _around(runtime_containers, "make_bundle", "bundle")
    if hasattr(runtime_containers.Containers, "make_rootfs_ahead"):  # not in trees before 4348144
        _around(runtime_containers.Containers, "make_rootfs_ahead", "rootfs-ahead")
    _around(OCIRuntime, "create", "conmon+crun-create")
    _around(runtime_containers.Containers, "start", "runtime-start")
    _around(OCIRuntime, "start", "crun-start")
    _around(PodSync, "_sync_probes", "probes")
    _before(PodSync, "write_status", lambda _self, w, *_: f"status {w.pod.metadata.name if w.pod else None}")


if _PATH:
    _install()
