"""The agent's view of one pod in the runtime (the kubelet's kubecontainer.PodStatus).

Built from the runtime's sandboxes and containers and the labels the agent put
on them, so it survives an agent restart.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum


class RunState(str, Enum):
    CREATED = "created"
    RUNNING = "running"
    EXITED = "exited"
    UNKNOWN = "unknown"


@dataclass
class ContainerRecord:
    id: str
    name: str
    state: RunState
    attempt: int = 0  # how many times this container name was started before in the pod
    spec_image: str = ""  # the image as the pod spec named it when created
    image: str = ""
    image_id: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""  # runtime's view: OOMKilled, StartError, ...
    message: str = ""  # termination message
    pid: int | None = None
    init: bool = False


@dataclass
class SandboxRecord:
    id: str
    ready: bool
    ip: str | None = None
    attempt: int = 0
    created_at: datetime | None = None


@dataclass
class PodRuntimeStatus:
    uid: str
    sandboxes: list[SandboxRecord] = field(default_factory=list)  # newest first
    containers: list[ContainerRecord] = field(default_factory=list)  # newest first

    def find(self, name: str) -> ContainerRecord | None:
        """The most recent container of that name."""
        for c in self.containers:
            if c.name == name:
                return c
        return None

    def history(self, name: str) -> list[ContainerRecord]:
        return [c for c in self.containers if c.name == name]

    def running(self) -> list[ContainerRecord]:
        return [c for c in self.containers if c.state is RunState.RUNNING]
