"""The EndpointSlice controller against a real API server, its passes run while the watch has not
brought back what each wrote (the slice and Endpoints informers stopped, their caches as the
first pass found them): still one slice and one Endpoints per Service."""
from __future__ import annotations

import asyncio

from podbay.api.serialize import from_dict
from podbay.api.services import Endpoints, EndpointSlice, Service
from podbay.client import Client
from podbay.client.informer import SharedInformerFactory
from podbay.controllers.endpointslice import EndpointSliceController


async def test_passes_ahead_of_the_watch_make_one_slice_and_one_endpoints(client: Client) -> None:
    informers = SharedInformerFactory(client)
    try:
        controller = EndpointSliceController(client, informers)
        for informer in (controller.services, controller.pods, controller.slices, controller.endpoints):
            await informer.wait_synced()
        await client.create(from_dict(Service, {"metadata": {"name": "web", "namespace": "default"},
                                                "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while controller.services.get("default", "web") is None:
            assert loop.time() < deadline, "the Service never reached the cache"
            await asyncio.sleep(0.05)
        # From here the caches lag behind every write, as a slow watch's do.
        await controller.slices.stop()
        await controller.endpoints.stop()
        for _ in range(5):
            await controller.sync_all()
        slices, _ = await client.list(EndpointSlice, "default", label_selector="kubernetes.io/service-name=web")
        assert [len(s.endpoints) for s in slices] == [0]
        assert [e.metadata.name for e in (await client.list(Endpoints, "default"))[0]] == ["web"]
    finally:
        await informers.shutdown()
