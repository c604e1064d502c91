"""The strategies of kinds with one rule each beyond ResourceInfo's: leases, runtime classes,
endpoints and replication controllers."""
from __future__ import annotations

from typing import Any

from podbay.api.errors import FieldError
from podbay.api.validation import validate_lease, validate_metadata, validate_runtime_class
from podbay.apiserver.strategies.base import Strategy


class LeaseStrategy(Strategy):
    def validate(self, model: Any) -> list[FieldError]:
        return validate_lease(model)


class RuntimeClassStrategy(Strategy):
    def validate(self, model: Any) -> list[FieldError]:
        return validate_runtime_class(model)

    def validate_update(self, out: dict[str, Any], old: dict[str, Any], subresource: str | None) -> list[FieldError]:
        if out.get("handler") != old.get("handler"):
            return [FieldError("handler", out.get("handler"), "Invalid value: field is immutable")]
        return []


class EndpointsStrategy(Strategy):
    """Endpoints and EndpointSlices: their metadata is validated, their addresses are the
    controllers'."""

    def validate(self, model: Any) -> list[FieldError]:
        return validate_metadata(model.metadata)


class ReplicationControllerStrategy(Strategy):
    def scale_selector(self, spec: dict[str, Any]) -> str | None:
        # core/v1's selector is a map, not a LabelSelector.
        return ",".join(f"{k}={v}" for k, v in sorted((spec.get("selector") or {}).items()))
