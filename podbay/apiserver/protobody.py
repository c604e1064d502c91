"""Request bodies in Kubernetes' protobuf encoding (`application/vnd.kubernetes.protobuf`).

kubectl from 1.32 on sends the objects of its typed clients (`kubectl create deployment`,
`job`, `configmap`, `secret generic`, `namespace`) as protobuf, whatever the server's discovery says, and does not retry
as JSON. This decodes those kinds into the JSON form the registry takes: the envelope
(`k8s\\0` + runtime.Unknown), then the object by the field numbers of Kubernetes'
generated.proto. A kind or a set field this table does not know is refused with 415 rather
than dropped."""
from __future__ import annotations

import base64
from datetime import datetime, timezone
from typing import Any

MAGIC = b"k8s\x00"


class Undecodable(ValueError):
    pass


# message -> field number -> (JSON name, type). Types: "string", "int", "bool", "bytes",
# "time", "map" (map<string,string>), "bytesmap" (map<string,bytes>, base64 in JSON), "quantities" (map<string,Quantity>), "[T]" a repeated
# T, or a message name. A name ending in "?" is a pointer field: kept even when zero.
_S = "string"
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "ObjectMeta": {1: ("name", _S), 2: ("generateName", _S), 3: ("namespace", _S), 4: ("selfLink", _S),
                   5: ("uid", _S), 6: ("resourceVersion", _S), 7: ("generation", "int"),
                   8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"),
                   10: ("deletionGracePeriodSeconds?", "int"), 11: ("labels", "map"),
                   12: ("annotations", "map"), 13: ("ownerReferences", "[OwnerReference]"),
                   14: ("finalizers", "[string]")},
    "OwnerReference": {1: ("kind", _S), 3: ("name", _S), 4: ("uid", _S), 5: ("apiVersion", _S),
                       6: ("controller?", "bool"), 7: ("blockOwnerDeletion?", "bool")},
    "LabelSelector": {1: ("matchLabels", "map"), 2: ("matchExpressions", "[LabelSelectorRequirement]")},
    "LabelSelectorRequirement": {1: ("key", _S), 2: ("operator", _S), 3: ("values", "[string]")},
    "Deployment": {1: ("metadata", "ObjectMeta"), 2: ("spec", "DeploymentSpec"), 3: ("status", "Empty")},
    "DeploymentSpec": {1: ("replicas?", "int"), 2: ("selector", "LabelSelector"), 3: ("template", "PodTemplateSpec"),
                       4: ("strategy", "DeploymentStrategy"), 5: ("minReadySeconds", "int"),
                       6: ("revisionHistoryLimit?", "int"), 7: ("paused", "bool"),
                       9: ("progressDeadlineSeconds?", "int")},
    "DeploymentStrategy": {1: ("type", _S), 2: ("rollingUpdate", "RollingUpdateDeployment")},
    "RollingUpdateDeployment": {1: ("maxUnavailable", "IntOrString"), 2: ("maxSurge", "IntOrString")},
    "Job": {1: ("metadata", "ObjectMeta"), 2: ("spec", "JobSpec"), 3: ("status", "Empty")},
    "JobSpec": {1: ("parallelism?", "int"), 2: ("completions?", "int"), 3: ("activeDeadlineSeconds?", "int"),
                4: ("selector", "LabelSelector"), 5: ("manualSelector?", "bool"), 6: ("template", "PodTemplateSpec"),
                7: ("backoffLimit?", "int"), 8: ("ttlSecondsAfterFinished?", "int"), 9: ("completionMode?", _S),
                10: ("suspend?", "bool"), 12: ("backoffLimitPerIndex?", "int"), 13: ("maxFailedIndexes?", "int"),
                14: ("podReplacementPolicy?", _S), 16: ("managedBy?", _S)},
    "PodTemplateSpec": {1: ("metadata", "ObjectMeta"), 2: ("spec", "PodSpec")},
    "PodSpec": {2: ("containers", "[Container]"), 3: ("restartPolicy", _S),
                4: ("terminationGracePeriodSeconds?", "int"), 5: ("activeDeadlineSeconds?", "int"),
                6: ("dnsPolicy", _S), 7: ("nodeSelector", "map"), 8: ("serviceAccountName", _S),
                9: ("serviceAccount", _S), 10: ("nodeName", _S), 11: ("hostNetwork", "bool"),
                12: ("hostPID", "bool"), 13: ("hostIPC", "bool"), 16: ("hostname", _S), 17: ("subdomain", _S),
                19: ("schedulerName", _S), 20: ("initContainers", "[Container]"),
                21: ("automountServiceAccountToken?", "bool"), 24: ("priorityClassName", _S),
                27: ("shareProcessNamespace?", "bool"), 29: ("runtimeClassName?", _S),
                30: ("enableServiceLinks?", "bool"), 35: ("setHostnameAsFQDN?", "bool"), 37: ("hostUsers?", "bool")},
    "Container": {1: ("name", _S), 2: ("image", _S), 3: ("command", "[string]"), 4: ("args", "[string]"),
                  5: ("workingDir", _S), 6: ("ports", "[ContainerPort]"), 7: ("env", "[EnvVar]"),
                  8: ("resources", "ResourceRequirements"), 13: ("terminationMessagePath", _S),
                  14: ("imagePullPolicy", _S), 16: ("stdin", "bool"), 17: ("stdinOnce", "bool"), 18: ("tty", "bool"),
                  20: ("terminationMessagePolicy", _S), 24: ("restartPolicy?", _S)},
    "ContainerPort": {1: ("name", _S), 2: ("hostPort", "int"), 3: ("containerPort", "int"), 4: ("protocol", _S),
                      5: ("hostIP", _S)},
    "EnvVar": {1: ("name", _S), 2: ("value", _S)},
    "ResourceRequirements": {1: ("limits", "quantities"), 2: ("requests", "quantities")},
    "ConfigMap": {1: ("metadata", "ObjectMeta"), 2: ("data", "map"), 3: ("binaryData", "bytesmap"),
                  4: ("immutable?", "bool")},
    "Secret": {1: ("metadata", "ObjectMeta"), 2: ("data", "bytesmap"), 3: ("type", _S), 4: ("stringData", "map"),
               5: ("immutable?", "bool")},
    "Namespace": {1: ("metadata", "ObjectMeta"), 2: ("spec", "NamespaceSpec"), 3: ("status", "Empty")},
    "NamespaceSpec": {1: ("finalizers", "[string]")},
    "IntOrString": {},
    "Empty": {},
}
KINDS = {("apps/v1", "Deployment"): "Deployment", ("batch/v1", "Job"): "Job", ("v1", "ConfigMap"): "ConfigMap",
         ("v1", "Secret"): "Secret", ("v1", "Namespace"): "Namespace"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if at >= len(data):
            raise Undecodable("truncated varint")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, at


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    out: list[tuple[int, int | bytes]] = []
    at = 0
    while at < len(data):
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
            out.append((number, value))
        elif wire == 2:
            length, at = _varint(data, at)
            if at + length > len(data):
                raise Undecodable("truncated field")
            out.append((number, data[at:at + length]))
            at += length
        else:
            raise Undecodable(f"wire type {wire} of field {number}")
    return out


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _scalar(kind: str, value: int | bytes, where: str) -> Any:
    if kind == "int" and isinstance(value, int):
        return _signed(value)
    if kind == "bool" and isinstance(value, int):
        return bool(value)
    if kind == "string" and isinstance(value, bytes):
        return value.decode()
    raise Undecodable(f"{where}: unexpected encoding")


def _pairs(data: bytes, where: str) -> tuple[str, bytes]:
    key, value = "", b""
    for number, item in _fields(data):
        if not isinstance(item, bytes):
            raise Undecodable(f"{where}: unexpected encoding")
        if number == 1:
            key = item.decode()
        elif number == 2:
            value = item
    return key, value


def _value(kind: str, item: int | bytes, where: str) -> Any:
    if kind in MESSAGES:
        if not isinstance(item, bytes):
            raise Undecodable(f"{where}: unexpected encoding")
        if kind == "IntOrString":
            parts = dict(_fields(item))
            return _scalar("string", parts.get(3, b""), where) if parts.get(1) == 1 else _signed(int(parts.get(2, 0)))
        return decode_message(kind, item, where)
    if kind == "time":
        if not isinstance(item, bytes):
            raise Undecodable(f"{where}: unexpected encoding")
        seconds = int(dict(_fields(item)).get(1, 0))
        return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ") if seconds else None
    return _scalar(kind, item, where)


def decode_message(message: str, data: bytes, where: str = "") -> dict[str, Any]:
    table = MESSAGES[message]
    out: dict[str, Any] = {}
    for number, item in _fields(data):
        if number not in table:
            if item in (0, b""):
                continue
            raise Undecodable(f"{where or message}: field {number} of {message} is not supported")
        name, kind = table[number]
        pointer = name.endswith("?")
        name = name.rstrip("?")
        path = f"{where}.{name}" if where else name
        if kind in ("map", "quantities", "bytesmap"):
            if not isinstance(item, bytes):
                raise Undecodable(f"{path}: unexpected encoding")
            key, raw = _pairs(item, path)
            if kind == "quantities":
                raw = dict(_fields(raw)).get(1, b"")  # type: ignore[assignment]
            out.setdefault(name, {})[key] = (base64.b64encode(raw).decode() if kind == "bytesmap"
                                             else _scalar("string", raw, path))
        elif kind.startswith("["):
            out.setdefault(name, []).append(_value(kind[1:-1], item, path))
        else:
            value = _value(kind, item, path)
            if pointer or value not in (None, "", 0, False, {}, []):
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded object of a kind in KINDS; Undecodable otherwise."""
    try:
        return _decode(body)
    except Undecodable:
        raise
    except (ValueError, TypeError, OverflowError) as exc:  # bytes that are not what they claim
        raise Undecodable(f"malformed protobuf: {exc}") from None


def _decode(body: bytes) -> dict[str, Any]:
    if not body.startswith(MAGIC):
        raise Undecodable("the body does not start with the protobuf magic")
    api_version = kind = ""
    raw = b""
    for number, item in _fields(body[len(MAGIC):]):
        if number == 1 and isinstance(item, bytes):
            meta = {n: v for n, v in _fields(item)}
            api_version = _scalar("string", meta.get(1, b""), "apiVersion")
            kind = _scalar("string", meta.get(2, b""), "kind")
        elif number == 2 and isinstance(item, bytes):
            raw = item
        elif number == 3 and item not in (b"", 0):
            raise Undecodable("content encodings are not supported")
    message = KINDS.get((api_version, kind))
    if message is None:
        raise Undecodable(f"{api_version} {kind} in protobuf is not supported")
    return {"apiVersion": api_version, "kind": kind, **decode_message(message, raw)}
