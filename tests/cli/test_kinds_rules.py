"""kubectl's resource names and the client's URLs are the ones the API server's discovery serves."""
from __future__ import annotations

from podbay.apiserver import discovery
from podbay.api.kinds import API_GROUPS
from podbay.cli.kubectl import KINDS
from podbay.client import Client


def served() -> list[tuple[str, dict]]:
    lists = [discovery.core_v1_resources()] + [
        discovery.resource_list(f"{group}/{version}", table)
        for group, versions in API_GROUPS.items() for version, table in versions.items()]
    return [(rl["groupVersion"], r) for rl in lists for r in rl["resources"] if "/" not in r["name"]]


def test_kubectl_knows_every_served_resource_by_its_names_and_the_client_finds_its_url() -> None:
    for group_version, r in served():
        for alias in (r["name"], r["singularName"], *r.get("shortNames", [])):
            assert KINDS[alias].__name__ == r["kind"], alias
        root = "/api/v1" if group_version == "v1" else f"/apis/{group_version}"
        namespace = "/namespaces/ns" if r["namespaced"] else ""
        assert Client.path(KINDS[r["name"]], "ns", "x") == f"{root}{namespace}/{r['name']}/x"
    assert {r["kind"] for _, r in served()} == {model.__name__ for model in KINDS.values()}
