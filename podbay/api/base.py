"""The base of every API model: camelCase on the wire, snake_case in Python."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer
from pydantic.alias_generators import to_camel


def _utc(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if isinstance(value, datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value


def rfc3339(value: datetime) -> str:
    """Kubernetes' metav1.Time on the wire: second precision, `Z`."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(value: datetime) -> str:
    """metav1.MicroTime (events' eventTime)."""
    return value.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


Time = Annotated[datetime, BeforeValidator(_utc), PlainSerializer(rfc3339, return_type=str)]
MicroTime = Annotated[datetime, BeforeValidator(_utc), PlainSerializer(rfc3339_micro, return_type=str)]


def _quantity(value: Any) -> Any:
    # YAML gives `cpu: 1` or `cpu: 0.5` as numbers; Kubernetes reads them as quantities.
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    return value


Quantity = Annotated[str, BeforeValidator(_quantity)]


IntOrString = int | str


def now() -> datetime:
    """The current time, truncated to what metav1.Time keeps."""
    return datetime.now(timezone.utc).replace(microsecond=0)


class Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        validate_assignment=False,
        protected_namespaces=(),
    )
