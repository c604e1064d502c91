"""A container's environment and argv, built exactly as the kubelet builds them
(kubelet_pods.go makeEnvironmentVariables, third_party/forked/golang/expansion).
"""
from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from podbay.api import Container, Pod


class EnvError(Exception):
    """An env var the agent cannot build: the container gets CreateContainerConfigError."""


def expand(text: str, mapping: Callable[[str], str]) -> str:
    """Kubernetes' $(VAR) expansion: `$$` escapes, unknown or unclosed references stay as written."""
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            rest = text[cursor + 1:]
            if rest[0] == "$":
                out.append("$")
                advance = 1
            elif rest[0] == "(":
                close = rest.find(")", 1)
                if close >= 0:
                    out.append(mapping(rest[1:close]))
                    advance = close + 1
                else:
                    out.append("$(")
                    advance = 1
            else:
                out.append("$" + rest[0])
                advance = 1
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    out.append(text[checkpoint:])
    return "".join(out)


def mapping_for(*contexts: Mapping[str, str]) -> Callable[[str], str]:
    def lookup(name: str) -> str:
        for ctx in contexts:
            if name in ctx:
                return ctx[name]
        return f"$({name})"
    return lookup


@dataclass(frozen=True)
class PodFacts:
    """What the downward API may read that is not in the pod object itself."""

    pod_ip: str = ""
    host_ip: str = ""
    node_allocatable: Mapping[str, str] | None = None
    # The Services' variables (serviceenv.service_env): $(VAR) may name them; they come after
    # the container's own, which win on a clash, as the kubelet appends them.
    service_env: Mapping[str, str] | None = None


_KEYED = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")


def field_ref_value(pod: Pod, path: str, facts: PodFacts) -> str:
    m = _KEYED.match(path)
    if m:
        source = pod.metadata.labels if m.group(1) == "labels" else pod.metadata.annotations
        return (source or {}).get(m.group(2), "")
    simple: dict[str, Callable[[], str | None]] = {
        "metadata.name": lambda: pod.metadata.name,
        "metadata.namespace": lambda: pod.metadata.namespace,
        "metadata.uid": lambda: pod.metadata.uid,
        "spec.nodeName": lambda: pod.spec.node_name,
        "spec.serviceAccountName": lambda: pod.spec.service_account_name,
        "status.podIP": lambda: facts.pod_ip,
        "status.podIPs": lambda: facts.pod_ip,
        "status.hostIP": lambda: facts.host_ip,
        "status.hostIPs": lambda: facts.host_ip,
    }
    if path not in simple:
        raise EnvError(f"fieldRef.fieldPath: Unsupported value: {path!r}")
    return simple[path]() or ""


def resource_field_value(container: Container, resource: str, divisor: str | None, facts: PodFacts) -> str:
    """resourceFieldRef: limits fall back to the node's allocatable; values round up to the divisor."""
    from podbay.api.quantity import parse_quantity

    kind, _, name = resource.partition(".")
    if kind not in ("limits", "requests") or name not in ("cpu", "memory", "ephemeral-storage"):
        raise EnvError(f"resourceFieldRef.resource: Unsupported value: {resource!r}")
    res = container.resources
    limits = res.limits if res is not None else {}
    raw = (limits if kind == "limits" else res.requests if res is not None else {}).get(name)
    if raw is None and kind == "requests":
        raw = limits.get(name)
    if raw is None:
        raw = (facts.node_allocatable or {}).get(name)
    if raw is None:
        return "0"
    div = parse_quantity(divisor) if divisor else parse_quantity("1")
    if div == 0:
        raise EnvError("resourceFieldRef.divisor: Invalid value: must be greater than zero")
    return str(math.ceil(parse_quantity(str(raw)) / div))


def container_env(pod: Pod, container: Container, facts: PodFacts) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, value) pairs in the kubelet's order, and warnings for skipped optional sources.

    configMap and secret sources are not supported: a required one raises EnvError,
    an optional one is skipped with a warning.
    """
    env: dict[str, str] = {}
    warnings: list[str] = []
    for src in container.env_from:
        ref = src.config_map_ref or src.secret_ref
        kind = "configMap" if src.config_map_ref else "secret"
        if ref is not None and ref.optional:
            warnings.append(f"envFrom {kind} {ref.name!r} is not supported; skipped (optional)")
            continue
        raise EnvError(f"envFrom: {kind} {ref.name if ref is not None else ''!r} is not supported")
    services = facts.service_env or {}
    for var in container.env:
        value = var.value or ""
        if value:
            value = expand(value, mapping_for(env, services))
        elif var.value_from is not None:
            vf = var.value_from
            if vf.field_ref is not None:
                value = field_ref_value(pod, vf.field_ref.field_path, facts)
            elif vf.resource_field_ref is not None:
                rf = vf.resource_field_ref
                target: Container | None = container
                if rf.container_name:
                    target = next((c for c in [*pod.spec.init_containers, *pod.spec.containers]
                                   if c.name == rf.container_name), None)
                if target is None:
                    raise EnvError(f"env[{var.name}].valueFrom.resourceFieldRef.containerName: "
                                   f"Not found: {rf.container_name!r}")
                value = resource_field_value(target, rf.resource, rf.divisor, facts)
            else:
                key_ref = vf.config_map_key_ref or vf.secret_key_ref
                kind = "configMapKeyRef" if vf.config_map_key_ref else "secretKeyRef"
                if key_ref is not None and key_ref.optional:
                    warnings.append(f"env {var.name}: {kind} is not supported; skipped (optional)")
                    continue
                raise EnvError(f"env[{var.name}].valueFrom.{kind}: not supported by this node")
        env[var.name] = value
    for name, value in services.items():
        env.setdefault(name, value)
    return list(env.items()), warnings


def container_argv(container: Container, image_entrypoint: Sequence[str] | None, image_cmd: Sequence[str] | None,
                   env: Sequence[tuple[str, str]]) -> list[str]:
    """command/args against the image's Entrypoint/Cmd, then $(VAR) expansion with the
    container's env: a command replaces Entrypoint and drops Cmd; args replace Cmd."""
    lookup = mapping_for(dict(env))
    command = [expand(c, lookup) for c in container.command]
    args = [expand(a, lookup) for a in container.args]
    if command:
        return command + args
    return list(image_entrypoint or []) + (args if container.args else list(image_cmd or []))


def merge_image_env(image_env: Sequence[str], env: Sequence[tuple[str, str]]) -> list[str]:
    """Image Env first, the container's entries override by name (keeping the image's order)."""
    out: dict[str, str] = {}
    for item in image_env:
        name, _, value = item.partition("=")
        out[name] = value
    for name, value in env:
        out[name] = value
    return [f"{k}={v}" for k, v in out.items()]
