"""What each pod volume is on this node: emptyDir and hostPath as they are, and the
files of configMap, secret and downwardAPI volumes read from the API (the kubelet's
volume plugins for those kinds)."""
from __future__ import annotations

import base64

from podbay.agent.envvars import EnvError, PodFacts, field_ref_value, resource_field_value
from podbay.api import ConfigMap, KeyToPath, Pod, Secret
from podbay.api.errors import NotFound
from podbay.api.quantity import parse_quantity
from podbay.client.client import Client
from podbay.runtime.volumes import EmptyDir, Files, HostPath, VolumeError, VolumeSource

DEFAULT_MODE = 0o644


def _select(data: dict[str, bytes], items: list[KeyToPath], default_mode: int, what: str,
            optional: bool) -> dict[str, tuple[bytes, int]]:
    if not items:
        return {key: (value, default_mode) for key, value in data.items()}
    out = {}
    for item in items:
        if item.key not in data:
            if optional:
                continue
            raise VolumeError(f'{what}: key "{item.key}" not found')
        out[item.path] = (data[item.key], item.mode if item.mode is not None else default_mode)
    return out


def _keyed(values: dict[str, str]) -> bytes:
    """Labels and annotations as the downward API writes them: `key="value"` lines, sorted."""
    return "\n".join(f'{k}="{v}"' for k, v in sorted(values.items())).encode()


def _required(name: str | None, what: str) -> str:
    if not name:  # Kubernetes requires it (a request for "" would read the collection)
        raise VolumeError(f"{what}: name: Required value")
    return name


async def volume_sources(client: Client, pod: Pod, facts: PodFacts) -> dict[str, VolumeSource]:
    ns = pod.metadata.namespace or "default"
    out: dict[str, VolumeSource] = {}
    for v in pod.spec.volumes:
        if v.host_path is not None:
            out[v.name] = HostPath(v.host_path.path, v.host_path.type or "")
        elif v.empty_dir is not None:
            limit = v.empty_dir.size_limit
            out[v.name] = EmptyDir(v.empty_dir.medium or "", int(parse_quantity(limit)) if limit else None)
        elif v.config_map is not None:
            src = v.config_map
            what = f'configmap "{src.name}"'
            try:
                cm = await client.get(ConfigMap, _required(src.name, what), ns)
                data = {k: val.encode() for k, val in cm.data.items()}
                data |= {k: base64.b64decode(val) for k, val in cm.binary_data.items()}
            except NotFound:
                if not src.optional:
                    raise VolumeError(f"{what} not found") from None
                data = {}
            out[v.name] = Files(_select(data, src.items, src.default_mode or DEFAULT_MODE, what, bool(src.optional)))
        elif v.secret is not None:
            sec = v.secret
            what = f'secret "{sec.secret_name}"'
            try:
                secret = await client.get(Secret, _required(sec.secret_name, what), ns)
                data = {k: base64.b64decode(val) for k, val in secret.data.items()}
                data |= {k: val.encode() for k, val in secret.string_data.items()}
            except NotFound:
                if not sec.optional:
                    raise VolumeError(f"{what} not found") from None
                data = {}
            files = _select(data, sec.items, sec.default_mode or DEFAULT_MODE, what, bool(sec.optional))
            out[v.name] = Files(files, medium="Memory")
        elif v.downward_api is not None:
            files = {}
            mode = v.downward_api.default_mode or DEFAULT_MODE
            for item in v.downward_api.items:
                try:
                    if item.field_ref is not None:
                        path = item.field_ref.field_path
                        if path in ("metadata.labels", "metadata.annotations"):
                            value = _keyed(pod.metadata.labels if path == "metadata.labels"
                                           else pod.metadata.annotations)
                        else:
                            value = field_ref_value(pod, path, facts).encode()
                    elif item.resource_field_ref is not None:
                        ref = item.resource_field_ref
                        container = next((c for c in pod.spec.containers if c.name == ref.container_name), None)
                        if container is None:
                            raise VolumeError(f"downwardAPI {item.path}: container {ref.container_name!r} not found")
                        value = resource_field_value(container, ref.resource, ref.divisor, facts).encode()
                    else:
                        continue
                except EnvError as exc:
                    raise VolumeError(f"downwardAPI {item.path}: {exc}") from None
                files[item.path] = (value, item.mode if item.mode is not None else mode)
            out[v.name] = Files(files)
    return out
