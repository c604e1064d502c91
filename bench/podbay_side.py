"""podbay as the benchmark drives it: its own server (`podbay up`) on private roots,
reached through the official API paths with podbay's client, as a user's tools would."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable

from bench.hostnet import claimed_host
from podbay.api import Pod
from podbay.api.formats import load_pods
from podbay.client import Client

ROOT = Path(__file__).resolve().parent.parent


class PodbayServer:
    def __init__(self, *flags: str, tree: Path = ROOT) -> None:
        self.tree = tree  # whose podbay runs: this checkout's, or another's to compare with
        self._claims = contextlib.ExitStack()
        self.host = self._claims.enter_context(claimed_host())
        self.base = Path(tempfile.mkdtemp(prefix="podbay-bench-"))
        self.flags = ["--state-root", str(self.base / "lib"), "--run-root", str(self.base / "run"),
                      *self.host.flags(), "--node-name", "bench-node",
                      # The benchmark drives the socket; 6443 may be a real podbay's.
                      "--api-port", "0", *flags]
        self.podbay("up")
        self.client = Client.connect(f"unix://{self.base / 'run' / 'api.sock'}")

    def podbay(self, *args: str) -> str:
        proc = subprocess.run([sys.executable, "-m", "podbay", *self.flags, *args], capture_output=True, text=True,
                              cwd=self.tree)
        if proc.returncode != 0:
            raise RuntimeError(f"podbay {' '.join(args)}: {proc.stderr.strip()}")
        return proc.stdout

    def server_pid(self) -> int:
        return int((self.base / "run" / "podbay.pid").read_text())

    async def wait_pods(self, names: set[str], check: Callable[[Pod | None], bool]) -> None:
        """Until every named pod satisfies `check` (None for a deleted pod), from the watch
        stream that continues the list, so no change between the two is missed."""
        pending = set(names)
        pods, rv = await self.client.list(Pod, "default")
        present = {p.metadata.name for p in pods}
        for p in pods:
            if p.metadata.name in pending and check(p):
                pending.discard(p.metadata.name)
        pending -= {n for n in pending if n not in present and check(None)}
        if not pending:
            return
        async for kind, p in self.client.watch(Pod, "default", resource_version=rv):
            if p.metadata.name in pending and check(None if kind == "DELETED" else p):
                pending.discard(p.metadata.name)
                if not pending:
                    return

    async def close(self) -> None:
        await self.client.close()
        try:
            self.podbay("down", "--purge")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            self._claims.close()


def all_running(pod: Pod | None) -> bool:
    return pod is not None and bool(pod.status.container_statuses) and all(
        cs.state is not None and cs.state.running is not None for cs in pod.status.container_statuses) and len(
        pod.status.container_statuses) == len(pod.spec.containers)


def pod_from(text: str) -> Pod:
    return load_pods(text)[0]

