"""Helpers every test package uses."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any


async def poll(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Wait until ``check()`` returns something truthy (awaiting it if it is a coroutine)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met before the deadline")
        await asyncio.sleep(interval)
