"""Objects as etcd values: JSON without resourceVersion (kube-apiserver's
`--storage-media-type=application/json`), which is the key's mod_revision instead."""
from __future__ import annotations

import base64

from podbay.api.jsoncodec import decode, encode
from podbay.store.etcdclient import JSONObject, unb64
from podbay.store.shared import stamp


def encode_value(obj: JSONObject) -> str:
    meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
    return base64.b64encode(encode({**obj, "metadata": meta})).decode()


def decode_kv(kv: JSONObject, rev: int | None = None) -> JSONObject:
    """The object in `kv`, its resourceVersion `rev` or else the key's mod_revision."""
    return stamp(decode(unb64(kv["value"])), rev if rev is not None else int(kv["mod_revision"]))
