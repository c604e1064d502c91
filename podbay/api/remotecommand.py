"""The Kubernetes remote-command stream protocol over WebSocket (apimachinery's
util/remotecommand and httpstream/wsstream, the kubelet's streaming server), as pure rules.

Every message starts with its channel: 0 stdin, 1 stdout, 2 stderr, 3 error (the
command's final metav1.Status), 4 resize ({"Width", "Height"}). In the base64
subprotocols the channel is an ASCII digit and the data is base64 text. v4 writes
the error channel as Status JSON (v1 as the failure's message only); v5 adds the
message [255, channel]: the client closed that stream (stdin's end of file).
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol as _Protocol

from podbay.api.errors import BadRequest

STDIN, STDOUT, STDERR, ERROR, RESIZE = 0, 1, 2, 3, 4
CLOSE = 255

V5 = "v5.channel.k8s.io"
V4 = "v4.channel.k8s.io"
V4_BASE64 = "v4.base64.channel.k8s.io"
V1 = "channel.k8s.io"
V1_BASE64 = "base64.channel.k8s.io"
# What the kubelet serves; "" is a client that asks for no subprotocol (binary, v1 errors).
SUPPORTED = (V5, V4, V4_BASE64, V1, V1_BASE64, "")
CLIENT_PROTOCOLS = (V5, V4)  # what podbay's own client offers, best first

NON_ZERO_EXIT_CODE = "NonZeroExitCode"
EXIT_CODE_CAUSE = "ExitCode"


class MessageSink(_Protocol):
    """Where messages go: a WebSocket, server or client side."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def send_str(self, data: str) -> None: ...


@dataclass(frozen=True)
class Protocol:
    name: str

    @property
    def base64(self) -> bool:
        return self.name in (V4_BASE64, V1_BASE64)

    @property
    def status_json(self) -> bool:
        return self.name in (V5, V4, V4_BASE64)

    @property
    def half_close(self) -> bool:
        return self.name == V5

    def encode(self, channel: int, data: bytes) -> bytes | str:
        """One message: bytes for a binary WebSocket frame, str for a text one."""
        if self.base64:
            return chr(ord("0") + channel) + base64.b64encode(data).decode()
        return bytes([channel]) + data

    async def send(self, ws: MessageSink, channel: int, data: bytes) -> None:
        """One message on `ws` (an aiohttp WebSocket of either side): text in base64, else binary."""
        message = self.encode(channel, data)
        if isinstance(message, str):
            await ws.send_str(message)
        else:
            await ws.send_bytes(message)

    def decode(self, message: bytes | str) -> tuple[int, bytes] | None:
        """(channel, data) of a client message; None for an empty or undecodable one.
        A v5 close arrives as (CLOSE, bytes([channel]))."""
        raw = message.encode() if isinstance(message, str) else message
        if not raw:
            return None
        if self.base64:
            try:
                return raw[0] - ord("0"), base64.b64decode(raw[1:], validate=True)
            except (binascii.Error, ValueError):
                return None
        return raw[0], raw[1:]

    def status_payload(self, status: dict[str, Any]) -> bytes | None:
        """What the error channel carries for the command's final status (None: nothing)."""
        if self.status_json:
            return json.dumps(status, separators=(",", ":")).encode()
        if status.get("status") == "Success":
            return None
        return str(status.get("message", "")).encode()


def offered_protocols(header: str | None) -> list[str]:
    """Sec-WebSocket-Protocol as a list, in the client's order."""
    return [p.strip() for p in (header or "").split(",") if p.strip()]


def negotiate(header: str | None) -> Protocol | None:
    """The first subprotocol the client offers that is served, as wsstream's handshake
    chooses; no offer at all is "" (binary, v1). None: nothing offered is served."""
    offered = offered_protocols(header) or [""]
    chosen = next((p for p in offered if p in SUPPORTED), None)
    return Protocol(chosen) if chosen is not None else None


@dataclass(frozen=True)
class ExecOptions:
    """core/v1 PodExecOptions as the query of pods/{name}/exec carries them."""

    command: list[str]
    container: str | None
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool


