"""The port-forward protocol (`pods/{name}/portforward`) as pure rules, after the
kubelet's pkg/kubelet/cri/streaming/portforward and client-go's tools/portforward.

Over SPDY (`X-Stream-Protocol-Version: portforward.k8s.io`, or SPDY tunnelled in a
WebSocket with subprotocol `SPDY/3.1+portforward.k8s.io`) every forwarded connection is
a pair of streams the client opens, an error stream then a data stream, both with
headers `streamType`, `port` and `requestID`; the pair is complete when both arrived.
The data stream carries the connection's bytes both ways; the error stream, which the
client never writes, carries the reason the connection failed.

Between the API server and the agent each connection is a WebSocket in the kubelet's
`v4.channel.k8s.io` port-forward form (one `?port=`): channel 0 data, channel 1 error,
each channel's first message the port as two little-endian bytes; podbay adds the v5
close message ([255, 0]) as the data's half-close, which SPDY has and the kubelet's
WebSocket form lacks.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Generic, TypeVar

PROTOCOL_V1 = "portforward.k8s.io"
TUNNEL_PREFIX = "SPDY/3.1+"
TUNNEL_PROTOCOL = TUNNEL_PREFIX + PROTOCOL_V1
STREAM_TYPE_HEADER = "streamType"
PORT_HEADER = "port"
REQUEST_ID_HEADER = "requestID"
DATA, ERROR = "data", "error"
DATA_CHANNEL, ERROR_CHANNEL = 0, 1
# The kubelet's streamCreationTimeout: a pair must be complete within it.
STREAM_CREATION_TIMEOUT = 30.0
MAX_PENDING_PAIRS = 64
# A SPDY connection's streams at once: two per forwarded connection.
MAX_STREAMS = 256


def check_stream_headers(stream_type: str | None, port: str | None) -> str | None:
    """Why a new stream is refused (httpStreamReceived's checks), or None."""
    if not port:
        return f'"{PORT_HEADER}" header is required'
    try:
        number = parse_port(port)
    except ValueError as exc:
        return str(exc)
    if number < 1:
        return f'port "{port}" must be > 0'
    if not stream_type:
        return f'"{STREAM_TYPE_HEADER}" header is required'
    if stream_type not in (ERROR, DATA):
        return f'invalid stream type "{stream_type}"'
    return None


def parse_port(value: str) -> int:
    """A port as strconv.ParseUint(value, 10, 16) accepts it."""
    if not value.isascii() or not value.isdigit() or int(value) > 0xFFFF:
        raise ValueError(f'unable to parse "{value[:32]}" as a port')
    return int(value)


# The plain WebSocket form a client may speak to the API server (the kubelet's, which
# kubectl does not use but other clients do): every port of `?ports=` fixed at the upgrade,
# one connection each, port i on channels 2i (data) and 2i+1 (error).
WEBSOCKET_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io", "")
MAX_WEBSOCKET_PORTS = 16


def websocket_ports(values: list[str]) -> list[int]:
    """The ports of a plain WebSocket port-forward (repeated and comma-separated `ports`),
    refused as the kubelet's NewV4Options refuses them."""
    if not values:
        raise ValueError('query parameter "ports" is required')
    ports: list[int] = []
    for value in values:
        if not value:
            raise ValueError('query parameter "ports" cannot be empty')
        for part in value.split(","):
            port = parse_port(part)
            if port < 1:
                raise ValueError(f'port "{value}" must be > 0')
            ports.append(port)
    if len(ports) > MAX_WEBSOCKET_PORTS:
        raise ValueError(f"at most {MAX_WEBSOCKET_PORTS} ports may be forwarded over one WebSocket")
    return ports


def forward_error(port: int, pod: str, uid: str, reason: str) -> str:
    """What the error stream says when the connection to the pod's port failed."""
    return f"error forwarding port {port} to pod {pod}, uid {uid}: {reason}"


def port_prefix(port: int) -> bytes:
    """The first message of each channel in the WebSocket form."""
    return struct.pack("<H", port)


S = TypeVar("S")


class PairError(Exception):
    pass


@dataclass
class StreamPair(Generic[S]):
    request_id: str
    port: int
    created: float
    data: S | None = None
    error: S | None = None

    @property
    def complete(self) -> bool:
        return self.data is not None and self.error is not None


@dataclass
class PairTable(Generic[S]):
    """Streams waiting for their partner, by requestID (httpStreamHandler's streamPairs)."""

    limit: int = MAX_PENDING_PAIRS
    _pending: dict[str, StreamPair[S]] = field(default_factory=dict)

    def add(self, request_id: str, stream_type: str, port: int, stream: S, now: float) -> StreamPair[S] | None:
        """Files `stream`; the pair once it is complete (and no longer pending)."""
        pair = self._pending.get(request_id)
        if pair is None:
            if len(self._pending) >= self.limit:
                raise PairError(f"too many incomplete port-forward stream pairs ({self.limit})")
            pair = self._pending[request_id] = StreamPair(request_id, port, now)
        if stream_type == ERROR:
            if pair.error is not None:
                raise PairError("error stream already assigned")
            pair.error = stream
        elif stream_type == DATA:
            if pair.data is not None:
                raise PairError("data stream already assigned")
            pair.data = stream
            pair.port = port  # the data stream's port is the one forwarded
        else:
            raise PairError(f'unexpected stream type "{stream_type}"')
        if pair.complete:
            del self._pending[request_id]
            return pair
        return None

    def expired(self, now: float, timeout: float = STREAM_CREATION_TIMEOUT) -> list[StreamPair[S]]:
        """Pairs still incomplete after `timeout`, taken out of the table."""
        old = [p for p in self._pending.values() if now - p.created >= timeout]
        for pair in old:
            del self._pending[pair.request_id]
        return old
