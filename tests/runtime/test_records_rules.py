"""The runtime's records: files in the format the runtime has always written load, and save back
the same keys and values, so a node upgraded in place keeps its pods."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from podbay.runtime.files import remove_json
from podbay.runtime.records import ContainerRecord, SandboxRecord
from podbay.runtime.types import ContainerState, PodSandboxMetadata, PortMapping, SandboxState

# As the runtime before typed records wrote them (string-keyed dicts dumped whole).
SANDBOX_JSON = {
    "id": "ab" * 32, "metadata": {"name": "web", "namespace": "default", "uid": "u-1", "attempt": 0},
    "state": "SANDBOX_READY", "created_at": "2026-11-30T19:30:49.123456+00:00", "ip": "10.88.0.5",
    "ips": ["10.88.0.5"], "labels": {"app": "web"}, "annotations": {"a": "b"}, "host_network": False,
    "host_ipc": False, "host_pid": False, "share_pid": True, "hostname": "web",
    "port_mappings": [{"container_port": 80, "host_port": 8080, "protocol": "TCP", "host_ip": ""}],
    "netns": "/run/podbay/sandboxes/x/ns/net", "cgroup": "podbay/pod-abababababababab", "handler": "runc",
    "notes": [], "pid_holder": 4242,
}
CONTAINER_JSON = {
    "id": "cd" * 32, "sandbox_id": "ab" * 32, "metadata": {"name": "nginx", "attempt": 1},
    "state": "CONTAINER_EXITED", "created_at": "2026-11-30T19:30:50.000001+00:00",
    "started_at": "2026-11-30T19:30:51+00:00", "finished_at": "2026-11-30T19:31:00.500000+00:00", "exit_code": 137,
    "reason": "Error", "message": "bye", "image": "busybox:1.35", "image_ref": "sha256:" + "e" * 64,
    "labels": {"l": "v"}, "annotations": {}, "log_path": "/var/log/x/1.log", "pid": 100, "conmon_pid": 99,
    "stop_signal": "SIGQUIT", "termination_message_path": "/dev/termination-log", "handler": "",
    "pid_start_time": 123456,
}
# Before runtime handlers, pid start times and sandbox notes were recorded.
OLDER_SANDBOX_KEYS = ("handler", "notes", "pid_holder")
OLDER_CONTAINER_KEYS = ("handler", "pid_start_time")


def write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def test_a_sandbox_record_in_the_existing_format_loads_and_saves_the_same_values(tmp_path: Path) -> None:
    record = SandboxRecord.load(write(tmp_path / "s.json", SANDBOX_JSON))
    assert record.state is SandboxState.READY and record.share_pid and record.pid_holder == 4242
    assert record.metadata == PodSandboxMetadata("web", "default", "u-1")
    assert record.port_mappings == [PortMapping(80, 8080, "TCP", "")]
    assert record.created_at == datetime(2026, 11, 30, 19, 30, 49, 123456, tzinfo=timezone.utc)
    record.save()
    saved = json.loads((tmp_path / "s.json").read_text())
    assert {k: saved[k] for k in SANDBOX_JSON} == SANDBOX_JSON
    assert saved["message"] == ""


def test_a_container_record_in_the_existing_format_loads_and_saves_the_same_values(tmp_path: Path) -> None:
    record = ContainerRecord.load(write(tmp_path / "record.json", CONTAINER_JSON))
    assert record.state is ContainerState.EXITED and record.exit_code == 137 and record.stop_signal == "SIGQUIT"
    assert record.finished_at == datetime(2026, 11, 30, 19, 31, 0, 500000, tzinfo=timezone.utc)
    record.save()
    assert json.loads((tmp_path / "record.json").read_text()) == CONTAINER_JSON


def test_records_older_than_runtime_handlers_load_with_the_defaults(tmp_path: Path) -> None:
    sandbox = SandboxRecord.load(write(tmp_path / "s.json", {
        k: v for k, v in SANDBOX_JSON.items() if k not in OLDER_SANDBOX_KEYS}))
    assert (sandbox.handler, sandbox.notes, sandbox.pid_holder) == ("", [], None)
    container = ContainerRecord.load(write(tmp_path / "record.json", {
        k: v for k, v in CONTAINER_JSON.items() if k not in OLDER_CONTAINER_KEYS}))
    assert (container.handler, container.pid_start_time) == ("", None)
    container.started_at = None
    container.save()
    assert json.loads((tmp_path / "record.json").read_text())["started_at"] is None


def test_a_saved_record_replaces_the_old_one_whole_and_keeps_one_spare(tmp_path: Path) -> None:
    path = tmp_path / "record.json"
    record = ContainerRecord.load(write(path, CONTAINER_JSON))
    with path.open() as reader:  # a reader that opened the record before the save
        record.state = ContainerState.RUNNING
        record.save()
        assert json.loads(reader.read()) == CONTAINER_JSON
    assert json.loads(path.read_text())["state"] == "CONTAINER_RUNNING"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".record.json.tmp", "record.json"]
    spare = (tmp_path / ".record.json.tmp").stat().st_ino
    record.message = ""  # shorter than the spare's content: none of its old bytes may be left
    record.save()
    assert ContainerRecord.load(path).message == ""
    assert (tmp_path / ".record.json.tmp").stat().st_ino != spare  # swapped, not written in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [".record.json.tmp", "record.json"]
    remove_json(path)
    assert list(tmp_path.iterdir()) == []
    fresh = tmp_path / "fresh" / "record.json"
    fresh.parent.mkdir()
    record.path = fresh
    record.save()
    assert ContainerRecord.load(fresh).state is ContainerState.RUNNING
    assert sorted(p.name for p in fresh.parent.iterdir()) == [".record.json.tmp", "record.json"]
    record.state = ContainerState.EXITED  # the second save rewrites the spare made by the first
    record.save()
    assert ContainerRecord.load(fresh).state is ContainerState.EXITED
