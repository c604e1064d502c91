"""apps/v1 DaemonSet and StatefulSet, batch/v1 CronJob: kinds whose meaning is a controller
that podbay does not run. They are served so that clients which list every kind (kubectl apply
--prune's default allowlist, `kubectl get all`) see them as a cluster shows them, and every
write is refused by admission (403 with the reason) rather than stored and silently ignored."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from podbay.api.base import Model
from podbay.api.models import ObjectMeta


class DaemonSet(Model):
    """One pod per node; refused: podbay runs no DaemonSet controller."""
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["DaemonSet"] = "DaemonSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)


class StatefulSet(Model):
    """Ordered pods with stable names; refused: podbay runs no StatefulSet controller."""
    api_version: Literal["apps/v1"] = "apps/v1"
    kind: Literal["StatefulSet"] = "StatefulSet"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)


class CronJob(Model):
    """Jobs on a schedule; refused: podbay runs no CronJob controller."""
    api_version: Literal["batch/v1"] = "batch/v1"
    kind: Literal["CronJob"] = "CronJob"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: dict[str, Any] = Field(default_factory=dict)
    status: dict[str, Any] = Field(default_factory=dict)


def no_controller(kind: str, instead: str) -> str:
    """Why admission refuses every write of `kind`."""
    return f"podbay does not run the {kind} controller, so a {kind} would never act; {instead} (see docs/support.md)"
