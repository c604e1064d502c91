"""podbay.client.rest's HTTP/1.1 reading, against a server on a real unix socket that answers
with the bytes each test gives it (sized, chunked, cut short, a Status)."""
from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from podbay.api.errors import NotFound
from podbay.client.rest import RESTClient, Unreachable


def serve_once(path: Path, answer: bytes) -> threading.Thread:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(1)

    def run() -> None:
        conn, _ = listener.accept()
        request = b""
        while b"\r\n\r\n" not in request:
            request += conn.recv(4096)
        conn.sendall(answer)
        conn.close()
        listener.close()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_sized_and_chunked_bodies(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    client = RESTClient.connect(f"unix://{sock}")
    serve_once(sock, b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 8\r\n\r\n{"a": 1}')
    assert client.get("/api/v1") == {"a": 1}
    sock.unlink()
    serve_once(sock, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\none\n\r\n4;x=y\r\ntwo\n\r\n0\r\n\r\n")
    assert b"".join(client.stream("/api/v1/namespaces/default/pods/p/log")) == b"one\ntwo\n"


def test_a_status_is_raised_as_its_error(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    status = b'{"kind":"Status","apiVersion":"v1","status":"Failure","message":"pods \\"x\\" not found","reason":"NotFound","code":404}'
    serve_once(sock, b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\n\r\n%s" % (len(status), status))
    with pytest.raises(NotFound, match='pods "x" not found'):
        RESTClient.connect(str(sock)).get("/api/v1/namespaces/default/pods/x")


@pytest.mark.parametrize("answer", [b"", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", b"SSH-2.0\r\n\r\n",
                                    b"HTTP/1.1 200 OK\r\nX: " + b"y" * (70 << 10) + b"\r\n\r\n"])
def test_a_broken_answer_is_a_server_that_disconnected(tmp_path: Path, answer: bytes) -> None:
    sock = tmp_path / "api.sock"
    serve_once(sock, answer)
    with pytest.raises(Unreachable, match="Server disconnected"):
        RESTClient.connect(str(sock)).get("/api/v1")


def test_nobody_listening(tmp_path: Path) -> None:
    sock = tmp_path / "api.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(sock))
    listener.close()  # the file stays, nobody accepts: a server that died
    with pytest.raises(Unreachable, match=f"Cannot connect to unix socket {sock} ssl:default"):
        RESTClient.connect(str(sock)).get("/api/v1")
