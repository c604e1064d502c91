"""Real kubectl against server-side apply, dry run and field validation: `apply --server-side`
(managedFields, conflicts, --force-conflicts), `diff`, `apply --dry-run=server`, and
`create --validate=strict|warn`, with every kubectl present."""
from __future__ import annotations

from pathlib import Path

import pytest

from podbay.api import Pod
from podbay.apiserver.embedded import EmbeddedServer
from podbay.client import Client
from tests.apiserver.test_openapi_kubectl import KUBECTLS, POD, _present, kubectl


def _managers(pod: Pod) -> dict[str, dict[str, object]]:
    return {entry["manager"]: entry for entry in pod.metadata.managed_fields}


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_server_side_apply_owns_conflicts_and_forces(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.format(label="web", image="busybox:1.35"))
    created = await kubectl(binary, api_server, tmp_path, "apply", "--server-side", "-f", str(manifest))
    assert (created.code, created.out.strip()) == (0, "pod/web serverside-applied"), created.err
    applied = _managers(await api_client.get(Pod, "web"))["kubectl"]
    assert (applied["operation"], applied["apiVersion"], applied["fieldsType"]) == ("Apply", "v1", "FieldsV1")
    assert applied["fieldsV1"] == {
        "f:metadata": {"f:labels": {"f:app": {}}},
        "f:spec": {"f:containers": {'k:{"name":"main"}': {
            ".": {}, "f:env": {'k:{"name":"A"}': {".": {}, "f:name": {}, "f:value": {}}},
            "f:image": {}, "f:name": {}}}}}

    manifest.write_text(POD.format(label="web2", image="busybox:1.35"))
    changed = await kubectl(binary, api_server, tmp_path, "apply", "--server-side", "-f", str(manifest))
    assert (changed.code, changed.out.strip()) == (0, "pod/web serverside-applied"), changed.err
    assert (await api_client.get(Pod, "web")).metadata.labels == {"app": "web2"}

    labelled = await kubectl(binary, api_server, tmp_path, "label", "--overwrite", "pod", "web", "app=mine")
    assert labelled.code == 0, labelled.err
    assert "f:app" in str(_managers(await api_client.get(Pod, "web"))["kubectl-label"]["fieldsV1"])

    manifest.write_text(POD.format(label="web3", image="busybox:1.35"))
    refused = await kubectl(binary, api_server, tmp_path, "apply", "--server-side", "-f", str(manifest))
    assert refused.code == 1
    assert 'Apply failed with 1 conflict: conflict with "kubectl-label" using v1: .metadata.labels.app' \
        in refused.err, refused.err
    assert (await api_client.get(Pod, "web")).metadata.labels == {"app": "mine"}

    forced = await kubectl(binary, api_server, tmp_path, "apply", "--server-side", "--force-conflicts",
                           "-f", str(manifest))
    assert forced.code == 0, forced.err
    stored = await api_client.get(Pod, "web")
    assert stored.metadata.labels == {"app": "web3"}
    assert "kubectl-label" not in _managers(stored)  # it owned nothing else


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_server_side_apply_after_client_side_apply(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    manifest = tmp_path / "pod.yaml"
    manifest.write_text(POD.format(label="web", image="busybox:1.35"))
    created = await kubectl(binary, api_server, tmp_path, "apply", "-f", str(manifest))
    assert created.code == 0, created.err
    assert _managers(await api_client.get(Pod, "web"))["kubectl-client-side-apply"]["operation"] == "Update"

    # kubectl moves the client-side apply's fields to its apply manager first (its managedFields
    # patch), so changing them is no conflict.
    manifest.write_text(POD.format(label="web", image="busybox:1.36"))
    moved = await kubectl(binary, api_server, tmp_path, "apply", "--server-side", "-f", str(manifest))
    assert (moved.code, moved.out.strip()) == (0, "pod/web serverside-applied"), moved.err
    stored = await api_client.get(Pod, "web")
    assert stored.spec.containers[0].image == "busybox:1.36"
    assert _managers(stored)["kubectl"]["operation"] == "Apply"


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_diff_and_server_dry_run_change_nothing(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    created = await kubectl(binary, api_server, tmp_path, "apply", "-f", "-",
                            stdin=POD.format(label="web", image="busybox:1.35"))
    assert created.code == 0, created.err
    before = await api_client.get(Pod, "web")

    diff = await kubectl(binary, api_server, tmp_path, "diff", "-f", "-",
                         stdin=POD.format(label="other", image="busybox:1.35"))
    assert diff.code == 1, diff.err
    assert "-    app: web" in diff.out and "+    app: other" in diff.out, diff.out
    same = await kubectl(binary, api_server, tmp_path, "diff", "-f", "-",
                         stdin=POD.format(label="web", image="busybox:1.35"))
    assert (same.code, same.out) == (0, ""), same.err
    server_side = await kubectl(binary, api_server, tmp_path, "diff", "--server-side", "-f", "-",
                                stdin=POD.format(label="other", image="busybox:1.35"))
    assert server_side.code == 1 and "+    app: other" in server_side.out, server_side.err

    dry = await kubectl(binary, api_server, tmp_path, "apply", "--dry-run=server", "-f", "-",
                        stdin=POD.format(label="other", image="busybox:1.35"))
    assert (dry.code, dry.out.strip()) == (0, "pod/web configured (server dry run)"), dry.err
    new = await kubectl(binary, api_server, tmp_path, "apply", "--dry-run=server", "-f", "-",
                        stdin=POD.format(label="x", image="busybox").replace("name: web", "name: fresh"))
    assert (new.code, new.out.strip()) == (0, "pod/fresh created (server dry run)"), new.err
    assert await api_client.get(Pod, "web") == before
    assert [p.metadata.name for p in (await api_client.list(Pod, "default"))[0]] == ["web"]


@pytest.mark.parametrize("binary", KUBECTLS)
async def test_field_validation_strict_refuses_and_warn_warns(
        binary: str, api_server: EmbeddedServer, api_client: Client, tmp_path: Path) -> None:
    _present(binary)
    typo = POD.format(label="typo", image="busybox").replace("    image:", "    imagee: x\n    image:")
    strict = await kubectl(binary, api_server, tmp_path, "create", "--validate=strict", "-f", "-", stdin=typo)
    assert strict.code == 1
    assert 'strict decoding error: unknown field "spec.containers[0].imagee"' in strict.err, strict.err
    assert (await api_client.list(Pod, "default"))[0] == []

    warned = await kubectl(binary, api_server, tmp_path, "create", "--validate=warn", "-f", "-", stdin=typo)
    assert (warned.code, warned.out.strip()) == (0, "pod/web created"), warned.err
    assert 'Warning: unknown field "spec.containers[0].imagee"' in warned.err, warned.err
    assert (await api_client.get(Pod, "web")).spec.containers[0].image == "busybox"
