"""A client of a gVisor sandbox's control server: what `runsc kill` and `runsc exec` ask the
sandbox, without executing runsc (each of those is a Go program's start and a read of runsc's
state under its locks: 60-150 ms on the way of every replace and warm-pool start).

The server is gVisor's urpc (pkg/urpc) on the abstract unix socket `runsc create` makes for the
sandbox, `@runsc-sandbox.<sandbox id>`, in the network namespace runsc ran in (the host's). One
call is one JSON object `{"method": ..., "arg": ...}` on a stream socket; the answer is one JSON
object `{"success": ..., "err": ..., "result": ...}` (files would come as SCM_RIGHTS, and none of
the calls here pass any). The methods and arguments are runsc/boot/controller.go's at
release-20221219, Debian's runsc.
"""
from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from typing import Union

JSONValue = Union[None, bool, int, float, str, list["JSONValue"], dict[str, "JSONValue"]]

# runsc/boot.ControlSocketAddr, bound with its terminating NUL in the name (unet counts it)
CONTROL_SOCKET = "\0runsc-sandbox.{}\0"
_MAX_REPLY = 64 * 1024  # the answers here are a few bytes; a longer one is not the server's
_CONNECT_SECONDS = 5.0
_DELIVER_TO_PROCESS = 0  # boot.SignalDeliveryMode: the container's init only, as `runsc kill` without --all


class ControlError(Exception):
    """The call reached no sandbox, or its answer was not urpc's."""


class RemoteError(ControlError):
    """The sandbox answered with an error (a container it does not run, a failed exec)."""


@dataclass(frozen=True)
class Capabilities:
    """auth.TaskCapabilities: bit sets of capabilities in the sandbox's kernel."""
    permitted: int
    effective: int
    bounding: int

    def to_json(self) -> dict[str, JSONValue]:
        return {"PermittedCaps": self.permitted, "InheritableCaps": 0, "EffectiveCaps": self.effective,
                "BoundingCaps": self.bounding, "AmbientCaps": 0}


@dataclass(frozen=True)
class Exec:
    """control.ExecArgs: a process run in a container, with no stdio (no files passed)."""
    container_id: str
    filename: str
    argv: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    capabilities: Capabilities | None = None

    def to_json(self) -> dict[str, JSONValue]:
        return {"Filename": self.filename, "Argv": list(self.argv), "Envv": list(self.env),
                "WorkingDirectory": self.cwd, "KUID": self.uid, "KGID": self.gid, "ExtraKGIDs": [],
                "Capabilities": None if self.capabilities is None else self.capabilities.to_json(),
                "StdioIsPty": False, "ContainerID": self.container_id}


class SandboxControl:
    """One sandbox's control server; each call on a connection of its own."""

    def __init__(self, sandbox_id: str) -> None:
        self.sandbox_id = sandbox_id

    async def call(self, method: str, arg: JSONValue) -> JSONValue:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_unix_connection(CONTROL_SOCKET.format(self.sandbox_id)), _CONNECT_SECONDS)
        except (OSError, asyncio.TimeoutError) as exc:
            raise ControlError(f"no control server for sandbox {self.sandbox_id}: {exc}") from exc
        try:
            writer.write(json.dumps({"method": method, "arg": arg}).encode())
            await writer.drain()
            answer = await _read_one(reader)
        finally:
            writer.close()
            await asyncio.gather(writer.wait_closed(), return_exceptions=True)
        if not isinstance(answer, dict):
            raise ControlError(f"{method}: not a urpc answer: {answer!r:.200}")
        if not answer.get("success"):
            raise RemoteError(f"{method}: {answer.get('err') or 'failed'}")
        return answer.get("result")

    async def signal(self, container_id: str, signo: int) -> None:
        """`signo` to the init process of the container (containerManager.Signal)."""
        await self.call("containerManager.Signal",
                        {"CID": container_id, "Signo": signo, "PID": 0, "Mode": _DELIVER_TO_PROCESS})

    async def run(self, process: Exec) -> int:
        """Runs `process` to its end (containerManager.ExecuteAsync, then WaitPID) and returns its
        exit code, negative for a signal as subprocess's."""
        pid = await self.call("containerManager.ExecuteAsync", process.to_json())
        if not isinstance(pid, int) or isinstance(pid, bool):
            raise ControlError(f"ExecuteAsync: not a pid: {pid!r:.200}")
        status = await self.call("containerManager.WaitPID", {"PID": pid, "CID": process.container_id})
        if not isinstance(status, int) or isinstance(status, bool):
            raise ControlError(f"WaitPID: not a wait status: {status!r:.200}")
        return os.waitstatus_to_exitcode(status)


async def _read_one(reader: asyncio.StreamReader) -> JSONValue:
    """One JSON value off the stream: urpc frames nothing, the value's end is the message's."""
    data = b""
    decoder = json.JSONDecoder()
    while len(data) < _MAX_REPLY:
        chunk = await reader.read(_MAX_REPLY - len(data))
        if not chunk:
            break
        data += chunk
        try:
            value, _ = decoder.raw_decode(data.decode())
        except (ValueError, UnicodeDecodeError):
            continue
        return value  # type: ignore[no-any-return]
    raise ControlError(f"the control server's answer ended or overran {_MAX_REPLY} bytes: {data[:200]!r}")
