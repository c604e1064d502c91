"""OCI image layouts written by hand, for import and push tests."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from podbay.runtime.images.busybox import busybox_rootfs


def _blob(layout: Path, data: bytes) -> dict:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    path = layout / "blobs/sha256" / digest[7:]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def tar_layer(rootfs: Path) -> tuple[bytes, str]:
    """A gzip layer of the directory's contents and its diff id."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
    raw = buf.getvalue()
    return gzip.compress(raw, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


def busybox_layer(tmp: Path) -> tuple[bytes, str]:
    rootfs = tmp / "busybox-rootfs"
    rootfs.mkdir()
    busybox_rootfs(rootfs)
    return tar_layer(rootfs)


def write_layout(layout: Path, layers: tuple[bytes, str] | list[tuple[bytes, str]], ref_name: str,
                 archs: tuple[str, ...] = ("amd64",),
                 layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> dict[str, str]:
    """An OCI layout with one image per architecture (an index when several), named
    `ref_name`, of `layers` (bottom first); returns the manifest digest of each
    architecture and of the index."""
    (layout / "oci-layout").parent.mkdir(parents=True, exist_ok=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    layers = layers if isinstance(layers, list) else [layers]
    layer_descs = [{"mediaType": layer_type, **_blob(layout, data)}
                   for data, _ in layers]
    diff_ids = [diff_id for _, diff_id in layers]
    digests, descs = {}, []
    for arch in archs:
        config = {"architecture": arch, "os": "linux",
                  "config": {"Env": ["PATH=/bin", f"ARCH={arch}"], "Cmd": ["sh"], "WorkingDir": "/tmp"},
                  "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               **_blob(layout, json.dumps(config).encode())},
                    "layers": layer_descs}
        desc = {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                **_blob(layout, json.dumps(manifest).encode()), "platform": {"os": "linux", "architecture": arch}}
        digests[arch] = desc["digest"]
        descs.append(desc)
    if len(archs) > 1:
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": descs}
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", **_blob(layout, json.dumps(index).encode())}
        digests["index"] = top["digest"]
    else:
        top = {k: v for k, v in descs[0].items() if k != "platform"}
    top["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return digests
