"""The kubelet's gRPC probe (pkg/probe/grpc): `grpc.health.v1.Health/Check` over plaintext
HTTP/2 with prior knowledge, judged and worded as the kubelet does.

The wire parts (protobuf, gRPC message framing, grpc-timeout, reading a finished call) are
pure functions; `probe_grpc` is the one coroutine that talks to the server.
"""
from __future__ import annotations

import asyncio
import json
import random
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import h2.config
import h2.connection
import h2.events
import h2.exceptions

CHECK_PATH = "/grpc.health.v1.Health/Check"
SERVING = 1
SERVING_STATUS_NAMES = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}

# google.golang.org/grpc/codes, by number, as Code.String() spells them.
CODE_NAMES = ("OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
              "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange",
              "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated")
UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE = 2, 4, 12, 13, 14

# grpc-go's HTTPStatusConvTab: a non-gRPC HTTP answer becomes this status code (else Unknown).
HTTP_STATUS_CODES = {400: INTERNAL, 401: 16, 403: 7, 404: UNIMPLEMENTED, 429: UNAVAILABLE, 502: UNAVAILABLE,
                     503: UNAVAILABLE, 504: UNAVAILABLE}
HTTP_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
                415: "Unsupported Media Type", 429: "Too Many Requests", 500: "Internal Server Error",
                502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}

# grpc-go's mapping of an RST_STREAM error code to a status code (http2ErrConvTab).
RST_STREAM_CODES = {0x8: 1, 0x7: UNAVAILABLE, 0xB: 8, 0xC: 7}
RST_STREAM_NAMES = ("NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR", "SETTINGS_TIMEOUT",
                    "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL", "COMPRESSION_ERROR",
                    "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED")

# grpc-go's default connection backoff (backoff.DefaultConfig).
BACKOFF_BASE, BACKOFF_MULTIPLIER, BACKOFF_JITTER, BACKOFF_MAX = 1.0, 1.6, 0.2, 120.0


class RPCError(Exception):
    """A gRPC status other than OK, printed as grpc-go's status error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message

    def __str__(self) -> str:
        name = CODE_NAMES[self.code] if 0 <= self.code < len(CODE_NAMES) else f"Code({self.code})"
        return f"rpc error: code = {name} desc = {self.message}"


# -- protobuf: HealthCheckRequest{string service = 1}, HealthCheckResponse{ServingStatus status = 1}

def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(data):
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise ValueError("varint longer than 10 bytes")
    raise ValueError("truncated varint")


def encode_request(service: str) -> bytes:
    """HealthCheckRequest; proto3 leaves the default "" out."""
    if not service:
        return b""
    raw = service.encode()
    return b"\x0a" + _varint(len(raw)) + raw


def decode_response(payload: bytes) -> int:
    """HealthCheckResponse.status; unknown fields are skipped, a missing status is UNKNOWN (0)."""
    status, pos = 0, 0
    while pos < len(payload):
        key, pos = _read_varint(payload, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, pos = _read_varint(payload, pos)
            if number == 1:
                status = value & 0xFFFFFFFF  # enums are int32: Go keeps the low 32 bits, signed
                status = status - (1 << 32) if status >= 1 << 31 else status
        elif wire_type == 1:
            pos += 8
        elif wire_type == 2:
            length, pos = _read_varint(payload, pos)
            pos += length
        elif wire_type == 5:
            pos += 4
        else:
            raise ValueError(f"field {number} has unsupported wire type {wire_type}")
        if pos > len(payload):
            raise ValueError(f"field {number} is truncated")
    return status


def serving_status_name(status: int) -> str:
    """As Go's generated String(): the enum name, or the number for a value it does not know."""
    return SERVING_STATUS_NAMES.get(status, str(status))


# -- gRPC over HTTP/2 -------------------------------------------------------------------

def frame(payload: bytes) -> bytes:
    """One length-prefixed gRPC message, uncompressed."""
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


def unframe(body: bytes) -> list[bytes]:
    """The messages of a DATA stream; a compressed one is refused, since none was asked for."""
    messages, pos = [], 0
    while pos < len(body):
        if len(body) - pos < 5:
            raise RPCError(INTERNAL, "grpc: received message with a truncated header")
        if body[pos] != 0:
            raise RPCError(INTERNAL, "grpc: compressed flag set with identity or empty encoding")
        length = int.from_bytes(body[pos + 1:pos + 5], "big")
        if len(body) - pos - 5 < length:
            raise RPCError(INTERNAL, "grpc: received message with a truncated body")
        messages.append(body[pos + 5:pos + 5 + length])
        pos += 5 + length
    return messages


