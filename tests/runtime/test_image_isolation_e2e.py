"""What an image brings (setuid binaries, device nodes) works inside its containers and
nowhere else: no other user of the host reaches layers or a container's rootfs."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from podbay.runtime.images import import_archive
from podbay.runtime.images.busybox import busybox_rootfs
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import (ContainerConfig, ContainerMetadata, LinuxContainerSecurity, Mount, PodSandboxConfig,
                                  PodSandboxMetadata)
from podbay.runtime.volumes import EmptyDir, Files
from tests.conftest import HostEnv, require_root
from tests.images.images_layouts import write_layout
from tests.runtime.conftest import runtime_config

pytestmark = pytest.mark.e2e
IMAGE = "localhost/suid:1"
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
PROBE_C = '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("euid=%d\\n", (int)geteuid()); return 0; }\n'


def image_layout(tmp: Path) -> Path:
    """busybox, a static probe printing its euid installed setuid root (busybox itself
    drops setuid privileges), and a world-writable char device 1,3 outside /dev."""
    rootfs = tmp / "rootfs"
    rootfs.mkdir()
    busybox_rootfs(rootfs)
    (tmp / "probe.c").write_text(PROBE_C)
    subprocess.run(["gcc", "-static", "-O", "-o", str(rootfs / "bin/euid"), str(tmp / "probe.c")], check=True)
    os.chmod(rootfs / "bin/euid", 0o4755)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in sorted(rootfs.rglob("*")):
            tar.add(path, arcname=str(path.relative_to(rootfs)), recursive=False)
        tar.addfile(_dir("opt"))
        tar.addfile(_device("opt/null", 1, 3))
    raw = buf.getvalue()
    layout = tmp / "layout"
    write_layout(layout, (gzip.compress(raw), "sha256:" + hashlib.sha256(raw).hexdigest()), IMAGE)
    return layout


def _dir(name: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode = tarfile.DIRTYPE, 0o755
    return info


def _device(name: str, major: int, minor: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.devmajor, info.devminor = tarfile.CHRTYPE, 0o666, major, minor
    return info


def as_nobody(*argv: str) -> subprocess.CompletedProcess[str]:
    # Through a shell: setpriv itself still holds root's capabilities while it looks up
    # the program to run, the shell (nobody, no capabilities) does not.
    return subprocess.run([*NOBODY, "/bin/sh", "-c", 'exec "$@"', "sh", *argv], capture_output=True, text=True)


def device_nodes(root: Path) -> set[Path]:
    """Device nodes under `root` that are not overlayfs whiteouts (0/0)."""
    found = set()
    for directory, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(directory, name))
            if (stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)) and st.st_rdev != os.makedev(0, 0):
                found.add(Path(directory, name))
    return found


async def test_setuid_and_devices_of_an_image_work_only_inside_its_containers(
        runtime: RuntimeService, host_env: HostEnv, tmp_path: Path) -> None:
    # The roots' parent is a private temporary directory; open it as /var/lib is.
    os.chmod(host_env.state_root.parent, 0o755)
    os.chmod(tmp_path, 0o755)
    [image] = import_archive(runtime.images, image_layout(tmp_path))
    [layer] = runtime.images.mount_layers(image.id)
    probe = layer / "bin/euid"
    assert os.stat(probe).st_mode & stat.S_ISUID  # kept: containers need it

    # No other user on the host reaches the store, let alone runs the setuid probe.
    for path in (host_env.state_root, runtime.images.root, runtime.images.layers.root, layer):
        listing = as_nobody("ls", str(path))
        assert listing.returncode != 0 and "Permission denied" in listing.stderr, path
    run = as_nobody(str(probe))
    assert run.returncode != 0 and "Permission denied" in run.stderr and "euid=0" not in run.stdout
    assert device_nodes(host_env.state_root) == set()  # the layer holds only a placeholder

    sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("suid", "default", "uid-suid"),
                                                         hostname="suid"))
    cid = await runtime.create_container(sid, ContainerConfig(
        ContainerMetadata("c"), IMAGE, ["sh", "-c", "sleep 600"], env=["PATH=/bin"],
        security=LinuxContainerSecurity(run_as_user=1000, run_as_group=1000)))
    await runtime.start_container(cid)
    code, out, err = await runtime.exec_sync(cid, ["sh", "-c", "id -u; /bin/euid; test -c /opt/null && "
                                                   "echo x > /opt/null && echo device-ok"], 10)
    # Inside, as a non-root user, the image's setuid binary is root, and its device works.
    assert (code, out.decode().split()) == (0, ["1000", "euid=0", "device-ok"]), err

    # The device node exists only in this container's own upper layer, and neither it nor
    # the container's rootfs view is reachable by another user of the host.
    [node] = device_nodes(host_env.state_root)
    assert node.is_relative_to(runtime.config.containers_root / cid)
    rootfs = runtime.config.bundles_root / cid / "rootfs"
    for path in (rootfs, rootfs / "bin/euid", node):
        assert as_nobody("stat", str(path)).returncode != 0, path
    assert as_nobody(str(rootfs / "bin/euid")).returncode != 0

    await runtime.remove_pod_sandbox(sid)
    assert device_nodes(host_env.state_root) == set()


def test_roots_made_before_are_made_private(host_env: HostEnv) -> None:
    require_root()
    config = runtime_config(host_env)
    dirs = (config.state_root, config.run_root, config.images_root, config.images_root / "layers",
            config.containers_root, config.pods_root, config.bundles_root)
    for d in dirs:
        d.mkdir(mode=0o755, parents=True, exist_ok=True)
        os.chmod(d, 0o755)  # as an install made before they were private
    RuntimeService(config)
    assert {d: stat.S_IMODE(os.stat(d).st_mode) for d in dirs} == {d: 0o700 for d in dirs}


async def test_a_non_root_container_still_uses_its_volumes_shm_logs_and_termination_log(
        runtime: RuntimeService) -> None:
    # What the container reaches is bind-mounted into it, so the 0700 roots above are no
    # obstacle inside; only the host path is closed to other users.
    os.chmod(runtime.config.state_root.parent, 0o755)
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(metadata=PodSandboxMetadata("nonroot", "default",
                                                                                     "uid-nonroot"),
                                                         hostname="nonroot"))
    vols = await runtime.setup_pod_volumes("uid-nonroot", {
        "scratch": EmptyDir(), "mem": EmptyDir(medium="Memory", size_limit=1 << 20),
        "config": Files({"app.conf": (b"key=value\n", 0o644)})})
    cid = await runtime.create_container(sid, ContainerConfig(
        ContainerMetadata("c"), "busybox:1.35",
        ["sh", "-c", "echo hello-log; cat /config/app.conf; echo a > /scratch/f; echo b > /mem/f; "
                     "echo c > /dev/shm/f; cat /scratch/f /mem/f /dev/shm/f; echo done > /dev/termination-log"],
        env=["PATH=/bin"], termination_message_path="/dev/termination-log",
        mounts=[Mount("/scratch", str(vols["scratch"])), Mount("/mem", str(vols["mem"])),
                Mount("/config", str(vols["config"]), readonly=True)],
        security=LinuxContainerSecurity(run_as_user=1000, run_as_group=1000)))
    await runtime.start_container(cid)
    status = await runtime.wait_container(cid)
    assert (status.exit_code, status.message) == (0, "done\n")
    logged = [line.split(" ", 3)[3] for line in Path(status.log_path).read_text().splitlines()]
    assert logged == ["hello-log", "key=value", "a", "b", "c"]
    assert os.stat(vols["scratch"] / "f").st_uid == 1000
    assert as_nobody("cat", str(vols["scratch"] / "f")).returncode != 0
    await runtime.remove_pod_sandbox(sid)
    await runtime.remove_pod_volumes("uid-nonroot")
