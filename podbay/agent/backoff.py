"""Restart back-off, as the kubelet's flowcontrol.Backoff keyed per pod container.

The first restart is immediate; each later one waits twice as long as the
previous (base, 2*base, ... capped). An entry older than `reset_after`
(the kubelet's 2 * max = 10 minutes) is forgotten, so a container that ran
cleanly that long starts over from `base`.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class _Entry:
    backoff: float
    last_update: float


@dataclass
class Backoff:
    base: float = 10.0
    cap: float = 300.0
    reset_after: float | None = None  # None: 2 * cap, as the kubelet
    _entries: dict[str, _Entry] = field(default_factory=dict)

    def _expired(self, entry: _Entry, event_time: float) -> bool:
        limit = self.reset_after if self.reset_after is not None else 2 * self.cap
        return event_time - entry.last_update > limit

    def get(self, key: str) -> float:
        entry = self._entries.get(key)
        return entry.backoff if entry else 0.0

    def next(self, key: str, event_time: float, now: float) -> float:
        """Records a restart, at `now`, of a container that exited at `event_time`;
        returns the delay the following restart will have to wait."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            entry = _Entry(self.base, now)
        else:
            entry = _Entry(min(entry.backoff * 2, self.cap), now)
        self._entries[key] = entry
        return entry.backoff

    def remaining(self, key: str, event_time: float, now: float) -> float:
        """Seconds still to wait before restarting after an exit at `event_time`; 0 if none."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, event_time):
            return 0.0
        return max(0.0, entry.backoff - (now - event_time))

    def forget(self, prefix: str) -> None:
        """Drops every entry whose key starts with `prefix` (a deleted pod)."""
        for key in [k for k in self._entries if k.startswith(prefix)]:
            del self._entries[key]


def backoff_key(pod_uid: str, container_name: str) -> str:
    return f"{pod_uid}/{container_name}"
