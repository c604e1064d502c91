"""`to_dict` reads a model's fields from the instance's dict: the JSON it gives is byte for byte the
one a walk of the model's declared fields gives (the same keys, in the same order), for models
decoded, defaulted, copied with updates, built with model_construct and changed by assignment."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import BaseModel

from podbay.api import Container, Pod
from podbay.api.defaults import default_pod
from podbay.api.formats import load_objects
from podbay.api.serialize import from_dict, to_dict
from tests.api.example_files import example_files, example_pods


def declared_order(obj: BaseModel) -> dict[str, Any]:
    """The walk `to_dict` did before: every declared field, by getattr."""
    out: dict[str, Any] = {}
    for name, info in type(obj).model_fields.items():
        value = getattr(obj, name)
        if value is None or (isinstance(value, (list, dict)) and not value):
            continue
        if isinstance(value, BaseModel):
            value = declared_order(value)
        elif isinstance(value, list):
            value = [declared_order(v) if isinstance(v, BaseModel) else v for v in value]
        elif isinstance(value, dict):
            value = {k: declared_order(v) if isinstance(v, BaseModel) else v for k, v in value.items()}
        elif not isinstance(value, (str, int, float, bool)):
            value = obj.__pydantic_serializer__.to_python(obj, include={name}, mode="json")[name]
        out[info.alias or name] = value
    return out


def _same_bytes(model: BaseModel) -> None:
    assert orjson.dumps(to_dict(model)) == orjson.dumps(declared_order(model))


@pytest.mark.parametrize("path", example_files(), ids=lambda p: p.name)
def test_examples_serialise_in_declared_order(path: Path) -> None:
    objs: list[object] = list(load_objects(path.read_text(), str(path)))
    for pod in example_pods(objs):
        _same_bytes(pod)
        defaulted = default_pod(pod)
        _same_bytes(defaulted)
        # Assignment and copies with updates, as the agent's status writes and the defaults make them.
        defaulted.spec.node_name = "node-1"
        defaulted.spec.containers[0].image = "busybox:1.36"
        _same_bytes(defaulted)
        _same_bytes(defaulted.model_copy(update={"status": defaulted.status.model_copy(update={"phase": "Running"})}))
        _same_bytes(from_dict(Pod, to_dict(defaulted)))


def test_constructed_models_serialise_in_declared_order() -> None:
    # Keyword order unlike the declaration's.
    _same_bytes(Container.model_construct(working_dir="/w", image="busybox:1.35", name="c", args=["a"]))
    _same_bytes(Container(working_dir="/w", image="busybox:1.35", name="c"))
