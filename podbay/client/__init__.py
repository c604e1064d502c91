"""The async API client: the only way loops and the CLI reach the API server.

`Client` is loaded when first named, so that `podbay.client.rest` (the command line's
read-only verbs) does not import aiohttp and the models."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podbay.client.client import DEFAULT_SERVER as DEFAULT_SERVER, Client as Client
else:
    def __getattr__(name: str) -> Any:
        if name in ("Client", "DEFAULT_SERVER"):
            return getattr(importlib.import_module("podbay.client.client"), name)
        raise AttributeError(f"module 'podbay.client' has no attribute {name!r}")
