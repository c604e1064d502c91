"""The CVE-2019-5736 defence with the agent's sealed copy of crun: a container's init, before its
command runs, executes the one sealed copy (not the host's binary, not a copy of its own), and
nothing that holds it can write through it to the host's crun."""
from __future__ import annotations

import asyncio
import errno
import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from podbay.runtime.sealedbinary import RUNTIME_MEMFD_SEALS
from podbay.runtime.service import RuntimeService
from podbay.runtime.types import (
    ContainerConfig, ContainerMetadata, ContainerState, PodSandboxConfig, PodSandboxMetadata,
)

pytestmark = pytest.mark.e2e


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def test_a_created_container_runs_the_sealed_copy_which_cannot_be_written(runtime: RuntimeService) -> None:
    host_crun = Path(shutil.which("crun") or "/usr/bin/crun")
    before = _digest(host_crun)
    sid = await runtime.run_pod_sandbox(PodSandboxConfig(PodSandboxMetadata("sealed", "default", "uid-sealed"), "sealed"))
    cid = await runtime.create_container(sid, ContainerConfig(
        ContainerMetadata("web"), "busybox:1.35", ["sleep", "600"], env=["PATH=/bin"]))
    pid = runtime.containers.get(cid).pid
    assert pid
    exe = Path(f"/proc/{pid}/exe")
    # Until `start`, the init is crun waiting to exec the command: the agent's copy, the one file
    # every create runs (so no create made a copy of its own).
    assert os.stat(exe).st_ino == os.stat(runtime.oci.runtime).st_ino != os.stat(host_crun).st_ino
    held = os.open(exe, os.O_PATH)
    try:
        readable = os.open(f"/proc/self/fd/{held}", os.O_RDONLY)
        try:
            assert fcntl.fcntl(readable, fcntl.F_GET_SEALS) == RUNTIME_MEMFD_SEALS
        finally:
            os.close(readable)
        await runtime.start_container(cid)
        assert (await runtime.container_status(cid)).state is ContainerState.RUNNING
        # The attack reopens what it holds for writing once crun no longer runs from it. `crun
        # start` returns once it told the init to go on, before the init's execve of the command:
        # while the init still runs the copy, the kernel refuses a write open with ETXTBSY first.
        deadline = asyncio.get_running_loop().time() + 30
        while os.stat(exe).st_ino == os.stat(runtime.oci.runtime).st_ino:
            assert asyncio.get_running_loop().time() < deadline, "the init never ran its command"
            await asyncio.sleep(0.01)
        with pytest.raises(PermissionError) as refused:
            writable = os.open(f"/proc/self/fd/{held}", os.O_WRONLY)
            try:
                os.write(writable, b"#!/bin/sh\n")
            finally:
                os.close(writable)
        assert refused.value.errno == errno.EPERM
    finally:
        os.close(held)
    assert _digest(host_crun) == before
    await runtime.stop_container(cid, 0)
    await runtime.remove_pod_sandbox(sid)
