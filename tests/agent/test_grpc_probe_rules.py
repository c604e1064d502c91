"""The gRPC probe's wire rules (protobuf, message framing, grpc-timeout, reading a finished
call) and the kubelet's messages. Pure."""
from __future__ import annotations

import pytest

from podbay.agent.grpcprobe import (CallResult, RPCError, backoff_delay, connect_timeout_message, decode_response,
                                    encode_request, encode_timeout, frame, go_duration, join_host_port,
                                    rpc_failure_message, serving_status, status_outcome, unframe)

GRPC_OK = {":status": "200", "content-type": "application/grpc"}


def test_request_is_proto3_with_the_default_service_left_out() -> None:
    assert encode_request("") == b""
    assert encode_request("db") == b"\x0a\x02db"
    long = "s" * 200
    assert encode_request(long) == b"\x0a\xc8\x01" + long.encode()


def test_response_status_is_read_past_unknown_fields() -> None:
    assert decode_response(b"") == 0
    assert decode_response(b"\x08\x01") == 1
    assert decode_response(b"\x08\x02") == 2
    # fields 2 (varint), 3 (bytes), 4 (fixed64), 5 (fixed32) around the status
    assert decode_response(b"\x10\x96\x01" + b"\x1a\x03abc" + b"\x21" + bytes(8) + b"\x08\x03" + b"\x2d" + bytes(4)) == 3
    assert decode_response(b"\x08" + b"\xff" * 9 + b"\x01") == -1  # a negative int32 enum
    for bad in (b"\x08", b"\x08\x80", b"\x1a\x05ab", b"\x0b"):
        with pytest.raises(ValueError):
            decode_response(bad)


def test_messages_are_length_prefixed_and_uncompressed() -> None:
    assert frame(b"\x08\x01") == b"\x00\x00\x00\x00\x02\x08\x01"
    assert unframe(frame(b"a") + frame(b"")) == [b"a", b""]
    assert unframe(b"") == []
    with pytest.raises(RPCError, match="compressed flag"):
        unframe(b"\x01\x00\x00\x00\x00")
    with pytest.raises(RPCError, match="truncated"):
        unframe(b"\x00\x00\x00\x00\x05ab")


def test_grpc_timeout_header_as_grpc_go_writes_it() -> None:
    assert encode_timeout(1) == "1000000u"
    assert encode_timeout(0.05) == "50000000n"
    assert encode_timeout(1000) == "1000000m"
    assert encode_timeout(0) == "0n"


def test_go_durations_and_addresses() -> None:
    assert [go_duration(s) for s in (1, 10, 90, 3600)] == ["1s", "10s", "1m30s", "1h0m0s"]
    assert join_host_port("10.0.0.5", 9000) == "10.0.0.5:9000"
    assert join_host_port("fd00::5", 9000) == "[fd00::5]:9000"


def test_a_finished_call_gives_its_serving_status() -> None:
    ok = CallResult(GRPC_OK, frame(b"\x08\x01"), {"grpc-status": "0"})
    assert serving_status(ok) == 1
    assert serving_status(CallResult(GRPC_OK, frame(b""), {"grpc-status": "0"})) == 0


@pytest.mark.parametrize("call, code, message", [
    (CallResult({**GRPC_OK, "grpc-status": "5", "grpc-message": "unknown%20service"}), 5, "unknown service"),
    (CallResult(GRPC_OK, frame(b"\x08\x01"), {"grpc-status": "14", "grpc-message": "going%20away"}), 14, "going away"),
    (CallResult(GRPC_OK, frame(b"\x08\x01")), 13, "server closed the stream without sending trailers"),
    (CallResult(GRPC_OK, b"", {"grpc-status": "0"}), 13,
     "cardinality violation: expected 1 response message, received 0"),
    (CallResult({":status": "404", "content-type": "text/plain"}), 12,
     'unexpected HTTP status code received from server: 404 (Not Found); '
     'transport: received unexpected content-type "text/plain"'),
    (CallResult({":status": "503"}), 14,
     "unexpected HTTP status code received from server: 503 (Service Unavailable); "
     "transport: missing content-type field"),
    (CallResult({":status": "200", "content-type": "text/html"}), 2,
     'transport: received unexpected content-type "text/html"'),
])
def test_a_failed_call_is_a_grpc_status(call: CallResult, code: int, message: str) -> None:
    with pytest.raises(RPCError) as err:
        serving_status(call)
    assert (err.value.code, err.value.message) == (code, message)


def test_the_kubelets_messages() -> None:
    assert status_outcome(1) == (True, "service healthy")
    assert status_outcome(2) == (False, 'service unhealthy (responded with "NOT_SERVING")')
    assert status_outcome(3) == (False, 'service unhealthy (responded with "SERVICE_UNKNOWN")')
    assert status_outcome(7) == (False, 'service unhealthy (responded with "7")')
    assert connect_timeout_message("10.0.0.5:9000", 1) == \
        'timeout: failed to connect service "10.0.0.5:9000" within 1s: context deadline exceeded'
    assert rpc_failure_message(RPCError(12, "unknown service grpc.health.v1.Health"), 1) == \
        "error: this server does not implement the grpc health protocol (grpc.health.v1.Health): " \
        "unknown service grpc.health.v1.Health"
    assert rpc_failure_message(RPCError(4, "context deadline exceeded"), 2) == \
        "timeout: health rpc did not complete within 2s"
    assert rpc_failure_message(RPCError(5, "unknown service"), 1) == \
        "error: health rpc probe failed: rpc error: code = NotFound desc = unknown service"


def test_reconnect_backoff_grows_with_jitter() -> None:
    for retries, base in ((0, 1.0), (1, 1.6), (2, 2.56), (20, 120.0)):
        assert base * 0.8 <= backoff_delay(retries) <= base * 1.2
