"""Open streams per caller (the concurrency limit) and the cancels pending for streams whose client left.

A client that vanishes mid-stream has ``RESUME_GRACE_SECONDS`` to reconnect with ``Last-Event-ID``;
if it does not, its request is cancelled so that no provider keeps generating for no one. Pending
cancels live in this process: a client that resumes through another façade replica does not stop them
(put replicas behind sticky sessions, or let the grace run out and the request be cancelled).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from shared.errors import LLMRelayError, RateLimitedError

log = structlog.get_logger("llmrelay.api")

#: How long a disconnected stream's request survives, waiting for its client to resume (module
#: attribute, read when a stream ends: tests shorten it).
RESUME_GRACE_SECONDS = 5.0


class StreamRegistry:
    """Counts each caller's open streams and holds the timers of pending cancels."""

    def __init__(self, limit_per_caller: int, cancel: Callable[[str], Awaitable[Any]]) -> None:
        self.limit = limit_per_caller
        self._cancel = cancel
        self._open: dict[str, int] = {}
        self._pending: dict[str, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.inflight = 0

    def acquire(self, caller: str) -> None:
        """Count a new stream of ``caller``; RateLimitedError when it already has ``limit`` open."""
        count = self._open.get(caller, 0)
        if count >= self.limit:
            raise RateLimitedError(
                f"too many concurrent streams for this caller (limit {self.limit})",
                retry_after=1.0,
                data={"limit": self.limit},
            )
        self._open[caller] = count + 1
        self.inflight += 1

    def release(self, caller: str) -> None:
        count = self._open.get(caller, 0) - 1
        if count > 0:
            self._open[caller] = count
        else:
            self._open.pop(caller, None)
        self.inflight = max(0, self.inflight - 1)

    def open_streams(self, caller: str) -> int:
        return self._open.get(caller, 0)

    def abandoned(self, request_id: str, grace: float | None = None) -> None:
        """The client of ``request_id`` left mid-stream: cancel it unless it resumes within the grace."""
        delay = RESUME_GRACE_SECONDS if grace is None else grace
        self.resumed(request_id)
        loop = asyncio.get_running_loop()
        self._pending[request_id] = loop.call_later(delay, self._fire, request_id)

    def resumed(self, request_id: str) -> bool:
        """A stream of ``request_id`` (re)started: drop its pending cancel. True if there was one."""
        handle = self._pending.pop(request_id, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    def pending(self) -> list[str]:
        return list(self._pending)

    def _fire(self, request_id: str) -> None:
        self._pending.pop(request_id, None)
        task = asyncio.get_running_loop().create_task(self._cancel_quietly(request_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_quietly(self, request_id: str) -> None:
        try:
            await self._cancel(request_id)
            log.info("cancelled a request whose client left", request_id=request_id)
        except LLMRelayError as err:
            log.warning("could not cancel an abandoned request", request_id=request_id, error=err.type_name)

    async def aclose(self) -> None:
        """Drop pending cancels (their clients may resume through another replica) and finish cancels."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
