"""A small gRPC health server (grpc.health.v1.Health/Check over h2c) for the probe tests.

In-process: `async with health_server(host, port) as server` and change `server.statuses`.
As a script (`python -m tests.agent.grpc_health_server HOST PORT` from the checkout, run by a
test inside a pod's network namespace): prints "serving" once it listens; each stdin line
`SERVICE=STATUS` (STATUS a name such as NOT_SERVING; an empty SERVICE is the server's overall
health) changes an answer and is echoed as "set SERVICE=STATUS" once it holds.
"""
from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

from podbay.agent.grpcprobe import CHECK_PATH, SERVING_STATUS_NAMES, frame, unframe

STATUS_NUMBERS = {name: number for number, name in SERVING_STATUS_NAMES.items()}


@dataclass
class HealthServer:
    statuses: dict[str, int] = field(default_factory=lambda: {"": 1})
    implements_health: bool = True
    hang: bool = False  # read requests, answer none
    requests: list[dict[str, str]] = field(default_factory=list)  # headers of each call, in order
    port: int = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        headers: dict[int, dict[str, str]] = {}
        bodies: dict[int, bytearray] = {}
        try:
            while data := await reader.read(65536):
                for e in conn.receive_data(data):
                    if isinstance(e, h2.events.RequestReceived):
                        headers[e.stream_id] = dict(e.headers)
                        bodies[e.stream_id] = bytearray()
                    elif isinstance(e, h2.events.DataReceived):
                        bodies[e.stream_id] += e.data
                        conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                    elif isinstance(e, h2.events.StreamEnded):
                        self.requests.append(headers[e.stream_id])
                        if not self.hang:
                            self.answer(conn, e.stream_id, headers[e.stream_id], bytes(bodies[e.stream_id]))
                writer.write(conn.data_to_send())
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def answer(self, conn: h2.connection.H2Connection, stream: int, headers: dict[str, str], body: bytes) -> None:
        if not self.implements_health or headers.get(":path") != CHECK_PATH:
            return self.fail(conn, stream, 12, "unknown service grpc.health.v1.Health")
        payload = unframe(body)[0]
        # HealthCheckRequest is empty or field 1 (a short string): tag 0x0a, one length byte.
        service = payload[2:].decode() if payload else ""
        if service not in self.statuses:
            return self.fail(conn, stream, 5, "unknown service")
        status = self.statuses[service]
        conn.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc")])
        conn.send_data(stream, frame(b"\x08" + bytes([status]) if status else b""))
        conn.send_headers(stream, [("grpc-status", "0")], end_stream=True)

    @staticmethod
    def fail(conn: h2.connection.H2Connection, stream: int, code: int, message: str) -> None:
        """A trailers-only answer: the status in the one HEADERS frame."""
        conn.send_headers(stream, [(":status", "200"), ("content-type", "application/grpc"),
                                   ("grpc-status", str(code)), ("grpc-message", message.replace(" ", "%20"))],
                          end_stream=True)


@contextlib.asynccontextmanager
async def health_server(host: str, port: int = 0) -> AsyncIterator[HealthServer]:
    server = HealthServer()
    listener = await asyncio.start_server(server.handle, host, port)
    server.port = listener.sockets[0].getsockname()[1]
    try:
        yield server
    finally:
        listener.close()
        await listener.wait_closed()


async def main(host: str, port: int) -> None:
    async with health_server(host, port) as server:
        print("serving", flush=True)
        reader = asyncio.StreamReader()
        await asyncio.get_running_loop().connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            service, _, status = line.partition("=")
            server.statuses[service] = STATUS_NUMBERS[status]
            print("set", line, flush=True)
        # stdin closed: the test is done with us.


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
