"""Pinned namespaces made in-process: new network, UTS and IPC namespaces, the UTS one with the
pod's hostname, held by their files, while the process keeps its own."""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import threading

import pytest

from podbay.runtime.namespaces import loopback_up, pin_namespaces, unpin_namespaces
from podbay.runtime.syscalls import is_mountpoint
from tests.conftest import HostEnv
from tests.polling import wait_until

pytestmark = pytest.mark.e2e


async def test_net_uts_and_ipc_are_new_named_and_held_by_their_files(host_env: HostEnv) -> None:
    directory = host_env.run_root / "ns-test"
    own_hostname = socket.gethostname()
    pinned = await pin_namespaces(directory, "pinned-pod", ("net", "uts", "ipc"))
    try:
        inside = subprocess.run(["nsenter", f"--uts={pinned.path('uts')}", "hostname"], capture_output=True, text=True)
        assert inside.stdout.strip() == "pinned-pod", inside.stderr
        for kind in ("net", "uts", "ipc"):
            assert os.stat(pinned.path(kind)).st_ino != os.stat(f"/proc/self/ns/{kind}").st_ino
        links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout
        inside_links = subprocess.run(["nsenter", f"--net={pinned.path('net')}", "ip", "-o", "link"],
                                      capture_output=True, text=True, check=True).stdout
        assert [line.split(":")[1].strip() for line in inside_links.splitlines()] == ["lo"]  # only its own loopback
        assert inside_links != links
        assert socket.gethostname() == own_hostname  # the thread that made them is gone with its namespaces
    finally:
        unpin_namespaces(directory)
    assert not directory.exists() and not any(is_mountpoint(str(pinned.path(k))) for k in ("net", "uts", "ipc"))


async def test_namespaces_made_at_once_are_each_new_and_leave_one_spare_thread(host_env: HostEnv) -> None:
    # Each is made by a thread used once, whose spare successor a worker starts: many at once must
    # neither share a thread's namespaces nor leave threads behind.
    before = threading.active_count()
    directories = [host_env.run_root / f"ns-{i}" for i in range(12)]
    pinned = await asyncio.gather(*(pin_namespaces(d, f"pod-{i}", ("net", "uts")) for i, d in enumerate(directories)))
    try:
        await asyncio.gather(*(loopback_up(p.path("net")) for p in pinned))
        assert len({os.stat(p.path("net")).st_ino for p in pinned}) == len(pinned)
        for i, p in enumerate(pinned):
            inside = subprocess.run(["nsenter", f"--uts={p.path('uts')}", f"--net={p.path('net')}", "sh", "-c",
                                     "hostname; cat /sys/class/net/lo/operstate"], capture_output=True, text=True)
            assert inside.stdout.split() == [f"pod-{i}", "unknown"], inside.stderr
        await wait_until(lambda: threading.active_count() <= before + 1, "the workers ended", 10)
    finally:
        for d in directories:
            unpin_namespaces(d)
