"""The project's own busybox image, built from Debian's busybox-static so that
manifests saying `image: busybox:1.35` run offline."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from podbay.runtime.images.store import Image, ImageConfig, ImageStore

BUSYBOX = Path("/bin/busybox")
TAGS = ("docker.io/library/busybox:1.35", "docker.io/library/busybox:latest")
PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n"
GROUP = "root:x:0:\nnogroup:x:65534:\n"


def busybox_rootfs(root: Path) -> None:
    """Lays out a busybox root filesystem in the empty directory `root`."""
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "root", "home", "var"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    shutil.copy2(BUSYBOX, root / "bin/busybox")
    applets = subprocess.run([str(BUSYBOX), "--list-full"], capture_output=True, text=True, check=True).stdout
    for applet in applets.split():
        link = root / applet
        if applet == "bin/busybox" or os.path.lexists(link):
            continue
        link.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(os.path.relpath(root / "bin/busybox", link.parent), link)
    (root / "etc/passwd").write_text(PASSWD)
    (root / "etc/group").write_text(GROUP)
    # Every time from busybox's own, so the layer and image id are the same on every
    # build of the same busybox: concurrent or repeated builds agree.
    mtime = int(BUSYBOX.stat().st_mtime)
    for path in [*root.rglob("*"), root]:
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def ensure_busybox_image(store: ImageStore) -> Image:
    """Builds and tags busybox:1.35 (and :latest) once; later calls only look it up."""
    existing = store.image_status(TAGS[0])
    if existing is not None and all(p.is_dir() for p in store.mount_layers(existing.id)):
        return existing
    if not BUSYBOX.exists():
        raise FileNotFoundError(f"{BUSYBOX} not found: install the Debian package busybox-static")
    with store.content.scratch_dir("busybox-") as tmp:
        root = tmp / "rootfs"
        root.mkdir()
        busybox_rootfs(root)
        image = store.build(root, tag=TAGS[0], config=ImageConfig(cmd=["sh"], env=[PATH]))
    for tag in TAGS[1:]:
        image = store.tag(image.id, tag)
    return image
