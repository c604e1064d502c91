"""Discovery documents: /api, /api/v1, /apis, /apis/{group}[/{version}], /version (what kubectl reads first)."""
from __future__ import annotations

from typing import Any

from podbay.api.kinds import API_GROUPS, COMPUTED_GROUPS, RESOURCES, ResourceInfo

KUBERNETES_VERSION = "v1.32.0"

_VERBS = ["create", "delete", "get", "list", "patch", "update", "watch"]
_SUBRESOURCE_VERBS = {"status": ["get", "patch", "update"], "binding": ["create"], "log": ["get"],
                      "exec": ["create", "get"], "attach": ["create", "get"],
                      "portforward": ["create", "get"], "ephemeralcontainers": ["get", "patch", "update"], "scale": ["get", "patch", "update"]}


def api_versions(server_address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


_SERVED_GROUPS = {**API_GROUPS, **COMPUTED_GROUPS}


def _group(name: str) -> dict[str, Any]:
    versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in _SERVED_GROUPS[name]]
    return {"name": name, "versions": versions, "preferredVersion": versions[0]}


def api_group_list() -> dict[str, Any]:
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_group(name) for name in _SERVED_GROUPS]}


def api_group(name: str) -> dict[str, Any] | None:
    """/apis/{group}; None for a group this server does not serve."""
    if name not in _SERVED_GROUPS:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name)}


def core_v1_resources() -> dict[str, Any]:
    return resource_list("v1", RESOURCES)


def resource_list(group_version: str, table: dict[str, ResourceInfo]) -> dict[str, Any]:
    """The APIResourceList of one group version (`v1` for the core group)."""
    resources: list[dict[str, Any]] = []
    for info in table.values():
        entry: dict[str, Any] = {
            "name": info.name,
            "singularName": info.kind.lower(),
            "namespaced": info.namespaced,
            "kind": info.kind,
            "verbs": list(info.verbs) if info.verbs else _VERBS,
        }
        if info.short_names:
            entry["shortNames"] = list(info.short_names)
        if info.name == "pods":
            entry["categories"] = ["all"]
        elif info.categories:
            entry["categories"] = list(info.categories)
        resources.append(entry)
        for sub in info.subresources:
            kind = {"binding": "Binding", "log": "Pod", "exec": "PodExecOptions", "attach": "PodAttachOptions",
                    "portforward": "PodPortForwardOptions", "scale": "Scale"}.get(sub, info.kind)
            entry = {
                "name": f"{info.name}/{sub}",
                "singularName": "",
                "namespaced": info.namespaced,
                "kind": kind,
                "verbs": _SUBRESOURCE_VERBS[sub],
            }
            if sub == "scale":
                entry.update(group="autoscaling", version="v1")
            resources.append(entry)
    return {"kind": "APIResourceList", "groupVersion": group_version, "resources": resources}


def version_info() -> dict[str, str]:
    import platform

    return {
        "major": "1",
        "minor": "32",
        "gitVersion": f"{KUBERNETES_VERSION}+podbay",
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": f"python{platform.python_version()}",
        "compiler": "cpython",
        "platform": f"linux/{platform.machine()}",
    }
