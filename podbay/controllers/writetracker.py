"""What a controller wrote that its informer's cache may not show yet (kube-controller-manager's
EndpointSliceTracker and staleEndpointsTracker). A controller reads the shared cache and writes
through the API; until the watch brings its own write back, the cache holds the older copy (or
none), and a sync from it would write again: a second slice made, an update sent from a stale
object. The controller tells the tracker what each write left behind and skips a sync while
the cache still shows it; the watch's event then wakes it."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Collection

from podbay.client.informer import Key, Object

# An expectation the cache never meets is dropped after this long (someone else deleted what was
# created, say, and a relist carried no event for it): the controller then syncs from what it sees.
EXPIRY = 30.0


@dataclass(frozen=True)
class _Expected:
    present: bool  # the write made or kept the object: the cache must hold it...
    stale_version: str | None  # ...at a resourceVersion other than this one (None: any)
    since: float


@dataclass
class WriteTracker:
    """Expectations grouped by the object the controller syncs (a Service), each on one object it
    wrote (the Service's slices, its Endpoints)."""
    clock: Callable[[], float] = time.monotonic
    _expected: dict[Key, dict[Key, _Expected]] = field(default_factory=dict)

    def created(self, owner: Key, key: Key) -> None:
        self._expect(owner, key, _Expected(True, None, self.clock()))

    def updated(self, owner: Key, key: Key, old_version: str | None) -> None:
        """`old_version`: the resourceVersion of the copy the update was made from."""
        self._expect(owner, key, _Expected(True, old_version, self.clock()))

    def deleted(self, owner: Key, key: Key) -> None:
        self._expect(owner, key, _Expected(False, None, self.clock()))

    def stale(self, owner: Key, cached: Callable[[Key], Object | None]) -> bool:
        """Whether the cache (`cached`: its object of a key, or None) still lacks any of `owner`'s
        writes; the expectations it meets are forgotten."""
        expected = self._expected.get(owner)
        if not expected:
            return False
        now = self.clock()
        for key, exp in list(expected.items()):
            obj = cached(key)
            if obj is None:
                met = not exp.present
            else:
                met = exp.present and obj.metadata.resource_version != exp.stale_version
            if met or now - exp.since > EXPIRY:
                del expected[key]
        if not expected:
            del self._expected[owner]
        return bool(expected)

    def keep_only(self, owners: Collection[Key]) -> None:
        """Forgets the writes for owners gone (a Service deleted)."""
        for owner in [o for o in self._expected if o not in owners]:
            del self._expected[owner]

    def _expect(self, owner: Key, key: Key, exp: _Expected) -> None:
        self._expected.setdefault(owner, {})[key] = exp
