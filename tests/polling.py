"""Waiting in a test for what a user would see, with a deadline and never a bare sleep."""
from __future__ import annotations

import asyncio
from typing import Callable


async def wait_until(check: Callable[[], object], what: str = "condition", timeout: float = 30.0) -> None:
    """Until `check()` is true; an AssertionError naming `what` once `timeout` seconds passed."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, f"never within {timeout:g} s: {what}"
        await asyncio.sleep(0.05)
