"""The project's own busybox image, built from Debian's busybox-static so that
manifests saying `image: busybox:1.35` run offline."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from podbay.runtime.images.store import Image, ImageConfig, ImageStore

BUSYBOX = Path("/bin/busybox")
TAGS = ("docker.io/library/busybox:1.35", "docker.io/library/busybox:latest")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def ensure_busybox_image(store: ImageStore) -> Image:
    """Builds and tags busybox:1.35 (and :latest) once; later calls only look it up."""
    existing = store.image_status(TAGS[0])
    if existing is not None:
        return existing
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} not found: install the Debian package busybox-static")
    with tempfile.TemporaryDirectory(dir=store.tmp) as tmp:
        root = Path(tmp) / "rootfs"
        for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "var/www", "home"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").mkdir(mode=0o1777)
        os.chmod(root / "tmp", 0o1777)
        shutil.copy2(BUSYBOX, root / "bin/busybox")
        applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True).stdout
        for applet in applets.split():
            link = root / applet
            if link.exists() or link.is_symlink() or applet == "bin/busybox":
                continue
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.path.relpath(root / "bin/busybox", link.parent), link)
        (root / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n")
        (root / "etc/group").write_text("root:x:0:\nnogroup:x:65534:\n")
        image = store.build(root, tag=TAGS[0], config=ImageConfig(cmd=["sh"], env=[PATH]))
    for tag in TAGS[1:]:
        store.tag(image.id, tag)
    return store.image_status(TAGS[0])  # type: ignore[return-value]
