"""Server-side printing: the meta.k8s.io/v1 Table kubectl asks for with
`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, so `kubectl get` shows the same
columns against podbay as against a cluster (without it kubectl prints only NAME and AGE)."""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timezone
from typing import Any

from podbay.api.serialize import from_dict
from podbay.api.tables import table_of

TABLE = "application/json;as=Table;v=v1;g=meta.k8s.io"


def media_ranges(accept: str) -> list[tuple[str, dict[str, str]]]:
    """`Accept`'s media ranges in order, each with its parameters (as=, g=, v=...)."""
    ranges = []
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        ranges.append((media, dict(p.split("=", 1) for p in params if "=" in p)))
    return ranges


def wants_table(accept: str) -> bool:
    """Whether the first media type of `Accept` we serve is a Table (kubectl lists it first)."""
    for media, params in media_ranges(accept):
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
            return True
        if media in ("application/json", "application/*", "*/*") and "as" not in params:
            return False
    return False


def table(model: type, objects: list[dict[str, Any]], resource_version: str, include_object: str) -> dict[str, Any]:
    """A Table of `objects` (stored dicts of kind `model`); `include_object` is the request's
    includeObject: None, Metadata (the default) or Object."""
    columns, cells = table_of(model)
    now = datetime.now(timezone.utc)
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": cells(from_dict(model, obj, strict=False), now)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata", {})}
        rows.append(row)
    # Every Table carries its columns, watch events too: kubectl's printer picks the wide ones by them.
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {"resourceVersion": resource_version},
            "columnDefinitions": [asdict(c) for c in columns], "rows": rows}
