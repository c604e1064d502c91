"""Interactive exec with the official Kubernetes Python client, on a real container."""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Callable, Iterator

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.stream import stream
from kubernetes.stream.ws_client import RESIZE_CHANNEL, WSClient

from tests.exec.conftest import ExecTarget

pytestmark = pytest.mark.e2e
DEADLINE = 30.0


@pytest.fixture
def core(target: ExecTarget) -> Iterator[k8s.CoreV1Api]:
    api = k8s_config.new_client_from_config(str(target.kubeconfig))
    yield k8s.CoreV1Api(api)
    api.close()


async def in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    # The official client blocks; the server runs on this loop.
    return await asyncio.to_thread(fn, *args)


def open_exec(core: k8s.CoreV1Api, command: list[str], *, tty: bool = False) -> WSClient:
    return stream(core.connect_get_namespaced_pod_exec, "shell", "default", command=command,
                  stdin=True, stdout=True, stderr=True, tty=tty, _preload_content=False, binary=True)


def read_until(ws: WSClient, wanted: bytes) -> bytes:
    """stdout until it holds `wanted` (or the stream ends); fails at the deadline."""
    out = b""
    deadline = time.monotonic() + DEADLINE
    while wanted not in out and ws.is_open():
        assert time.monotonic() < deadline, f"never saw {wanted!r}; got {out!r}"
        ws.update(timeout=1)
        out += ws.read_stdout(timeout=0) or b""
    return out


def finish(ws: WSClient) -> tuple[bytes, bytes]:
    """Everything until the server closes the stream: (stdout, stderr)."""
    out, err = b"", b""
    deadline = time.monotonic() + DEADLINE
    while ws.is_open():
        assert time.monotonic() < deadline, "the stream did not end"
        ws.update(timeout=1)
        out += ws.read_stdout(timeout=0) or b""
        err += ws.read_stderr(timeout=0) or b""
    return out, err


async def test_stdin_reaches_cat_and_comes_back(core: k8s.CoreV1Api) -> None:
    def session() -> tuple[bytes, bytes, int, str]:
        ws = open_exec(core, ["cat"])
        ws.write_stdin(b"hello through the pod\n")
        echoed = read_until(ws, b"hello through the pod\n")
        ws.write_stdin(b"second line\n")
        echoed += read_until(ws, b"second line\n")
        ws.close_channel(0)  # v5: stdin's end of file ends cat
        out, _ = finish(ws)
        return echoed + out, b"", ws.returncode, ws.subprotocol

    out, _, code, protocol = await in_thread(session)
    assert out == b"hello through the pod\nsecond line\n"
    assert code == 0
    assert protocol == "v5.channel.k8s.io"


async def test_preloaded_output(core: k8s.CoreV1Api) -> None:
    out = await in_thread(lambda: stream(core.connect_get_namespaced_pod_exec, "shell", "default",
                                         command=["sh", "-c", "echo $((6*7))"], stdin=False, stdout=True,
                                         stderr=True, tty=False))
    assert out == "42\n"


async def test_exit_code_and_stderr_of_a_failing_command(core: k8s.CoreV1Api) -> None:
    def session() -> tuple[bytes, bytes, int]:
        ws = open_exec(core, ["sh", "-c", "read line; echo got $line; echo oops >&2; exit 3"])
        ws.write_stdin(b"input\n")
        out, err = finish(ws)
        return out, err, ws.returncode

    out, err, code = await in_thread(session)
    assert (out, err, code) == (b"got input\n", b"oops\n", 3)


async def test_v4_status_is_the_kubelets(core: k8s.CoreV1Api) -> None:
    def session() -> tuple[str, dict[str, Any]]:
        ws = stream(core.connect_get_namespaced_pod_exec, "shell", "default", command=["sh", "-c", "exit 7"],
                    stdin=False, stdout=True, stderr=True, tty=False, _preload_content=False,
                    _headers={"sec-websocket-protocol": "v4.channel.k8s.io"})
        finish(ws)
        return ws.subprotocol, json.loads(ws.read_channel(3))

    protocol, status = await in_thread(session)
    assert protocol == "v4.channel.k8s.io"
    assert status == {
        "metadata": {}, "status": "Failure", "reason": "NonZeroExitCode",
        "message": "command terminated with non-zero exit code: command terminated with exit code 7",
        "details": {"causes": [{"reason": "ExitCode", "message": "7"}]},
    }


async def test_tty_is_a_pseudo_terminal_that_follows_resizes(core: k8s.CoreV1Api) -> None:
    def session() -> tuple[bytes, bytes, int]:
        ws = open_exec(core, ["sh"], tty=True)
        ws.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 123, "Height": 45}))
        ws.write_stdin(b"tty; echo done-$((1+1))\n")  # the terminal echoes input: wait for what only sh prints
        first = read_until(ws, b"done-2\r\n")
        ws.write_channel(RESIZE_CHANNEL, json.dumps({"Width": 100, "Height": 30}))
        ws.write_stdin(b"stty size; exit 4\n")
        out, _ = finish(ws)
        return first, out, ws.returncode

    first, out, code = await in_thread(session)
    assert b"/dev/pts/" in first
    assert b"30 100\r\n" in out
    assert code == 4