def _query_bool(values: list[str]) -> bool:
    # apimachinery's Convert_Slice_string_To_bool: absent, "0" and "false" are false, anything else true.
    return bool(values) and values[0] != "0" and values[0].lower() != "false"


class Query(_Protocol):
    """A URL query with repeated keys (multidict's)."""

    def getall(self, key: str, default: list[str]) -> list[str]: ...


def exec_options(query: Query) -> ExecOptions:
    """PodExecOptions from a query, checked as the kubelet checks them; a terminal has
    no separate stderr."""
    def getall(key: str) -> list[str]:
        return list(query.getall(key, []))

    command = getall("command")
    if not command:
        raise BadRequest("command: Required value: you must specify at least one command for the container")
    return _stream_options(command, getall)


def attach_options(query: Query) -> ExecOptions:
    """PodAttachOptions (the container's own stdio: no command), checked as the kubelet checks them."""
    return _stream_options([], lambda key: list(query.getall(key, [])))


def _stream_options(command: list[str], getall: Callable[[str], list[str]]) -> ExecOptions:
    stdin, stdout, stderr, tty = (_query_bool(getall(k)) for k in ("stdin", "stdout", "stderr", "tty"))
    if not (stdin or stdout or stderr):
        raise BadRequest("you must specify at least 1 of stdin, stdout, stderr")
    container = (getall("container") or [""])[0] or None
    return ExecOptions(command, container, stdin, stdout, stderr and not tty, tty)


def success_status() -> dict[str, Any]:
    return {"metadata": {}, "status": "Success"}


def exit_status(code: int) -> dict[str, Any]:
    """The status of a command that ran: Success, or NonZeroExitCode with the code as
    the cause's message, exactly as the kubelet writes it."""
    if code == 0:
        return success_status()
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: command terminated with exit code {code}",
        "reason": NON_ZERO_EXIT_CODE,
        "details": {"causes": [{"reason": EXIT_CODE_CAUSE, "message": str(code)}]},
    }


def error_status(message: str, code: int = 500, reason: str = "InternalError") -> dict[str, Any]:
    """The status of a command that could not run (apierrors.NewInternalError's shape by default)."""
    prefix = "Internal error occurred: " if reason == "InternalError" else ""
    return {
        "metadata": {},
        "status": "Failure",
        "message": prefix + message,
        "reason": reason,
        "details": {"causes": [{"message": message}]},
        "code": code,
    }


def status_exit_code(status: dict[str, Any]) -> int | None:
    """The exit code a final status reports: 0 on Success, the ExitCode cause on
    NonZeroExitCode, None when the command could not run."""
    if status.get("status") == "Success":
        return 0
    if status.get("reason") == NON_ZERO_EXIT_CODE:
        for cause in (status.get("details") or {}).get("causes") or []:
            if cause.get("reason") == EXIT_CODE_CAUSE:
                try:
                    return int(cause.get("message", ""))
                except ValueError:
                    return None
    return None


def parse_resize(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a resize message (remotecommand.TerminalSize); None if malformed."""
    try:
        size = json.loads(data)
        width, height = int(size["Width"]), int(size["Height"])
    except (ValueError, TypeError, KeyError):
        return None
    if not (0 <= width <= 0xFFFF and 0 <= height <= 0xFFFF):
        return None
    return width, height


def split_resizes(buffer: bytes) -> tuple[list[tuple[int, int]], bytes]:
    """The sizes in a SPDY resize stream so far (Go's json.Encoder: TerminalSize objects one
    after another) and the incomplete rest; malformed sizes are skipped as parse_resize does."""
    text = buffer.decode("ascii", errors="replace")
    decoder = json.JSONDecoder()
    sizes: list[tuple[int, int]] = []
    pos = 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        try:
            value, pos = decoder.raw_decode(text, pos)
        except ValueError:
            return sizes, text[pos:].encode()
        size = parse_resize(json.dumps(value).encode())
        if size is not None:
            sizes.append(size)


def resize_message(width: int, height: int) -> bytes:
    return json.dumps({"Width": width, "Height": height}).encode()
