"""Paths into a running container: exec (CRI's ExecSync and Exec) and attach."""
from __future__ import annotations

import asyncio
import contextlib
import secrets

from podbay.runtime.attach import AttachSession, attach as attach_container
from podbay.runtime.bundles import exec_process
from podbay.runtime.containers import Containers
from podbay.runtime.execsession import ExecSession, start_exec
from podbay.runtime.types import ContainerRuntimeError


class Execs:
    def __init__(self, containers: Containers) -> None:
        self.containers = containers

    async def exec_sync(self, container_id: str, argv: list[str], timeout: float | None = None
                        ) -> tuple[int, bytes, bytes]:
        """Runs a command in the container; a command that overruns `timeout` is killed."""
        handler = self.containers.handler_of(self.containers.running(container_id))
        proc = await handler.exec(container_id, exec_process(self.containers.process(container_id), argv, tty=False))
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout or None)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
        if proc.returncode and ((await handler.state(container_id)) or {}).get("status") != "running":
            # It stopped after the check above, so crun could not enter it: crun's own failure is
            # not the command's answer (a chaos run got exit 1 and "the container is not running").
            raise ContainerRuntimeError(f"container {container_id} is not running")
        return proc.returncode or 0, out, err

    async def exec(self, container_id: str, argv: list[str], *, tty: bool, stdin: bool, stdout: bool,
                   stderr: bool) -> ExecSession:
        """A streamed exec: the streams asked for (with `tty`, one terminal for all)."""
        handler = self.containers.handler_of(self.containers.running(container_id))
        return await start_exec(handler, container_id, exec_process(self.containers.process(container_id), argv, tty),
                                self.containers.config.run_root / "exec" / secrets.token_hex(8), stdin=stdin,
                                stdout=stdout, stderr=stderr)

    async def attach(self, container_id: str, *, tty: bool, stdin: bool, stdout: bool,
                     stderr: bool) -> AttachSession:
        """The running container's own stdio through conmon."""
        self.containers.running(container_id)
        return await attach_container(self.containers.bundle(container_id), tty=tty, stdin=stdin, stdout=stdout,
                                      stderr=stderr)
