"""SPDY/3.1 framing and the server session as pure rules and in memory: frames both
ways, header blocks through zlib with SPDY/3's dictionary, the bounds, and what the
session does with the client's streams, data, pings and mistakes."""
from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from podbay.api import spdy
from podbay.apiserver.spdyconn import SpdySession


def test_the_dictionary_is_spdy3s() -> None:
    # The zlib stream of every header block names its dictionary by Adler-32 (DICTID);
    # kubectl's framer (Go's, after the draft) uses this one.
    assert len(spdy.DICTIONARY) == 1423
    assert zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2
    assert spdy.DICTIONARY.startswith(b"\x00\x00\x00\x07options\x00\x00\x00\x04head")
    assert spdy.DICTIONARY.endswith(b",utf-,*,enq=0.")


def test_header_blocks_use_one_zlib_stream_per_direction() -> None:
    compressor, decompressor = spdy.HeaderCompressor(), spdy.HeaderDecompressor()
    first = compressor.compress({"streamType": ["error"], "port": ["80"], "requestID": ["0"]})
    second = compressor.compress({"streamtype": ["data"], "port": ["80"], "requestid": ["0"]})
    # The second block relies on the first's history: a fresh decompressor cannot read it alone.
    assert decompressor.decompress(first) == {"streamtype": ["error"], "port": ["80"], "requestid": ["0"]}
    assert decompressor.decompress(second) == {"streamtype": ["data"], "port": ["80"], "requestid": ["0"]}
    with pytest.raises(spdy.ProtocolError):
        spdy.HeaderDecompressor().decompress(second)


def test_a_raw_zlib_block_with_the_dictionary_is_what_go_writes() -> None:
    block = spdy.encode_header_block({"x-stream-protocol-version": ["v4.channel.k8s.io", "v3.channel.k8s.io"]})
    z = zlib.compressobj(zdict=spdy.DICTIONARY)
    wire = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
    assert struct.unpack(">I", wire[2:6])[0] == zlib.adler32(spdy.DICTIONARY)  # FDICT's id
    assert spdy.HeaderDecompressor().decompress(wire) == {
        "x-stream-protocol-version": ["v4.channel.k8s.io", "v3.channel.k8s.io"]}


FRAMES: list[spdy.Frame] = [
    spdy.SynStream(1, {"streamtype": ["stdin"]}, fin=False, priority=0),
    spdy.SynStream(3, {"streamtype": ["error"]}, fin=True, unidirectional=True, associated_to=1, priority=7),
    spdy.SynReply(1, {}),
    spdy.HeadersFrame(1, {"a": ["b"]}, fin=True),
    spdy.RstStream(5, spdy.CANCEL),
    spdy.Settings(((0, 7, 65536), (1, 4, 100))),
    spdy.Ping(7),
    spdy.GoAway(9, spdy.PROTOCOL_ERROR),
    spdy.WindowUpdate(1, 1024),
    spdy.Data(1, b"hello", fin=False),
    spdy.Data(1, b"", fin=True),
]


def test_frames_round_trip_fed_in_any_pieces() -> None:
    compressor = spdy.HeaderCompressor()
    wire = b"".join(spdy.encode_frame(f, compressor) for f in FRAMES)
    for size in (1, 3, 7, len(wire)):
        reader = spdy.FrameReader()
        frames = [f for i in range(0, len(wire), size) for f in reader.feed(wire[i:i + size])]
        assert frames == FRAMES


def test_data_frame_layout() -> None:
    wire = spdy.encode_frame(spdy.Data(3, b"abc", fin=True), spdy.HeaderCompressor())
    assert wire == b"\x00\x00\x00\x03\x01\x00\x00\x03abc"


def test_control_frame_layout() -> None:
    wire = spdy.encode_frame(spdy.Ping(1), spdy.HeaderCompressor())
    assert wire == b"\x80\x03\x00\x06\x00\x00\x00\x04\x00\x00\x00\x01"


def test_bounds_and_mistakes_are_protocol_errors() -> None:
    with pytest.raises(spdy.ProtocolError, match="exceeds"):
        spdy.FrameReader().feed(struct.pack(">II", 1, spdy.MAX_FRAME_LENGTH + 1))
    with pytest.raises(spdy.ProtocolError, match="version"):
        spdy.FrameReader().feed(struct.pack(">HHI", 0x8000 | 2, spdy.PING, 4) + b"\0\0\0\1")
    with pytest.raises(spdy.ProtocolError, match="too short"):
        spdy.FrameReader().feed(struct.pack(">HHI", 0x8003, spdy.RST_STREAM, 4) + b"\0\0\0\1")
    # A header block that inflates past the bound (a zlib bomb) is refused, not inflated.
    bomb = zlib.compressobj(zdict=spdy.DICTIONARY)
    payload = bomb.compress(b"\0" * (spdy.MAX_HEADER_BLOCK * 4)) + bomb.flush(zlib.Z_SYNC_FLUSH)
    with pytest.raises(spdy.ProtocolError, match="inflates"):
        spdy.HeaderDecompressor().decompress(payload)
    with pytest.raises(spdy.ProtocolError, match="too many"):
        spdy.decode_header_block(struct.pack(">I", spdy.MAX_HEADERS + 1))
    with pytest.raises(spdy.ProtocolError, match="truncated"):
        spdy.decode_header_block(struct.pack(">II", 1, 10) + b"abc")


def test_unknown_control_frames_are_skipped() -> None:
    wire = struct.pack(">HHI", 0x8003, 42, 2) + b"xx" + spdy.encode_frame(spdy.Ping(3), spdy.HeaderCompressor())
    assert spdy.FrameReader().feed(wire) == [spdy.Ping(3)]


