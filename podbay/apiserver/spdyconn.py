"""The server side of a SPDY/3.1 streaming connection, as apimachinery's
httpstream/spdy.NewServerConnection runs it over moby/spdystream: every stream the client
opens is accepted with a SYN_REPLY and handed over; its data comes in order; FIN is a
half-close each way; the client's PINGs are echoed.

Bounded: at most `max_streams` streams at once (more are refused with RST_STREAM), a
small queue of data frames per stream (a slow reader holds the connection, as in
spdystream), frames no longer than spdy.MAX_FRAME_LENGTH.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from podbay.api import spdy
from podbay.apiserver.upgrade import Duplex

log = logging.getLogger(__name__)
WRITE_CHUNK = 32 * 1024
_QUEUED_FRAMES = 16


class SpdyStream:
    def __init__(self, session: "SpdySession", stream_id: int, headers: spdy.Headers) -> None:
        self.session = session
        self.id = stream_id
        self.headers = headers
        self._incoming: asyncio.Queue[bytes | None] = asyncio.Queue(_QUEUED_FRAMES)
        self.remote_closed = False
        self.local_closed = False
        self.reset = False

    def header(self, name: str) -> str | None:
        return spdy.header(self.headers, name)

    async def read(self) -> bytes:
        """The next data; b"" once the client has closed its side (or the stream is gone)."""
        if self.reset and self._incoming.empty():
            return b""
        chunk = await self._incoming.get()
        if chunk is None:
            self._incoming.put_nowait(None)  # every later read sees the end too
            return b""
        return chunk

    async def write(self, data: bytes) -> None:
        if self.local_closed or self.reset:
            return
        for i in range(0, len(data), WRITE_CHUNK):
            await self.session.send(spdy.Data(self.id, data[i:i + WRITE_CHUNK]))

    async def close(self) -> None:
        """Half-closes our side (FIN): the client reads its end of file."""
        if self.local_closed or self.reset:
            return
        self.local_closed = True
        await self.session.send(spdy.Data(self.id, b"", fin=True))
        self._maybe_forget()

    async def _deliver(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            await self._incoming.put(data)
        if fin:
            self._finish_remote()

    def _finish_remote(self) -> None:
        if not self.remote_closed:
            self.remote_closed = True
            try:
                self._incoming.put_nowait(None)
            except asyncio.QueueFull:  # the reader sees the end after what it has queued
                self.session.pending.add(asyncio.ensure_future(self._incoming.put(None)))
            self._maybe_forget()

    def _reset(self) -> None:
        self.reset = True
        self._finish_remote()
        self.session.forget(self)

    def _maybe_forget(self) -> None:
        if self.local_closed and self.remote_closed:
            self.session.forget(self)


class SpdySession:
    def __init__(self, io: Duplex, max_streams: int, validate: Callable[[spdy.Headers], str | None]) -> None:
        """`validate` checks a new stream's headers before it is accepted: an error
        message refuses it with RST_STREAM, as a failing spdy.NewServerConnection handler does."""
        self._io = io
        self._validate = validate
        self.pending: set[asyncio.Future[None]] = set()
        self._max_streams = max_streams
        self._compressor = spdy.HeaderCompressor()
        self._reader = spdy.FrameReader()
        self._write_lock = asyncio.Lock()
        self._streams: dict[int, SpdyStream] = {}
        self._last_stream_id = 0
        self.new_streams: asyncio.Queue[SpdyStream | None] = asyncio.Queue()
        self.closed = False

    async def send(self, frame: spdy.Frame) -> None:
        if self.closed:
            return
        async with self._write_lock:  # the compressor's state follows the order frames leave in
            try:
                await self._io.write(spdy.encode_frame(frame, self._compressor))
            except (ConnectionError, RuntimeError):
                self.closed = True

    def forget(self, stream: SpdyStream) -> None:
        self._streams.pop(stream.id, None)

    async def serve(self) -> None:
        """Reads frames until the client goes away or breaks the protocol; then every
        stream reads its end and `new_streams` yields None."""
        try:
            while not self.closed:
                data = await self._io.read()
                if not data:
                    return
                for frame in self._reader.feed(data):
                    if not await self._handle(frame):
                        return
        except spdy.ProtocolError as exc:
            log.info("SPDY protocol error from the client: %s", exc)
            await self.send(spdy.GoAway(self._last_stream_id, spdy.PROTOCOL_ERROR))
        except ConnectionError:
            pass
        finally:
            self.closed = True
            for stream in list(self._streams.values()):
                stream._reset()  # noqa: SLF001
            self.new_streams.put_nowait(None)

    async def _handle(self, frame: spdy.Frame) -> bool:
        if isinstance(frame, spdy.SynStream):
            await self._open(frame)
        elif isinstance(frame, spdy.Data):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                await stream._deliver(frame.data, frame.fin)  # noqa: SLF001
        elif isinstance(frame, spdy.RstStream):
            stream = self._streams.get(frame.stream_id)
            if stream is not None:
                stream._reset()  # noqa: SLF001
        elif isinstance(frame, spdy.HeadersFrame):
            stream = self._streams.get(frame.stream_id)
            if stream is not None and frame.fin:
                await stream._deliver(b"", True)  # noqa: SLF001
        elif isinstance(frame, spdy.Ping):
            if frame.ping_id % 2 == 1:  # the client's (odd); ours would be even
                await self.send(frame)
        elif isinstance(frame, spdy.GoAway):
            return False
        return True

    async def _open(self, frame: spdy.SynStream) -> None:
        # Client streams are odd and increasing (spdystream's validateStreamId).
        if frame.stream_id % 2 == 0 or frame.stream_id <= self._last_stream_id:
            await self.send(spdy.RstStream(frame.stream_id, spdy.PROTOCOL_ERROR))
            return
        self._last_stream_id = frame.stream_id
        if len(self._streams) >= self._max_streams:
            await self.send(spdy.RstStream(frame.stream_id, spdy.REFUSED_STREAM))
            return
        problem = self._validate(frame.headers)
        if problem is not None:
            log.info("refusing SPDY stream %d: %s", frame.stream_id, problem)
            await self.send(spdy.RstStream(frame.stream_id, spdy.CANCEL))
            return
        stream = SpdyStream(self, frame.stream_id, frame.headers)
        self._streams[frame.stream_id] = stream
        if frame.fin or frame.unidirectional:
            stream._finish_remote()  # noqa: SLF001
        await self.send(spdy.SynReply(frame.stream_id, {}))
        self.new_streams.put_nowait(stream)

    async def close(self) -> None:
        """GOAWAY, then the connection closes: the client's streams all end."""
        if not self.closed:
            await self.send(spdy.GoAway(self._last_stream_id))
        self.closed = True
        await self._io.close()