def encode_timeout(seconds: float) -> str:
    """The grpc-timeout header as grpc-go writes it: the finest unit whose value has at most 8 digits,
    rounded up."""
    nanos = int(seconds * 1e9)
    if nanos <= 0:
        return "0n"
    for unit, size in (("n", 1), ("u", 10**3), ("m", 10**6), ("S", 10**9), ("M", 60 * 10**9)):
        value = -(-nanos // size)
        if value <= 99_999_999:
            return f"{value}{unit}"
    return f"{-(-nanos // (3600 * 10**9))}H"


def request_headers(authority: str, user_agent: str, timeout: float) -> list[tuple[str, str]]:
    return [(":method", "POST"), (":scheme", "http"), (":path", CHECK_PATH), (":authority", authority),
            ("content-type", "application/grpc"), ("user-agent", user_agent), ("te", "trailers"),
            ("grpc-timeout", encode_timeout(timeout))]


@dataclass
class CallResult:
    """What the server sent on the call's stream: response headers, DATA, trailers."""
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    trailers: dict[str, str] = field(default_factory=dict)


def serving_status(call: CallResult) -> int:
    """The ServingStatus a finished call returned; a gRPC error as grpc-go reports it (RPCError)."""
    http_status = call.headers.get(":status")
    content_type = call.headers.get("content-type")
    is_grpc = content_type is not None and (content_type == "application/grpc"
                                            or content_type.startswith(("application/grpc+", "application/grpc;")))
    if http_status != "200" or not is_grpc:
        errors = []
        code = INTERNAL if http_status is None else UNKNOWN
        if http_status is not None and http_status != "200":
            number = int(http_status) if http_status.isdigit() else 0
            code = HTTP_STATUS_CODES.get(number, UNKNOWN)
            errors.append(f"unexpected HTTP status code received from server: {http_status} "
                          f"({HTTP_REASONS.get(number, '')})")
        if content_type is None:
            errors.append("transport: missing content-type field")
        elif not is_grpc:
            errors.append(f"transport: received unexpected content-type {go_quote(content_type)}")
        raise RPCError(code, "; ".join(errors))
    # A trailers-only answer carries grpc-status in its one HEADERS frame.
    final = call.trailers or call.headers
    if "grpc-status" not in final:
        raise RPCError(INTERNAL, "server closed the stream without sending trailers")
    code_text = final["grpc-status"]
    if not code_text.isdigit():
        raise RPCError(INTERNAL, f"transport: malformed grpc-status: {code_text}")
    if int(code_text) != 0:
        raise RPCError(int(code_text), urllib.parse.unquote(final.get("grpc-message", "")))
    messages = unframe(call.body)
    if len(messages) != 1:
        raise RPCError(INTERNAL, f"cardinality violation: expected 1 response message, received {len(messages)}")
    try:
        return decode_response(messages[0])
    except ValueError as exc:
        raise RPCError(INTERNAL, f"grpc: failed to unmarshal the received message: {exc}") from None


# -- the kubelet's words -----------------------------------------------------------------

def go_quote(text: str) -> str:
    """Go's %q of a string, for the text these messages carry."""
    return json.dumps(text, ensure_ascii=False)


def go_duration(seconds: float) -> str:
    """time.Duration's String() of whole seconds: 1s, 1m30s, 1h0m0s."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_timeout_message(addr: str, timeout: float) -> str:
    return f"timeout: failed to connect service {go_quote(addr)} within {go_duration(timeout)}: context deadline exceeded"


def rpc_failure_message(err: RPCError, timeout: float) -> str:
    if err.code == UNIMPLEMENTED:
        return f"error: this server does not implement the grpc health protocol (grpc.health.v1.Health): {err.message}"
    if err.code == DEADLINE_EXCEEDED:
        return f"timeout: health rpc did not complete within {go_duration(timeout)}"
    return f"error: health rpc probe failed: {err}"


def status_outcome(status: int) -> tuple[bool, str]:
    if status != SERVING:
        return False, f"service unhealthy (responded with {go_quote(serving_status_name(status))})"
    return True, "service healthy"


def backoff_delay(retries: int) -> float:
    """grpc-go's reconnect backoff after `retries` failed attempts (jittered)."""
    delay = min(BACKOFF_BASE * BACKOFF_MULTIPLIER ** retries, BACKOFF_MAX)
    return delay * (1 + BACKOFF_JITTER * random.uniform(-1, 1))


# -- the probe ---------------------------------------------------------------------------

def _text_headers(headers: Iterable[object]) -> dict[str, str]:
    """A received header block as a dict. h2 annotates header fields as bytes, but a connection
    configured with header_encoding (as _Connection's is) hands them over decoded, as str."""
    return dict(cast("Iterable[tuple[str, str]]", headers))


class _Connection:
    """One HTTP/2 client connection over asyncio streams."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))

    async def flush(self) -> None:
        self.writer.write(self.h2.data_to_send())
        await self.writer.drain()

    async def events(self) -> list[h2.events.Event]:
        """The next events from the server; EOF is ConnectionResetError."""
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionResetError("EOF")
        events = self.h2.receive_data(data)
        await self.flush()  # settings and ping acks
        return events

    async def handshake(self) -> None:
        """Ready as grpc-go counts it: our preface sent and the server's SETTINGS received."""
        self.h2.initiate_connection()
        await self.flush()
        while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in await self.events()):
            pass

    async def call(self, authority: str, user_agent: str, timeout: float, message: bytes) -> CallResult:
        stream = self.h2.get_next_available_stream_id()
        self.h2.send_headers(stream, request_headers(authority, user_agent, timeout))
        self.h2.send_data(stream, frame(message), end_stream=True)
        await self.flush()
        result = CallResult()
        body = bytearray()
        while True:
            try:
                events = await self.events()
            except (ConnectionResetError, OSError) as exc:
                raise RPCError(UNAVAILABLE, f"error reading from server: {exc}") from None
            for e in events:
                if isinstance(e, h2.events.ResponseReceived) and e.stream_id == stream:
                    result.headers = _text_headers(e.headers)
                elif isinstance(e, h2.events.TrailersReceived) and e.stream_id == stream:
                    result.trailers = _text_headers(e.headers)
                elif isinstance(e, h2.events.DataReceived) and e.stream_id == stream:
                    body += e.data
                    self.h2.acknowledge_received_data(e.flow_controlled_length, stream)
                elif isinstance(e, h2.events.StreamEnded) and e.stream_id == stream:
                    result.body = bytes(body)
                    return result
                elif isinstance(e, h2.events.StreamReset) and e.stream_id == stream:
                    code = int(e.error_code)
                    name = RST_STREAM_NAMES[code] if code < len(RST_STREAM_NAMES) else str(code)
                    raise RPCError(RST_STREAM_CODES.get(code, INTERNAL),
                                   f"stream terminated by RST_STREAM with error code: {name}")
                elif isinstance(e, h2.events.ConnectionTerminated) and (
                        e.error_code != 0 or e.last_stream_id is None or e.last_stream_id < stream):
                    # A graceful GOAWAY that covers our stream still lets it finish.
                    raise RPCError(UNAVAILABLE, "the connection is draining due to a GOAWAY")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except OSError:
            pass


