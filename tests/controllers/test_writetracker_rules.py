"""The EndpointSlice controller's WriteTracker: a Service's sync waits while the shared cache
lacks what the last pass wrote (a slice created, an update, a deletion), and goes on once the
watch has brought it, or once the expectation has expired."""
from __future__ import annotations

from podbay.api.models import ObjectMeta
from podbay.api.services import EndpointSlice
from podbay.client.informer import Key
from podbay.controllers.writetracker import EXPIRY, WriteTracker

SVC: Key = ("default", "web")


def slice_at(name: str, version: str) -> EndpointSlice:
    return EndpointSlice(metadata=ObjectMeta(name=name, namespace="default", resource_version=version),
                         address_type="IPv4")


def nothing(key: Key) -> EndpointSlice | None:
    return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_created_slice_is_waited_for_until_the_cache_holds_it() -> None:
    tracker = WriteTracker()
    tracker.created(SVC, ("default", "web-a"))
    cache: dict[Key, EndpointSlice] = {}
    assert tracker.stale(SVC, cache.get)
    cache[("default", "web-a")] = slice_at("web-a", "5")
    assert not tracker.stale(SVC, cache.get)
    del cache[("default", "web-a")]  # met once: forgotten, a later deletion is someone else's
    assert not tracker.stale(SVC, cache.get)


def test_an_update_is_waited_for_while_the_cache_shows_the_copy_it_was_made_from() -> None:
    tracker = WriteTracker()
    cache = {("default", "web-a"): slice_at("web-a", "5")}
    tracker.updated(SVC, ("default", "web-a"), "5")
    assert tracker.stale(SVC, cache.get)
    cache[("default", "web-a")] = slice_at("web-a", "9")
    assert not tracker.stale(SVC, cache.get)


def test_a_deletion_is_waited_for_until_the_cache_drops_it() -> None:
    tracker = WriteTracker()
    cache = {("default", "web-a"): slice_at("web-a", "5")}
    tracker.deleted(SVC, ("default", "web-a"))
    assert tracker.stale(SVC, cache.get)
    cache.clear()
    assert not tracker.stale(SVC, cache.get)


def test_other_services_are_not_held_up_and_gone_ones_are_forgotten() -> None:
    tracker = WriteTracker()
    tracker.created(SVC, ("default", "web-a"))
    assert not tracker.stale(("default", "db"), nothing)
    tracker.keep_only([("default", "db")])
    assert not tracker.stale(SVC, nothing)


def test_an_expectation_the_cache_never_meets_expires() -> None:
    clock = Clock()
    tracker = WriteTracker(clock)
    tracker.created(SVC, ("default", "web-a"))
    clock.now = EXPIRY / 2
    assert tracker.stale(SVC, nothing)
    clock.now = EXPIRY + 1
    assert not tracker.stale(SVC, nothing)
