"""The object model: core/v1 types, their JSON form, defaulting and validation.

The models are loaded when first named (`from podbay.api import Pod`), not when a light
submodule (errors, jsonpath, quantity) is imported: the command line's read-only verbs use
those alone and would otherwise pay for every pydantic model class at each start."""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from podbay.api.base import now as now
    from podbay.api.models import *  # noqa: F403 - the models are this package's vocabulary
else:
    def __getattr__(name: str) -> Any:
        if name[:1].islower() and name != "now":
            # A submodule (`from podbay.api import errors`): the import system loads it next.
            raise AttributeError(name)
        # import_module, not `from podbay.api import ...`, which would ask this hook again.
        module = importlib.import_module("podbay.api.base" if name == "now" else "podbay.api.models")
        try:
            return getattr(module, name)
        except AttributeError:
            raise AttributeError(f"module 'podbay.api' has no attribute {name!r}") from None
