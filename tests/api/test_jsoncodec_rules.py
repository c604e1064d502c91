"""The fast JSON codec reads every document the standard library reads, the same way, and
refuses what it refuses with the same error."""
from __future__ import annotations

import json
import math

import pytest

from podbay.api import jsoncodec


def test_documents_orjson_refuses_are_read_as_the_standard_library_reads_them() -> None:
    big = 2 ** 70
    assert jsoncodec.decode(f'{{"n": {big}}}'.encode()) == {"n": big}
    assert math.isnan(jsoncodec.decode(b'{"x": NaN}')["x"])


def test_an_ordinary_document_round_trips() -> None:
    doc = {"metadata": {"name": "web", "labels": {"app": "ünï"}}, "spec": {"n": 3, "f": 0.5, "ok": True}}
    assert jsoncodec.decode(jsoncodec.encode(doc)) == doc
    assert jsoncodec.decode(jsoncodec.encode_str(doc)) == json.loads(json.dumps(doc))


@pytest.mark.parametrize("text", [b"", b"{", b'{"a": 1,}', b"[1 2]"])
def test_what_neither_reads_raises_the_standard_librarys_error(text: bytes) -> None:
    with pytest.raises(json.JSONDecodeError):
        jsoncodec.decode(text)
