"""The warm pool's refill loop: when a refill runs after a sandbox was handed out, and that a take
during a refill is not dropped. The sandboxes it makes are the e2e tests' (test_warmpool_e2e.py)."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

from podbay.runtime.warmpool import Refill

DEADLINE = 30.0  # far above any pause here: a hang fails the test instead of stalling the run


def counting(result: bool) -> tuple[list[int], Callable[[], Awaitable[bool]]]:
    """A top-up that only counts its calls and answers `result`."""
    calls: list[int] = []

    async def top_up() -> bool:
        calls.append(1)
        return result
    return calls, top_up


async def test_a_container_start_before_the_pause_begins_still_ends_it() -> None:
    calls, top_up = counting(True)
    started = asyncio.Event()
    refill = Refill(top_up)
    refill.ask(3600.0, started)
    started.set()  # before the refill's task has run at all
    await asyncio.wait_for(refill.wait(), DEADLINE)
    assert calls == [1]


async def test_an_ask_while_topping_up_goes_round_again() -> None:
    release = asyncio.Event()
    calls: list[int] = []

    async def top_up() -> bool:
        calls.append(1)
        if len(calls) == 1:
            await release.wait()
        return True

    refill = Refill(top_up)
    refill.ask(0.0, asyncio.Event())
    while not calls:
        await asyncio.sleep(0)
    refill.ask(0.0, asyncio.Event())  # another sandbox taken meanwhile
    release.set()
    await asyncio.wait_for(refill.wait(), DEADLINE)
    assert len(calls) == 2


async def test_a_failed_top_up_stops_until_asked_again() -> None:
    calls, top_up = counting(False)
    refill = Refill(top_up)
    refill.ask(0.0, asyncio.Event())
    await asyncio.wait_for(refill.wait(), DEADLINE)
    refill.ask(0.0, asyncio.Event())
    await asyncio.wait_for(refill.wait(), DEADLINE)
    assert len(calls) == 2


async def test_cancel_ends_a_refill_in_its_pause() -> None:
    calls, top_up = counting(True)
    refill = Refill(top_up)
    refill.ask(3600.0, asyncio.Event())
    await asyncio.wait_for(refill.cancel(), DEADLINE)
    assert calls == []
