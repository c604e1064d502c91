"""What the agent's HTTP server (logs, exec, attach, port-forward, stats) needs of the agent."""
from __future__ import annotations

from typing import Protocol

from podbay.agent.config import AgentConfig
from podbay.agent.cri import ContainerRuntime
from podbay.agent.resourcemetrics import ResourceMetrics
from podbay.api import Pod


class NodeView(Protocol):
    @property
    def runtime(self) -> ContainerRuntime: ...

    @property
    def config(self) -> AgentConfig: ...

    @property
    def resource_metrics(self) -> ResourceMetrics: ...

    def pods(self, *, with_deleted: bool = False) -> list[Pod]:
        """The pods on this node; `with_deleted`: also those whose object is gone but whose
        containers are still being stopped."""
        ...
