"""The remote-command channel protocol as pure rules: negotiation, framing, statuses, options."""
from __future__ import annotations

import json

import pytest
from multidict import MultiDict

from podbay.api import remotecommand as rc
from podbay.api.errors import BadRequest


@pytest.mark.parametrize("header, chosen", [
    ("v5.channel.k8s.io,v4.channel.k8s.io", "v5.channel.k8s.io"),
    ("v4.channel.k8s.io, v5.channel.k8s.io", "v4.channel.k8s.io"),  # the client's order, as wsstream
    ("SPDY/3.1, base64.channel.k8s.io", "base64.channel.k8s.io"),
    (None, ""),
    ("", ""),
])
def test_negotiation_takes_the_first_served_offer(header: str | None, chosen: str) -> None:
    protocol = rc.negotiate(header)
    assert protocol is not None and protocol.name == chosen


def test_nothing_served_is_no_protocol() -> None:
    assert rc.negotiate("v9.channel.k8s.io") is None


def test_binary_and_base64_framing() -> None:
    v5 = rc.Protocol(rc.V5)
    assert v5.encode(rc.STDOUT, b"hi") == b"\x01hi"
    assert v5.decode(b"\x00input") == (rc.STDIN, b"input")
    assert v5.decode("\x00text frame") == (rc.STDIN, b"text frame")
    assert v5.decode(bytes([rc.CLOSE, rc.STDIN])) == (rc.CLOSE, b"\x00")
    assert v5.decode(b"") is None
    b64 = rc.Protocol(rc.V4_BASE64)
    assert b64.encode(rc.STDERR, b"\n") == "2Cg=="
    assert b64.decode("0Zm9vCg==") == (rc.STDIN, b"foo\n")
    assert b64.decode("0not base64!") is None


def test_exit_status_is_the_kubelets() -> None:
    assert rc.exit_status(0) == {"metadata": {}, "status": "Success"}
    failed = rc.exit_status(3)
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"] == {"causes": [{"reason": "ExitCode", "message": "3"}]}
    assert rc.status_exit_code(failed) == 3 and rc.status_exit_code(rc.exit_status(0)) == 0
    assert rc.status_exit_code(rc.error_status("no such container")) is None


def test_error_channel_by_version() -> None:
    failed, ok = rc.exit_status(2), rc.success_status()
    assert json.loads(rc.Protocol(rc.V4).status_payload(failed) or b"") == failed
    assert json.loads(rc.Protocol(rc.V5).status_payload(ok) or b"") == ok
    # v1 carries only a failure's message.
    assert rc.Protocol(rc.V1).status_payload(ok) is None
    assert rc.Protocol("").status_payload(failed) == failed["message"].encode()


def test_resize_messages() -> None:
    assert rc.parse_resize(rc.resize_message(120, 40)) == (120, 40)
    assert rc.parse_resize(b'{"Width": 80}') is None
    assert rc.parse_resize(b"not json") is None
    assert rc.parse_resize(b'{"Width": -1, "Height": 5}') is None


def test_exec_options_from_the_query() -> None:
    query = MultiDict([("command", "sh"), ("command", "-c"), ("command", "echo"), ("stdin", "True"),
                       ("stdout", "1"), ("stderr", "true"), ("tty", "true"), ("container", "main")])
    options = rc.exec_options(query)
    assert options.command == ["sh", "-c", "echo"] and options.container == "main"
    assert (options.stdin, options.stdout, options.tty) == (True, True, True)
    assert options.stderr is False  # a terminal has no separate stderr
    plain = rc.exec_options(MultiDict([("command", "ls"), ("stdout", "false"), ("stderr", "0"), ("stdin", "yes")]))
    assert (plain.stdin, plain.stdout, plain.stderr, plain.tty, plain.container) == (True, False, False, False, None)


@pytest.mark.parametrize("query, message", [
    ([("stdout", "true")], "command: Required value"),
    ([("command", "ls")], "you must specify at least 1 of stdin, stdout, stderr"),
])
def test_bad_exec_options_name_what_is_wrong(query: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        rc.exec_options(MultiDict(query))


def test_spdy_resize_stream_splits_into_sizes_and_keeps_the_incomplete_rest() -> None:
    stream = b'{"Width":112,"Height":34}\n{"Width":111,"Height":33}\n{"Width":5'
    assert rc.split_resizes(stream) == ([(112, 34), (111, 33)], b'{"Width":5')
    assert rc.split_resizes(b'{"Width":5,"Height":6}') == ([(5, 6)], b"")
    assert rc.split_resizes(b'{"Width":-1,"Height":6} {"Width":7,"Height":8}\n') == ([(7, 8)], b"")
    assert rc.split_resizes(b"") == ([], b"")
