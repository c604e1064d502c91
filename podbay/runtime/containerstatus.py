"""What a container's record says of it: its exit, as conmon and the container left it
(exit code, OOM, termination message), and its CRI ContainerStatus."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from podbay.runtime.records import ContainerRecord
from podbay.runtime.types import ContainerMetadata, ContainerState, ContainerStatus

# The kubelet reads at most this much of a termination message file.
_MESSAGE_LIMIT = 4096


def record_exit(record: ContainerRecord, code: int, exit_file: Path, bundle: Path, container_dir: Path) -> None:
    """Moves the record to EXITED: finished when conmon wrote `exit_file`, OOMKilled when the
    bundle's oom marker is there, with the container's termination message."""
    oom = (bundle / "oom").exists()
    record.state, record.exit_code = ContainerState.EXITED, code
    record.finished_at = datetime.fromtimestamp(exit_file.stat().st_mtime, timezone.utc)
    record.reason = "OOMKilled" if oom else ("Completed" if code == 0 else "Error")
    record.message = _termination_message(container_dir)


def _termination_message(container_dir: Path) -> str:
    try:
        return (container_dir / "termination-log").read_bytes()[:_MESSAGE_LIMIT].decode(errors="replace")
    except OSError:
        return ""


def status_of(r: ContainerRecord) -> ContainerStatus:
    return ContainerStatus(
        id=r.id, sandbox_id=r.sandbox_id, metadata=ContainerMetadata(r.metadata.name, r.metadata.attempt),
        state=r.state, created_at=r.created_at, started_at=r.started_at, finished_at=r.finished_at,
        exit_code=r.exit_code, signal=(r.exit_code - 128) if r.exit_code is not None and r.exit_code > 128 else None,
        reason=r.reason, message=r.message, image=r.image, image_ref=r.image_ref, labels=r.labels,
        annotations=r.annotations, log_path=r.log_path, pid=r.pid)
