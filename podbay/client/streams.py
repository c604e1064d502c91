"""A streamed exec from the client's side: pods/{name}/exec over a WebSocket in
`v5.channel.k8s.io` (or `v4.channel.k8s.io`), as client-go's WebSocket executor speaks it.

    async with client.exec_stream("web", "default", ["sh"], stdin=True, tty=True) as stream:
        await stream.write_stdin(b"ls\\n")
        async for channel, data in stream:      # (STDOUT | STDERR, bytes)
            ...
        stream.exit_code                        # the command's, once the stream has ended
"""
from __future__ import annotations

import json
from typing import Any, AsyncIterator

import aiohttp

from podbay.api import remotecommand as rc
from podbay.api.channels import channel_messages
from podbay.api.errors import APIError
from podbay.client.errors import error_from_status


class ExecStream:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws
        self.protocol = rc.Protocol(ws.protocol or "")
        self.status: dict[str, Any] | None = None
        self._stdin_closed = False

    @property
    def exit_code(self) -> int | None:
        """The command's exit code from its final status; None before the end."""
        return None if self.status is None else rc.status_exit_code(self.status)

    async def write_stdin(self, data: bytes) -> None:
        await self.protocol.send(self._ws, rc.STDIN, data)

    async def close_stdin(self) -> None:
        """End of input (v5). With v4 there is no half-close: input simply stops."""
        if self.protocol.half_close and not self._stdin_closed:
            self._stdin_closed = True
            await self._ws.send_bytes(bytes([rc.CLOSE, rc.STDIN]))

    async def resize(self, width: int, height: int) -> None:
        await self.protocol.send(self._ws, rc.RESIZE, rc.resize_message(width, height))

    async def __aiter__(self) -> AsyncIterator[tuple[int, bytes]]:
        """(channel, data) of stdout and stderr until the server closes the stream; the
        final status is kept in `status`. A failure to run the command is raised."""
        async for channel, data in channel_messages(self._ws, self.protocol):
            if channel in (rc.STDOUT, rc.STDERR) and data:
                yield channel, data
            elif channel == rc.ERROR and data:
                self.status = json.loads(data)
        if self.status is None:
            raise APIError("the exec stream ended without the command's status")
        if self.exit_code is None:
            raise error_from_status({"code": 500, **self.status})

    async def close(self) -> None:
        await self._ws.close()
