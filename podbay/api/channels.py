"""The reading side of the channel WebSocket protocols (channel.k8s.io, v4/v5, base64): the
(channel, data) messages a WebSocket delivers, as apimachinery's wsstream reads them. One loop
for every end that reads them: the agent's exec, attach and port-forward, the API server's
relays between SPDY and the agent, and the client's exec."""
from __future__ import annotations

from typing import AsyncIterable, AsyncIterator, Protocol as _Protocol

from podbay.api.remotecommand import Protocol

# RFC 6455's opcodes, which aiohttp's WSMsgType takes as its values.
TEXT_FRAME = 0x1
BINARY_FRAME = 0x2


class Frame(_Protocol):
    """A received WebSocket message (aiohttp's WSMessage, of either side)."""

    @property
    def type(self) -> int: ...

    @property
    def data(self) -> object: ...


async def channel_messages(frames: AsyncIterable[Frame], protocol: Protocol) -> AsyncIterator[tuple[int, bytes]]:
    """(channel, data) of each data message in `frames` until the WebSocket closes; control
    frames, empty messages and ones `protocol` cannot decode are skipped. A v5 close comes as
    (CLOSE, bytes([channel]))."""
    async for frame in frames:
        if frame.type not in (TEXT_FRAME, BINARY_FRAME) or not isinstance(frame.data, (bytes, str)):
            continue
        decoded = protocol.decode(frame.data)
        if decoded is not None:
            yield decoded
