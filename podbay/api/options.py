"""meta/v1 option kinds that requests carry in their bodies, as the wire has them (the API
server reads them into its own types): the models that decode them from protobuf."""
from __future__ import annotations

from pydantic import Field

from podbay.api.base import Model


class Preconditions(Model):
    uid: str | None = None
    resource_version: str | None = None


class DeleteOptions(Model):
    """A DELETE's body; kubectl 1.32+ sends it as protobuf (`kubectl drain` deleting pods)."""
    grace_period_seconds: int | None = None
    preconditions: Preconditions | None = None
    orphan_dependents: bool | None = None
    propagation_policy: str | None = None
    dry_run: list[str] = Field(default_factory=list)
    ignore_store_read_error_with_cluster_breaking_potential: bool | None = None