@pytest.mark.parametrize("offered, chosen", [
    (["v4.channel.k8s.io", "v3.channel.k8s.io"], "v4.channel.k8s.io"),
    (["v5.channel.k8s.io", "v4.channel.k8s.io"], "v5.channel.k8s.io"),
    (["v3.channel.k8s.io", "v2.channel.k8s.io"], None),
    ([], None),
])
def test_stream_protocol_negotiation_follows_the_client(offered: list[str], chosen: str | None) -> None:
    assert spdy.negotiate(offered, ("v5.channel.k8s.io", "v4.channel.k8s.io")) == chosen


def test_offered_versions_split_lists_and_repeats() -> None:
    assert spdy.offered_versions(["v4.channel.k8s.io, v3.channel.k8s.io", "channel.k8s.io"]) == [
        "v4.channel.k8s.io", "v3.channel.k8s.io", "channel.k8s.io"]


class Pipe:
    """The server's side of an in-memory connection; the test plays the client."""

    def __init__(self) -> None:
        self.incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.outgoing = spdy.FrameReader()
        self.sent: list[spdy.Frame] = []
        self.closed = False
        self._client = spdy.HeaderCompressor()

    def client_sends(self, *frames: spdy.Frame) -> None:
        self.incoming.put_nowait(b"".join(spdy.encode_frame(f, self._client) for f in frames))

    def client_leaves(self) -> None:
        self.incoming.put_nowait(b"")

    async def read(self) -> bytes:
        return await self.incoming.get()

    async def write(self, data: bytes) -> None:
        self.sent.extend(self.outgoing.feed(data))

    async def close(self) -> None:
        self.closed = True


async def until(check, timeout: float = 5) -> None:  # type: ignore[no-untyped-def]
    async def poll() -> None:
        while not check():
            await asyncio.sleep(0)
    await asyncio.wait_for(poll(), timeout)


async def test_session_accepts_streams_relays_data_and_half_closes() -> None:
    pipe = Pipe()
    session = SpdySession(pipe, max_streams=2, validate=lambda h: None)
    serving = asyncio.create_task(session.serve())
    pipe.client_sends(spdy.SynStream(1, {"streamtype": ["stdin"]}), spdy.Data(1, b"abc"), spdy.Data(1, b"", fin=True),
                      spdy.Ping(5), spdy.Ping(6))
    stream = await asyncio.wait_for(session.new_streams.get(), 5)
    assert stream is not None and stream.header("streamType") == "stdin"
    assert await stream.read() == b"abc"
    assert await stream.read() == b""  # the client's FIN
    await stream.write(b"x" * 40_000)  # split into frames of at most 32 KiB
    await stream.close()
    await until(lambda: any(isinstance(f, spdy.Ping) for f in pipe.sent))
    assert pipe.sent[0] == spdy.SynReply(1, {})
    data = [f for f in pipe.sent if isinstance(f, spdy.Data)]
    assert [len(f.data) for f in data] == [32768, 40_000 - 32768, 0] and data[-1].fin
    assert [f for f in pipe.sent if isinstance(f, spdy.Ping)] == [spdy.Ping(5)]  # the client's (odd) only
    pipe.client_leaves()
    await serving
    assert await session.new_streams.get() is None


async def test_session_refuses_bad_ids_too_many_streams_and_invalid_headers() -> None:
    pipe = Pipe()
    session = SpdySession(pipe, max_streams=1, validate=lambda h: None if "port" in h else "port required")
    serving = asyncio.create_task(session.serve())
    pipe.client_sends(spdy.SynStream(2, {"port": ["1"]}),  # even: the server's numbers
                      spdy.SynStream(3, {"port": ["1"]}),
                      spdy.SynStream(1, {"port": ["1"]}),  # not increasing
                      spdy.SynStream(5, {"port": ["1"]}))  # one stream at most
    await until(lambda: len(pipe.sent) >= 4)
    stream = session.new_streams.get_nowait()
    assert stream is not None
    await stream.close()
    pipe.client_sends(spdy.Data(3, b"", fin=True), spdy.SynStream(7, {}), spdy.SynStream(9, {"port": ["1"]}))
    await until(lambda: len(pipe.sent) >= 7)
    assert pipe.sent == [spdy.RstStream(2, spdy.PROTOCOL_ERROR), spdy.SynReply(3, {}),
                         spdy.RstStream(1, spdy.PROTOCOL_ERROR), spdy.RstStream(5, spdy.REFUSED_STREAM),
                         spdy.Data(3, b"", fin=True),  # closed both ways: the stream no longer counts
                         spdy.RstStream(7, spdy.CANCEL), spdy.SynReply(9, {})]
    pipe.client_leaves()
    await serving


async def test_session_ends_on_garbage_with_goaway_and_resets_its_streams() -> None:
    pipe = Pipe()
    session = SpdySession(pipe, max_streams=4, validate=lambda h: None)
    serving = asyncio.create_task(session.serve())
    pipe.client_sends(spdy.SynStream(1, {}))
    stream = await asyncio.wait_for(session.new_streams.get(), 5)
    assert stream is not None
    pipe.incoming.put_nowait(struct.pack(">HHI", 0x8002, spdy.PING, 4) + b"\0\0\0\1")  # SPDY/2
    await asyncio.wait_for(serving, 5)
    assert pipe.sent[-1] == spdy.GoAway(1, spdy.PROTOCOL_ERROR)
    assert await stream.read() == b"" and stream.reset