async def _connect(host: str, port: int) -> _Connection:
    reader, writer = await asyncio.open_connection(host, port)
    conn = _Connection(reader, writer)
    try:
        await conn.handshake()
    except BaseException:
        await conn.close()
        raise
    return conn


async def _connect_until(host: str, port: int, deadline: float) -> _Connection | None:
    """Dials as grpc.WithBlock does: failed attempts are retried after a backoff until the deadline."""
    loop = asyncio.get_running_loop()
    retries = 0
    while True:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(_connect(host, port), remaining)
        except asyncio.TimeoutError:
            return None
        except (OSError, h2.exceptions.ProtocolError):
            await asyncio.sleep(min(backoff_delay(retries), max(0.0, deadline - loop.time())))
            retries += 1


async def probe_grpc(host: str, port: int, service: str, timeout: float, user_agent: str) -> tuple[bool, str]:
    """One gRPC health check of host:port, dial and call together bounded by `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    addr = join_host_port(host, port)
    conn = await _connect_until(host, port, deadline)
    if conn is None:
        return False, connect_timeout_message(addr, timeout)
    try:
        remaining = deadline - loop.time()
        call = await asyncio.wait_for(conn.call(addr, user_agent, remaining, encode_request(service)), remaining)
        return status_outcome(serving_status(call))
    except asyncio.TimeoutError:
        return False, rpc_failure_message(RPCError(DEADLINE_EXCEEDED, "context deadline exceeded"), timeout)
    except RPCError as err:
        return False, rpc_failure_message(err, timeout)
    except h2.exceptions.ProtocolError as exc:
        return False, rpc_failure_message(RPCError(UNAVAILABLE, f"connection error: {exc}"), timeout)
    finally:
        await conn.close()
