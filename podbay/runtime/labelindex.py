"""CRI's label filter (ListContainers, ListPodSandboxes) without a scan of every record: the ids
holding each (key, value) pair. The node agent reads one pod's sandboxes and containers by its
uid label several times per sync; scanning them all made each read cost as much as the node's
pod count, and a node's last pods start slower than its first."""
from __future__ import annotations

from collections.abc import Mapping

Pair = tuple[str, str]


class LabelIndex:
    def __init__(self) -> None:
        self._ids: dict[Pair, set[str]] = {}
        self._labels: dict[str, dict[str, str]] = {}

    def put(self, record_id: str, labels: Mapping[str, str]) -> None:
        """`record_id` now has `labels` (new, or replacing what it had)."""
        if self._labels.get(record_id) == labels:
            return
        self.discard(record_id)
        self._labels[record_id] = dict(labels)
        for pair in labels.items():
            self._ids.setdefault(pair, set()).add(record_id)

    def discard(self, record_id: str) -> None:
        for pair in self._labels.pop(record_id, {}).items():
            ids = self._ids[pair]
            ids.discard(record_id)
            if not ids:
                del self._ids[pair]

    def select(self, selector: Mapping[str, str]) -> set[str]:
        """The ids whose labels include every pair of `selector` (not empty)."""
        sets = [self._ids.get(pair, set()) for pair in selector.items()]
        return set.intersection(*sets) if sets else set(self._labels)
