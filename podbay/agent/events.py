"""How the kubelet names a container in an Event's involvedObject.fieldPath."""
from __future__ import annotations


def container_path(name: str, init: bool) -> str:
    return f"spec.{'initContainers' if init else 'containers'}{{{name}}}"
