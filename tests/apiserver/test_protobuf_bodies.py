"""podbay.apiserver.protobody: the protobuf request bodies kubectl 1.32+ sends for create
deployment/job decode to their JSON form; anything the table does not know is refused."""
from __future__ import annotations

import pytest

from podbay.apiserver.protobody import MAGIC, Undecodable, decode


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, value: bytes | int) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return MAGIC + _field(1, meta) + _field(2, raw) + _field(3, b"") + _field(4, b"")


def _label(key: str, value: str) -> bytes:
    return _field(1, key.encode()) + _field(2, value.encode())


def test_a_deployment_decodes_with_zero_values_dropped_and_pointers_kept() -> None:
    metadata = _field(1, b"web") + _field(2, b"") + _field(8, b"") + _field(11, _label("app", "web"))
    container = _field(1, b"busybox") + _field(2, b"busybox:1.35") + _field(3, b"sleep") + _field(3, b"3600") \
        + _field(8, b"") + _field(16, 0)
    template = _field(1, _field(11, _label("app", "web"))) + _field(2, _field(2, container) + _field(3, b""))
    spec = _field(1, 0) + _field(2, _field(1, _label("app", "web"))) + _field(3, template) + _field(4, b"")
    body = _envelope("apps/v1", "Deployment", _field(1, metadata) + _field(2, spec) + _field(3, b""))
    assert decode(body) == {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "busybox", "image": "busybox:1.35",
                                                       "command": ["sleep", "3600"]}]}}},
    }


def test_a_negative_int32_and_a_job_decode() -> None:
    spec = _field(3, (1 << 64) - 5) + _field(6, _field(2, _field(3, b"Never")))
    assert decode(_envelope("batch/v1", "Job", _field(1, _field(1, b"once")) + _field(2, spec))) == {
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "once"},
        "spec": {"activeDeadlineSeconds": -5, "template": {"spec": {"restartPolicy": "Never"}}},
    }


@pytest.mark.parametrize("body", [
    b'{"kind": "Pod"}',                                                # not protobuf at all
    _envelope("v1", "ServiceAccount", _field(1, _field(1, b"p"))),     # a kind podbay does not serve
    _envelope("apps/v1", "Deployment", _field(1, _field(13 + 2, b"x"))),   # a set field it does not know
    MAGIC + _field(2, b"\xff"),                                        # truncated
    _envelope("apps/v1", "Deployment", _field(1, _field(1, b"\xff\xfe"))),  # a name that is not UTF-8
    _envelope("apps/v1", "Deployment", _field(1, _field(1, 7))),       # a string sent as a varint
    _envelope("apps/v1", "Deployment", _field(1, _field(11, 7))),      # a map entry sent as a varint
])
def test_what_it_does_not_know_is_refused(body: bytes) -> None:
    with pytest.raises(Undecodable):
        decode(body)


def test_a_secrets_bytes_become_base64_and_a_configmaps_strings_stay() -> None:
    secret = _field(1, _field(1, b"sec")) + _field(2, _label("k", "s3cret")) + _field(3, b"Opaque")
    assert decode(_envelope("v1", "Secret", secret)) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sec"}, "data": {"k": "czNjcmV0"}, "type": "Opaque"}
    config = _field(1, _field(1, b"cfg")) + _field(2, _label("k", "v")) + _field(4, 1)
    assert decode(_envelope("v1", "ConfigMap", config)) == {
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "cfg"}, "data": {"k": "v"}, "immutable": True}


def test_a_service_decodes_through_its_model_int_or_string_and_all() -> None:
    port = _field(1, b"http") + _field(2, b"TCP") + _field(3, 80) + _field(4, _field(1, 0) + _field(2, 8080)) \
        + _field(5, 0)
    spec = _field(1, port) + _field(2, _label("app", "web")) + _field(4, b"ClusterIP") + _field(13, 0)
    body = _envelope("v1", "Service", _field(1, _field(1, b"web")) + _field(2, spec) + _field(3, _field(1, b"")))
    assert decode(body) == {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"ports": [{"name": "http", "protocol": "TCP", "port": 80, "targetPort": 8080}],
                 "selector": {"app": "web"}, "type": "ClusterIP"}}


def test_embedded_structs_are_inlined_and_pointers_keep_their_zero() -> None:
    # Volume embeds VolumeSource (field 2), ConfigMapVolumeSource embeds LocalObjectReference
    # (field 1), Probe embeds ProbeHandler (field 1); terminationGracePeriodSeconds is a *int64.
    volume = _field(1, b"cfg") + _field(2, _field(19, _field(1, _field(1, b"settings"))))
    probe = _field(1, _field(1, _field(1, b"true"))) + _field(4, 5)
    container = _field(1, b"c") + _field(2, b"busybox") + _field(10, probe)
    spec = _field(1, volume) + _field(2, container) + _field(4, 0)
    body = _envelope("v1", "Pod", _field(1, _field(1, b"p")) + _field(2, spec))
    assert decode(body)["spec"] == {
        "volumes": [{"name": "cfg", "configMap": {"name": "settings"}}],
        "containers": [{"name": "c", "image": "busybox",
                        "livenessProbe": {"exec": {"command": ["true"]}, "periodSeconds": 5}}],
        "terminationGracePeriodSeconds": 0}


def test_only_the_metadata_of_a_refused_kind_is_read() -> None:
    spec = _field(1, b"*/5 * * * *")
    body = _envelope("batch/v1", "CronJob", _field(1, _field(1, b"nightly")) + _field(2, spec))
    assert decode(body, metadata_only=True) == {"apiVersion": "batch/v1", "kind": "CronJob",
                                                "metadata": {"name": "nightly"}}
    with pytest.raises(Undecodable):  # its spec is no model podbay has
        decode(body)


def test_an_empty_emptydir_is_kept() -> None:
    volume = _field(1, b"scratch") + _field(2, _field(2, b""))
    body = _envelope("v1", "Pod", _field(1, _field(1, b"p")) + _field(2, _field(1, volume)))
    assert decode(body)["spec"] == {"volumes": [{"name": "scratch", "emptyDir": {}}]}


def test_delete_options_decode_with_their_zero_grace_period() -> None:
    body = _envelope("v1", "DeleteOptions", _field(1, 0) + _field(2, _field(1, b"u-1")) + _field(4, b"Background"))
    assert decode(body) == {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                            "preconditions": {"uid": "u-1"}, "propagationPolicy": "Background"}
