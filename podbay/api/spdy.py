"""SPDY/3.1 framing as Kubernetes' streaming connections use it (apimachinery's
util/httpstream/spdy over moby/spdystream), as pure rules: frames to and from bytes and
the header blocks' zlib compression with SPDY/3's dictionary.

Only what a streaming server needs is modelled: streams the client opens (SYN_STREAM)
and the server accepts (SYN_REPLY), their data with FIN as the half-close, RST_STREAM,
PING (echoed), GOAWAY, and SETTINGS / WINDOW_UPDATE, which spdystream sends or ignores
and which carry nothing a server must act on (spdystream does no flow control).

Every frame is bounded: a header ever longer than MAX_FRAME_LENGTH, or a header block
that inflates past MAX_HEADER_BLOCK, is a protocol error that ends the connection.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
# RST_STREAM status codes (SPDY/3 section 2.4.2)
PROTOCOL_ERROR, REFUSED_STREAM, CANCEL = 1, 3, 5

# Client libraries write at most 32 KiB per data frame (io.Copy's buffer); a megabyte
# leaves room while keeping one frame's buffering bounded.
MAX_FRAME_LENGTH = 1 << 20
MAX_HEADER_BLOCK = 64 * 1024
MAX_HEADERS = 100
_STREAM_ID_MASK = 0x7FFFFFFF


def _dictionary() -> bytes:
    """SPDY/3's header compression dictionary (draft 3, section 2.6.10.1): header names
    and common values, each with its 32-bit length, then a run of common value text."""
    words = (
        "options head post put delete trace accept accept-charset accept-encoding accept-language "
        "accept-ranges age allow authorization cache-control connection content-base content-encoding "
        "content-language content-length content-location content-md5 content-range content-type date "
        "etag expect expires from host if-match if-modified-since if-none-match if-range "
        "if-unmodified-since last-modified location max-forwards pragma proxy-authenticate "
        "proxy-authorization range referer retry-after server te trailer transfer-encoding upgrade "
        "user-agent vary via warning www-authenticate method get status"
    ).split() + ["200 OK"] + "version HTTP/1.1 url public set-cookie keep-alive origin".split()
    tail = (
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505"
        "203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request"
        "401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented"
        "503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 "
        "Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,"
        "application/xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age="
        "gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
    )
    return b"".join(struct.pack(">I", len(w)) + w.encode() for w in words) + tail.encode()


DICTIONARY = _dictionary()


class ProtocolError(Exception):
    """The peer broke SPDY: the connection cannot go on."""


Headers = dict[str, list[str]]


@dataclass(frozen=True)
class SynStream:
    stream_id: int
    headers: Headers
    fin: bool = False
    unidirectional: bool = False
    associated_to: int = 0
    priority: int = 0


@dataclass(frozen=True)
class SynReply:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class RstStream:
    stream_id: int
    status: int


@dataclass(frozen=True)
class Settings:
    entries: tuple[tuple[int, int, int], ...]  # (flags, id, value)


@dataclass(frozen=True)
class Ping:
    ping_id: int


@dataclass(frozen=True)
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass(frozen=True)
class HeadersFrame:
    stream_id: int
    headers: Headers
    fin: bool = False


@dataclass(frozen=True)
class WindowUpdate:
    stream_id: int
    delta: int


@dataclass(frozen=True)
class Data:
    stream_id: int
    data: bytes
    fin: bool = False


Frame = SynStream | SynReply | RstStream | Settings | Ping | GoAway | HeadersFrame | WindowUpdate | Data


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: names lowercased, several values of one name
    joined by NUL as SPDY/3 (and Go's framer) writes them."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        key, value = name.lower().encode(), b"\x00".join(v.encode() for v in values)
        out.append(struct.pack(">I", len(key)) + key + struct.pack(">I", len(value)) + value)
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(block):
            raise ProtocolError("truncated header block")
        chunk = block[pos:pos + n]
        pos += n
        return chunk

    (count,) = struct.unpack(">I", take(4))
    if count > MAX_HEADERS:
        raise ProtocolError(f"too many headers: {count}")
    headers: Headers = {}
    for _ in range(count):
        (n,) = struct.unpack(">I", take(4))
        name = take(n).decode("latin-1").lower()
        (n,) = struct.unpack(">I", take(4))
        value = take(n).decode("latin-1")
        if not name or name in headers:
            raise ProtocolError(f"invalid or repeated header name {name!r}")
        headers[name] = value.split("\x00")
    return headers


def header(headers: Headers, name: str) -> str | None:
    """A header's first value, the way Go's http.Header.Get reads it."""
    values = headers.get(name.lower())
    return values[0] if values else None


@dataclass
class HeaderCompressor:
    """One direction's header compression: a single zlib stream for the connection's life."""

    _z: "zlib._Compress" = field(default_factory=lambda: zlib.compressobj(zlib.Z_BEST_COMPRESSION, zdict=DICTIONARY))

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


@dataclass
class HeaderDecompressor:
    _z: "zlib._Decompress" = field(default_factory=lambda: zlib.decompressobj(zdict=DICTIONARY))

    def decompress(self, data: bytes) -> Headers:
        try:
            block = self._z.decompress(data, MAX_HEADER_BLOCK)
        except zlib.error as exc:
            raise ProtocolError(f"header block: {exc}") from None
        if self._z.unconsumed_tail:
            raise ProtocolError(f"header block inflates past {MAX_HEADER_BLOCK} bytes")
        return decode_header_block(block)


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    if len(payload) >= 1 << 24:
        raise ValueError("frame too long")
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode_frame(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """The bytes of `frame`; header blocks go through this direction's `compressor`, so
    frames must be encoded in the order they are sent."""
    if isinstance(frame, Data):
        if len(frame.data) >= 1 << 24:
            raise ValueError("frame too long")
        return struct.pack(">II", frame.stream_id & _STREAM_ID_MASK,
                           ((FLAG_FIN if frame.fin else 0) << 24) | len(frame.data)) + frame.data
    if isinstance(frame, SynStream):
        flags = (FLAG_FIN if frame.fin else 0) | (FLAG_UNIDIRECTIONAL if frame.unidirectional else 0)
        return _control(SYN_STREAM, flags, struct.pack(">IIBB", frame.stream_id, frame.associated_to,
                                                       (frame.priority & 7) << 5, 0)
                        + compressor.compress(frame.headers))
    if isinstance(frame, SynReply):
        return _control(SYN_REPLY, FLAG_FIN if frame.fin else 0,
                        struct.pack(">I", frame.stream_id) + compressor.compress(frame.headers))
    if isinstance(frame, HeadersFrame):
        return _control(HEADERS, FLAG_FIN if frame.fin else 0,
                        struct.pack(">I", frame.stream_id) + compressor.compress(frame.headers))
    if isinstance(frame, RstStream):
        return _control(RST_STREAM, 0, struct.pack(">II", frame.stream_id, frame.status))
    if isinstance(frame, Settings):
        body = struct.pack(">I", len(frame.entries)) + b"".join(
            struct.pack(">II", (flags << 24) | ident, value) for flags, ident, value in frame.entries)
        return _control(SETTINGS, 0, body)
    if isinstance(frame, Ping):
        return _control(PING, 0, struct.pack(">I", frame.ping_id))
    if isinstance(frame, GoAway):
        return _control(GOAWAY, 0, struct.pack(">II", frame.last_good_stream_id, frame.status))
    return _control(WINDOW_UPDATE, 0, struct.pack(">II", frame.stream_id, frame.delta))


@dataclass
class FrameReader:
    """Frames out of a byte stream fed in pieces; one per connection direction (it owns
    that direction's header decompressor)."""

    decompressor: HeaderDecompressor = field(default_factory=HeaderDecompressor)
    _buffer: bytearray = field(default_factory=bytearray)

    def feed(self, data: bytes) -> list[Frame]:
        self._buffer += data
        frames: list[Frame] = []
        while len(self._buffer) >= 8:
            word, flags_length = struct.unpack_from(">II", self._buffer)
            length = flags_length & 0xFFFFFF
            if length > MAX_FRAME_LENGTH:
                raise ProtocolError(f"frame of {length} bytes exceeds {MAX_FRAME_LENGTH}")
            if len(self._buffer) < 8 + length:
                break
            payload = bytes(self._buffer[8:8 + length])
            del self._buffer[:8 + length]
            flags = flags_length >> 24
            if word & 0x80000000:
                frame = self._control(word, flags, payload)
                if frame is not None:
                    frames.append(frame)
            else:
                frames.append(Data(word & _STREAM_ID_MASK, payload, bool(flags & FLAG_FIN)))
        return frames

    def _control(self, word: int, flags: int, payload: bytes) -> Frame | None:
        version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
        if version != VERSION:
            raise ProtocolError(f"unsupported SPDY version {version}")
        fin = bool(flags & FLAG_FIN)

        def need(n: int) -> None:
            if len(payload) < n:
                raise ProtocolError(f"control frame {kind} too short")

        if kind == SYN_STREAM:
            need(10)
            stream_id, associated, priority = struct.unpack_from(">IIB", payload)
            return SynStream(stream_id & _STREAM_ID_MASK, self.decompressor.decompress(payload[10:]), fin,
                             bool(flags & FLAG_UNIDIRECTIONAL), associated & _STREAM_ID_MASK, priority >> 5)
        if kind in (SYN_REPLY, HEADERS):
            need(4)
            (stream_id,) = struct.unpack_from(">I", payload)
            headers = self.decompressor.decompress(payload[4:])
            cls = SynReply if kind == SYN_REPLY else HeadersFrame
            return cls(stream_id & _STREAM_ID_MASK, headers, fin)
        if kind == RST_STREAM:
            need(8)
            stream_id, status = struct.unpack_from(">II", payload)
            return RstStream(stream_id & _STREAM_ID_MASK, status)
        if kind == SETTINGS:
            need(4)
            (count,) = struct.unpack_from(">I", payload)
            need(4 + 8 * count)
            entries = []
            for i in range(count):
                ident, value = struct.unpack_from(">II", payload, 4 + 8 * i)
                entries.append((ident >> 24, ident & 0xFFFFFF, value))
            return Settings(tuple(entries))
        if kind == PING:
            need(4)
            return Ping(struct.unpack_from(">I", payload)[0])
        if kind == GOAWAY:
            need(4)
            (last,) = struct.unpack_from(">I", payload)
            status = struct.unpack_from(">I", payload, 4)[0] if len(payload) >= 8 else 0
            return GoAway(last & _STREAM_ID_MASK, status)
        if kind == WINDOW_UPDATE:
            need(8)
            stream_id, delta = struct.unpack_from(">II", payload)
            return WindowUpdate(stream_id & _STREAM_ID_MASK, delta & _STREAM_ID_MASK)
        return None  # SPDY/3: unknown control frames are ignored


def negotiate(offered: list[str], supported: tuple[str, ...]) -> str | None:
    """The stream protocol of an upgrade (X-Stream-Protocol-Version): the first the client
    offers that the server speaks, as httpstream.Handshake chooses."""
    return next((p for p in offered if p in supported), None)


def offered_versions(values: list[str]) -> list[str]:
    """X-Stream-Protocol-Version's values, repeated headers and comma lists alike."""
    return [p.strip() for v in values for p in v.split(",") if p.strip()]
