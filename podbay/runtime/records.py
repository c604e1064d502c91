"""The runtime's records of its sandboxes and containers, one JSON file each, as CRI-O's
`ContainerState`: a record loads itself from its file and saves itself whole (atomically), so a
fresh process knows every sandbox and container and a node upgraded in place keeps its pods.

The JSON keys are the ones the runtime has always written; keys added since (a sandbox's
`handler`, `notes`, `pid_holder`, `message`; a container's `handler`, `pid_start_time`) have
defaults, so older files load.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Any

from podbay.runtime.files import write_json_atomic
from podbay.runtime.types import ContainerMetadata, ContainerState, PodSandboxMetadata, PortMapping, SandboxState


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _json(value: Any) -> Any:
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _plain(value: Any) -> Any:
    """`dataclasses.asdict`'s conversion without its deep copy of every leaf value: the result
    is encoded at once and dropped, and the copies were most of a record's save on the event loop."""
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _to_json(record: Any) -> dict[str, Any]:
    """The record's fields but its own path, as JSON values."""
    return {f.name: _json(_plain(getattr(record, f.name))) for f in fields(record) if f.name != "path"}


def _read(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not a JSON object")
    return data


@dataclass
class SandboxRecord:
    path: Path = field(repr=False, compare=False)  # where save() writes it
    id: str
    metadata: PodSandboxMetadata
    created_at: datetime
    cgroup: str
    netns: str | None  # the pinned network namespace; None with hostNetwork
    state: SandboxState = SandboxState.READY
    ip: str | None = None
    ips: list[str] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    host_network: bool = False
    host_ipc: bool = False
    host_pid: bool = False
    share_pid: bool = False
    hostname: str = ""
    port_mappings: list[PortMapping] = field(default_factory=list)
    handler: str = ""  # the RuntimeClass handler; "" is the default (records from before handlers)
    notes: list[str] = field(default_factory=list)  # what the handler says of the sandbox
    pid_holder: int | None = None  # shareProcessNamespace's PID namespace holder
    message: str = ""  # why it is not ready, when the runtime knows

    @classmethod
    def load(cls, path: Path) -> SandboxRecord:
        d = _read(path)
        return cls(
            path=path, id=d["id"], metadata=PodSandboxMetadata(**d["metadata"]),
            created_at=datetime.fromisoformat(d["created_at"]), cgroup=d["cgroup"], netns=d["netns"],
            state=SandboxState(d["state"]), ip=d["ip"], ips=list(d["ips"]), labels=d["labels"],
            annotations=d["annotations"], host_network=d["host_network"], host_ipc=d["host_ipc"],
            host_pid=d["host_pid"], share_pid=d["share_pid"], hostname=d["hostname"],
            port_mappings=[PortMapping(**p) for p in d["port_mappings"]], handler=d.get("handler", ""),
            notes=list(d.get("notes", [])), pid_holder=d.get("pid_holder"), message=d.get("message", ""))

    def save(self) -> None:
        write_json_atomic(self.path, _to_json(self))


@dataclass
class ContainerRecord:
    path: Path = field(repr=False, compare=False)  # where save() writes it
    id: str
    sandbox_id: str
    metadata: ContainerMetadata
    created_at: datetime
    image: str
    image_ref: str
    log_path: str
    state: ContainerState = ContainerState.CREATED
    started_at: datetime | None = None
    finished_at: datetime | None = None
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    pid: int | None = None
    conmon_pid: int | None = None  # the monitor whose exit is the container's (None: the handler has none)
    pid_start_time: int | None = None  # with pid, names the process even if its pid is reused
    stop_signal: str = "SIGTERM"
    termination_message_path: str = ""
    handler: str = ""

    @classmethod
    def load(cls, path: Path) -> ContainerRecord:
        d = _read(path)
        return cls(
            path=path, id=d["id"], sandbox_id=d["sandbox_id"], metadata=ContainerMetadata(**d["metadata"]),
            created_at=datetime.fromisoformat(d["created_at"]), image=d["image"], image_ref=d["image_ref"],
            log_path=d["log_path"], state=ContainerState(d["state"]), started_at=_time(d["started_at"]),
            finished_at=_time(d["finished_at"]), exit_code=d["exit_code"], reason=d["reason"],
            message=d["message"], labels=d["labels"], annotations=d["annotations"], pid=d["pid"],
            conmon_pid=d["conmon_pid"], pid_start_time=d.get("pid_start_time"),
            stop_signal=d.get("stop_signal") or "SIGTERM",
            termination_message_path=d.get("termination_message_path", ""), handler=d.get("handler", ""))

    def save(self) -> None:
        write_json_atomic(self.path, _to_json(self))
