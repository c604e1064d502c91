"""Typed access to the metadata the API server guarantees on every object it has stored.

`ObjectMeta.name` and `.uid` are optional in the model because a request may leave them out
(generateName, a create before the server assigns a uid), but every object read back from the
API server or its store has both. Code that keys on them uses these accessors instead of
carrying `str | None` around.
"""
from __future__ import annotations

from typing import Protocol

from podbay.api.models import ObjectMeta


class _Stored(Protocol):
    @property
    def metadata(self) -> ObjectMeta: ...


def name_of(obj: _Stored) -> str:
    """metadata.name of an object read from the API server (always set there)."""
    name = obj.metadata.name
    if name is None:
        raise ValueError(f"{type(obj).__name__} without metadata.name: not an object the API server stored")
    return name


def uid_of(obj: _Stored) -> str:
    """metadata.uid of an object read from the API server (always set there)."""
    uid = obj.metadata.uid
    if uid is None:
        raise ValueError(f"{type(obj).__name__} {obj.metadata.name!r} without metadata.uid: "
                         "not an object the API server stored")
    return uid
