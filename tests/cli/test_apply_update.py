"""`podbay apply` of a changed pod file against a real API server: the update is what
kubectl apply would send."""
from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

from podbay.api import Pod
from podbay.apiserver.embedded import serve_embedded
from podbay.cli.kubectl import apply
from podbay.client import Client

POD = """apiVersion: v1
kind: Pod
metadata: {{name: web}}
spec:
  containers:
  - {{name: main, image: "{image}", command: [sleep, "600"]}}
"""


async def test_image_change_keeps_the_pull_policy_defaulted_at_creation(tmp_path: Path) -> None:
    # imagePullPolicy is defaulted from the tag when the pod is created and may never change
    # after (found by the chaos suite: busybox:1.35 -> busybox:latest was refused as Forbidden);
    # kubectl apply's merge keeps it, since the file does not set it.
    manifest = tmp_path / "pod.yaml"
    args = argparse.Namespace(filename=[str(manifest)], namespace=None, validate="strict")
    async with serve_embedded(tmp_path / "api") as server, Client.connect(server.url) as client:
        with contextlib.redirect_stdout(io.StringIO()) as out:
            for image in ("busybox:1.35", "busybox:latest"):
                manifest.write_text(POD.format(image=image))
                await apply(client, args, update=True)
        assert out.getvalue().split() == ["pod/web", "created", "pod/web", "configured"]
        stored = (await client.get(Pod, "web", "default")).spec.containers[0]
        assert (stored.image, stored.image_pull_policy) == ("busybox:latest", "IfNotPresent")
