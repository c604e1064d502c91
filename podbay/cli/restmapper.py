"""The resources the read-only verbs name (`get pods`, `get deploy/web`), by plural, kind, singular
and short name: kubectl's RESTMapper over the names in podbay.api.resourcenames."""
from __future__ import annotations

from podbay.api.resourcenames import RESOURCE_NAMES, Resource

_BY_ALIAS: dict[str, Resource] = {alias: r for r in RESOURCE_NAMES
                                  for alias in (r.name, r.kind.lower(), *r.short_names)}

POD = _BY_ALIAS["pods"]
EVENT = _BY_ALIAS["events"]


def resource_for(alias: str) -> Resource | None:
    return _BY_ALIAS.get(alias)
