"""Port-forward's pure rules: which streams are accepted, how pairs form, the error text."""
from __future__ import annotations

import pytest

from podbay.api import portforward as pf


@pytest.mark.parametrize("stream_type, port, problem", [
    ("data", "80", None),
    ("error", "65535", None),
    ("data", None, '"port" header is required'),
    ("data", "0", 'port "0" must be > 0'),
    ("data", "65536", 'unable to parse "65536" as a port'),
    ("data", "-1", 'unable to parse "-1" as a port'),
    ("data", "８０", 'unable to parse "８０" as a port'),
    (None, "80", '"streamType" header is required'),
    ("stdin", "80", 'invalid stream type "stdin"'),
])
def test_stream_headers(stream_type: str | None, port: str | None, problem: str | None) -> None:
    assert pf.check_stream_headers(stream_type, port) == problem


@pytest.mark.parametrize("order", [("error", "data"), ("data", "error")])
def test_a_pair_completes_with_both_streams_in_either_order(order: tuple[str, str]) -> None:
    table: pf.PairTable[str] = pf.PairTable()
    assert table.add("7", order[0], 80, order[0] + "-stream", now=0) is None
    assert table.add("8", "error", 81, "other", now=0) is None  # another connection, pending
    pair = table.add("7", order[1], 80, order[1] + "-stream", now=1)
    assert pair is not None and (pair.data, pair.error, pair.port) == ("data-stream", "error-stream", 80)
    assert [p.request_id for p in table.expired(now=pf.STREAM_CREATION_TIMEOUT)] == ["8"]


def test_a_second_stream_of_a_kind_is_refused() -> None:
    table: pf.PairTable[str] = pf.PairTable()
    table.add("1", "error", 80, "e", now=0)
    with pytest.raises(pf.PairError, match="error stream already assigned"):
        table.add("1", "error", 80, "e2", now=0)


def test_incomplete_pairs_expire_and_are_bounded() -> None:
    table: pf.PairTable[str] = pf.PairTable(limit=2)
    table.add("1", "error", 80, "e1", now=0)
    table.add("2", "error", 80, "e2", now=10)
    with pytest.raises(pf.PairError, match="too many"):
        table.add("3", "error", 80, "e3", now=10)
    assert [p.request_id for p in table.expired(now=pf.STREAM_CREATION_TIMEOUT)] == ["1"]
    assert table.expired(now=pf.STREAM_CREATION_TIMEOUT) == []
    assert table.add("3", "error", 80, "e3", now=31) is None


def test_error_text_and_port_prefix() -> None:
    assert pf.forward_error(80, "web", "u-1", "boom") == "error forwarding port 80 to pod web, uid u-1: boom"
    assert pf.port_prefix(8080) == b"\x90\x1f"
    assert pf.TUNNEL_PROTOCOL == "SPDY/3.1+portforward.k8s.io"


@pytest.mark.parametrize("values, ports", [
    (["80"], [80]),
    (["80,443", "8080"], [80, 443, 8080]),
])
def test_websocket_ports(values: list[str], ports: list[int]) -> None:
    assert pf.websocket_ports(values) == ports


@pytest.mark.parametrize("values, problem", [
    ([], 'query parameter "ports" is required'),
    ([""], 'query parameter "ports" cannot be empty'),
    (["80,x"], 'unable to parse "x" as a port'),
    (["0"], 'port "0" must be > 0'),
    ([",".join(["1"] * (pf.MAX_WEBSOCKET_PORTS + 1))], "at most 16 ports"),
])
def test_websocket_port_refusals(values: list[str], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        pf.websocket_ports(values)
