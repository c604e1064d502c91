"""Reading a container's log file for `pods/{name}/log` (the kubelet's kuberuntime/logs ReadLogs):
the CRI log format, PodLogOptions' filters (since, tail, limit) and following a running container.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

FOLLOW_POLL_SECONDS = 0.2  # log files have no change notification through the runtime


@dataclass
class LogLine:
    timestamp: str
    stream: str
    partial: bool
    content: bytes


@dataclass(frozen=True)
class LogOptions:
    """PodLogOptions from the query the API server forwards (it validated them)."""

    follow: bool = False
    timestamps: bool = False
    previous: bool = False
    tail_lines: int | None = None
    since: datetime | None = None  # the oldest line's time let through; None: every line
    limit_bytes: int | None = None  # the kubelet stops writing once that many bytes went out

    @classmethod
    def from_query(cls, query: Mapping[str, str], now: datetime) -> LogOptions:
        tail_lines = query.get("tailLines")
        limit = query.get("limitBytes")
        return cls(follow=query.get("follow") in ("1", "true"), timestamps=query.get("timestamps") in ("1", "true"),
                   previous=query.get("previous") in ("1", "true"),
                   tail_lines=int(tail_lines) if tail_lines not in (None, "") else None,
                   since=log_since(query, now), limit_bytes=int(limit) if limit else None)


def parse_cri_line(raw: bytes) -> LogLine | None:
    """`<RFC3339Nano> stdout|stderr F|P <content>` — the CRI log format."""
    parts = raw.rstrip(b"\n").split(b" ", 3)
    if len(parts) < 3:
        return None
    content = parts[3] if len(parts) == 4 else b""
    return LogLine(parts[0].decode(), parts[1].decode(), parts[2] == b"P", content)


def render(line: LogLine, timestamps: bool) -> bytes:
    text = line.content if line.partial else line.content + b"\n"
    return (line.timestamp.encode() + b" " + text) if timestamps else text


def log_since(query: Mapping[str, str], now: datetime) -> datetime | None:
    """The oldest line's time that PodLogOptions' sinceSeconds or sinceTime lets through (the API
    server validated them); None: every line."""
    if query.get("sinceSeconds"):
        return now - timedelta(seconds=int(query["sinceSeconds"]))
    if query.get("sinceTime"):
        return _utc(datetime.fromisoformat(query["sinceTime"]))
    return None


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def newer(line: LogLine, since: datetime | None) -> bool:
    """The kubelet's filter: a line at or after `since` (CRI's RFC3339Nano read to the microsecond)."""
    if since is None:
        return True
    try:
        return _utc(datetime.fromisoformat(line.timestamp)) >= since
    except ValueError:
        return True


def tail(lines: list[LogLine], n: int | None) -> list[LogLine]:
    """The last `n` whole lines (partial chunks join the line they end)."""
    if n is None:
        return lines
    out: deque[list[LogLine]] = deque(maxlen=max(n, 0))
    current: list[LogLine] = []
    for ln in lines:
        current.append(ln)
        if not ln.partial:
            out.append(current)
            current = []
    if current:
        out.append(current)
    return [ln for group in out for ln in group] if n > 0 else []


async def _read_lines(path: Path, follow: bool, alive: Callable[[], Awaitable[bool]]) -> AsyncIterator[LogLine]:
    with open(path, "rb") as f:
        buf = b""
        while True:
            chunk = f.readline()
            if chunk:
                buf += chunk
                if buf.endswith(b"\n"):
                    line = parse_cri_line(buf)
                    buf = b""
                    if line is not None:
                        yield line
                continue
            if not follow or not await alive():
                return
            await asyncio.sleep(FOLLOW_POLL_SECONDS)


async def read_logs(path: Path, options: LogOptions, alive: Callable[[], Awaitable[bool]],
                    out: Callable[[bytes], Awaitable[None]]) -> None:
    """ReadLogs: writes the lines `options` let through to `out`; following stops once `alive`
    says the container stopped and its file is read to the end."""
    budget = options.limit_bytes

    async def write(line: LogLine) -> bool:
        """Writes the line if it is new enough; False once limitBytes is spent."""
        nonlocal budget
        if not newer(line, options.since):
            return True
        data = render(line, options.timestamps)
        if budget is not None:
            data, budget = data[:budget], budget - len(data[:budget])
        await out(data)
        return budget is None or budget > 0

    writing, skip = True, 0
    if options.tail_lines is not None:
        lines = [ln async for ln in _read_lines(path, False, alive)]
        for ln in tail(lines, options.tail_lines):
            if writing:
                writing = await write(ln)
        skip = len(lines)
    if writing and (options.tail_lines is None or options.follow):
        seen = 0
        async for ln in _read_lines(path, options.follow, alive):
            seen += 1
            if seen > skip and not await write(ln):
                break
