"""Reading objects from files: v1 YAML/JSON (multi-document, `List`s), the legacy
v1beta1 pod and HyperContainer pod files, all turned into v1 objects.

v1beta1 (`id`, `desiredState.manifest`, `labels`): id -> metadata.name,
manifest.containers/volumes/restartPolicy -> spec; a volume's `source.emptyDir`
or `source.hostDir.path` -> emptyDir / hostPath.

HyperContainer pod file (`id`, `containers`, `resource`, `volumes`, `portmappings`,
`hostname`, `tty`, `restartPolicy`): id -> metadata.name; each container's image,
command (its first word the command, the rest args; with `entryPoint`, that is the
command and `command` the args), workdir -> workingDir, envs [{env, value}] -> env,
ports [{containerPort, hostPort, protocol}], volumes [{volume, path, readOnly}]
-> volumeMounts; the pod's `portmappings` go to the first container (all share the
pod's IP); `resource.vcpu` and `resource.memory` (MiB) are the pod's whole budget,
given to the first container as limits; pod volumes with a `source` path ->
hostPath, without one -> emptyDir (`format` and `driver` are storage details with
no Pod equivalent and are not needed). A container's `files` has no equivalent
and is refused with a message.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from podbay.api.apps import Deployment, ReplicaSet, ReplicationController
from podbay.api.batch import Job
from podbay.api.errors import FieldError, Invalid
from podbay.api.models import ConfigMap, Namespace, Node, Pod, Secret
from podbay.api.serialize import from_dict, to_dict
from podbay.api.services import Service

KINDS: dict[str, type[BaseModel]] = {"Pod": Pod, "ConfigMap": ConfigMap, "Secret": Secret, "Namespace": Namespace,
                                     "Node": Node, "Service": Service, "ReplicaSet": ReplicaSet, "Deployment": Deployment,
                                     "ReplicationController": ReplicationController, "Job": Job}
_NAME = re.compile(r"[^a-z0-9-]+")


def _documents(text: str, source: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(text)
            return data if isinstance(data, list) else [data]
        except ValueError:
            pass  # YAML is a superset of JSON's syntax: let it report the error
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        raise Invalid([FieldError(source, None, f"not valid YAML or JSON: {exc}")]) from None


def load_objects(text: str, source: str = "<stdin>", *, strict: bool = True) -> list[BaseModel]:
    """Every object in the text; errors name the document and field. `strict` refuses unknown
    fields (kubectl's --validate=strict); without it they are dropped."""
    docs = _documents(text, source)
    names = [source] if len(docs) == 1 else [f"{source}#{i}" for i in range(1, len(docs) + 1)]
    return _decode_each(docs, [f"{n}: " for n in names], strict)


def _decode_each(docs: list[Any], prefixes: list[str], strict: bool) -> list[BaseModel]:
    """Every document decoded; all their errors together, each path prefixed with its place."""
    out: list[BaseModel] = []
    errors: list[FieldError] = []
    for doc, prefix in zip(docs, prefixes):
        try:
            out += _decode(doc, strict)
        except Invalid as exc:
            errors += [FieldError(f"{prefix}{e.path}", e.value, e.message) for e in exc.errors]
    if errors:
        raise Invalid(errors)
    return out


def _decode(doc: Any, strict: bool = True) -> list[BaseModel]:
    if not isinstance(doc, dict):
        raise Invalid([FieldError("<root>", None, "must be an object")])
    kind, version = doc.get("kind"), doc.get("apiVersion")
    for field, value in (("kind", kind), ("apiVersion", version)):
        if value is not None and not isinstance(value, str):
            raise Invalid([FieldError(field, None, f"must be a string, got {type(value).__name__}")])
    if kind in ("List", "PodList") or (kind is None and "items" in doc):
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise Invalid([FieldError("items", None, f"must be a list, got {type(items).__name__}")])
        return _decode_each(items, [f"items[{i}]." for i in range(len(items))], strict)
    if version == "v1beta1" or "desiredState" in doc:
        return [from_dict(Pod, from_v1beta1(doc))]
    if kind is None and "containers" in doc and "id" in doc:
        return [from_dict(Pod, from_hyper(doc))]
    model = KINDS.get(kind or "")
    if model is None:
        raise Invalid([FieldError("kind", kind, "Unsupported value: podbay runs Pods (with the ConfigMaps, "
                                  "Secrets and Namespaces they use); supported kinds: "
                                  + ", ".join(f'"{k}"' for k in KINDS) + ", List, v1beta1 Pod, Hyper pod file")])
    served = model.model_fields["api_version"].default  # apps/v1 for a Deployment, ...
    if served != "v1" and version not in (None, served):
        raise Invalid([FieldError("apiVersion", version, f'Unsupported value: supported values: "{served}"')])
    if served == "v1" and version not in (None, "v1"):
        raise Invalid([FieldError("apiVersion", version, 'Unsupported value: supported values: "v1", "v1beta1"')])
    return [from_dict(model, doc, strict=strict)]


def load_pods(text_or_path: str | Path, *, strict: bool = True) -> list[Pod]:
    """The pods in a file (a Path, or a string naming an existing file) or in the text itself."""
    if isinstance(text_or_path, Path) or ("\n" not in text_or_path and Path(text_or_path).is_file()):
        path = Path(text_or_path)
        objs = load_objects(path.read_text(), str(path), strict=strict)
    else:
        objs = load_objects(text_or_path, strict=strict)
    return [o for o in objs if isinstance(o, Pod)]


def from_v1beta1(doc: dict[str, Any]) -> dict[str, Any]:
    manifest = (doc.get("desiredState") or {}).get("manifest")
    if not isinstance(manifest, dict):
        raise Invalid([FieldError("desiredState.manifest", None, "Required value: a v1beta1 pod needs a manifest")])
    spec: dict[str, Any] = {"containers": []}
    for c in manifest.get("containers") or []:
        container = {k: v for k, v in c.items() if k in ("name", "image", "command", "args", "workingDir", "ports",
                                                          "env", "volumeMounts", "imagePullPolicy")}
        container["volumeMounts"] = [{"name": m.get("name"), "mountPath": m.get("mountPath") or m.get("path"),
                                      **({"readOnly": True} if m.get("readOnly") else {})}
                                     for m in c.get("volumeMounts") or []]
        spec["containers"].append({k: v for k, v in container.items() if v not in (None, [])})
    volumes = []
    for v in manifest.get("volumes") or []:
        source = v.get("source") or {}
        if (source.get("hostDir") or {}).get("path"):
            volumes.append({"name": v.get("name"), "hostPath": {"path": source["hostDir"]["path"]}})
        else:
            volumes.append({"name": v.get("name"), "emptyDir": {}})
    if volumes:
        spec["volumes"] = volumes
    policy = manifest.get("restartPolicy")
    if isinstance(policy, dict) and policy:
        spec["restartPolicy"] = {"always": "Always", "onFailure": "OnFailure", "never": "Never"}.get(
            next(iter(policy)), "Always")
    meta: dict[str, Any] = {"name": doc.get("id") or manifest.get("id")}
    if doc.get("labels"):
        meta["labels"] = doc["labels"]
    if doc.get("namespace"):
        meta["namespace"] = doc["namespace"]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def from_hyper(doc: dict[str, Any]) -> dict[str, Any]:
    """A Hyper pod file as a v1 Pod: its containers, then what Hyper sets for the whole pod (port
    mappings, resources, volumes, hostname, restart policy)."""
    containers = [_hyper_container(i, c, bool(doc.get("tty"))) for i, c in enumerate(doc.get("containers") or [])]
    mappings = doc.get("portmappings") or []
    if mappings and containers:
        # Hyper maps ports for the whole pod; in a Pod they belong to a container, and all share the IP.
        containers[0].setdefault("ports", []).extend(_hyper_port(p) for p in mappings)
    resource = doc.get("resource") or {}
    if containers and resource:
        limits = _hyper_limits(resource)
        if limits:
            containers[0]["resources"] = {"limits": limits}
    spec: dict[str, Any] = {"containers": containers}
    volumes = [_hyper_volume(v) for v in doc.get("volumes") or []]
    if volumes:
        spec["volumes"] = volumes
    if doc.get("hostname"):
        spec["hostname"] = doc["hostname"]
    if doc.get("restartPolicy"):
        spec["restartPolicy"] = {"always": "Always", "onfailure": "OnFailure", "never": "Never"}.get(
            str(doc["restartPolicy"]).lower(), doc["restartPolicy"])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": doc.get("id")}, "spec": spec}


def _hyper_container(i: int, c: Any, pod_tty: bool) -> dict[str, Any]:
    """One Hyper container as a Pod's: a name from its image where it has none, its command
    split into command and args (or args after its entryPoint)."""
    if not isinstance(c, dict) or not c.get("image"):
        raise Invalid([FieldError(f"containers[{i}].image", None, "Required value")])
    image = c["image"]
    name = c.get("name") or _NAME.sub("-", image.rsplit("/", 1)[-1].split(":")[0].lower()).strip("-") or f"c{i}"
    command = c.get("command") or []
    if isinstance(command, str):
        command = ["sh", "-c", command]
    container: dict[str, Any] = {"name": name, "image": image}
    if command:
        container["command"] = command[:1]
        if command[1:]:
            container["args"] = command[1:]
    entrypoint = c.get("entryPoint") or c.get("entrypoint")
    if entrypoint:
        container["command"] = [entrypoint] if isinstance(entrypoint, str) else list(entrypoint)
        if command:
            container["args"] = command
    if c.get("files"):
        raise Invalid([FieldError(f"containers[{i}].files", None, "Unsupported value: Hyper's injected "
                                  "files have no Pod equivalent; put them in a ConfigMap and mount it")])
    if c.get("workdir"):
        container["workingDir"] = c["workdir"]
    if c.get("envs"):
        container["env"] = [{"name": e.get("env"), "value": str(e.get("value", ""))} for e in c["envs"]]
    if c.get("ports"):
        container["ports"] = [_hyper_port(p) for p in c["ports"]]
    if c.get("volumes"):
        container["volumeMounts"] = [{"name": v.get("volume"), "mountPath": v.get("path"),
                                      **({"readOnly": True} if v.get("readOnly") else {})} for v in c["volumes"]]
    if c.get("tty") or pod_tty:
        container["tty"] = True
        container["stdin"] = True
    return container


def _hyper_port(p: dict[str, Any]) -> dict[str, Any]:
    """A Hyper port, a container's or the pod's port mapping, as a container port."""
    return {"containerPort": p.get("containerPort"), **({"hostPort": p["hostPort"]} if p.get("hostPort") else {}),
            **({"protocol": p["protocol"].upper()} if p.get("protocol") else {})}


def _hyper_limits(resource: dict[str, Any]) -> dict[str, str]:
    """Hyper's pod resource (vcpu, memory in MiB) as limits."""
    limits = {}
    if resource.get("vcpu"):
        limits["cpu"] = str(resource["vcpu"])
    if resource.get("memory"):
        limits["memory"] = f"{resource['memory']}Mi"
    return limits


def _hyper_volume(v: dict[str, Any]) -> dict[str, Any]:
    """A Hyper volume: a host path where it has a source, else an emptyDir."""
    if v.get("source"):
        return {"name": v.get("name"), "hostPath": {"path": v["source"]}}
    return {"name": v.get("name"), "emptyDir": {}}


def dump_objects(objs: list[BaseModel], fmt: str = "yaml") -> str:
    data = [to_dict(o) for o in objs]
    if fmt == "json":
        body: Any = data[0] if len(data) == 1 else {"apiVersion": "v1", "kind": "List", "items": data}
        return json.dumps(body, indent=2) + "\n"
    return yaml.safe_dump_all(data, sort_keys=False)
