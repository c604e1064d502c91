"""The typed verbs' JSON: API models to request bodies and answers back to models."""
from __future__ import annotations

from typing import Any, TypeVar, cast

from pydantic import BaseModel

from podbay.api.serialize import from_dict, to_dict

T = TypeVar("T")


def decode(kind: type[T], data: Any) -> T:
    """from_dict for the verbs' kinds. Each is an API model (a pydantic BaseModel), but T stays
    unbound: callers (the cache, the work queues) pass type variables bound to protocols."""
    return cast(T, from_dict(cast("type[BaseModel]", kind), data, strict=False))


def encode(obj: Any, kind: str | None = None) -> dict[str, Any]:
    body = to_dict(obj)
    body.setdefault("kind", kind or type(obj).__name__)
    body.setdefault("apiVersion", "v1")
    return body
