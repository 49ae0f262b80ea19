"""Open streams per caller (the concurrency limit) and the cancels pending for streams whose client left.

A client that vanishes mid-stream has ``RESUME_GRACE_SECONDS`` to reconnect with ``Last-Event-ID``;
if it does not, its request is cancelled so that no provider keeps generating for no one. The timer
lives in the replica the client left; every stream that starts relaying a request writes a fresh token
under ``keys.stream_reader(request_id)``, so a resume through any replica replaces the token and the
pending cancel, finding it changed, does nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmrelay.shared import keys
from llmrelay.shared.errors import LLMRelayError, RateLimitedError

log = structlog.get_logger("llmrelay.api")

#: How long a disconnected stream's request survives, waiting for its client to resume (module
#: attribute, read when a stream ends: tests shorten it).
RESUME_GRACE_SECONDS = 5.0


class StreamRegistry:
    """Counts each caller's open streams and holds the timers of pending cancels."""

    def __init__(
        self,
        limit_per_caller: int,
        cancel: Callable[[str], Awaitable[Any]],
        redis: Callable[[], Redis] | None = None,
    ) -> None:
        self.limit = limit_per_caller
        self._cancel = cancel
        self._redis = redis
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

    async def started(self, request_id: str) -> str:
        """A stream starts relaying ``request_id``: void any pending cancel, here or on another replica.

        Returns this stream's token, to hand to ``abandoned`` should its client leave.
        """
        self.resumed(request_id)
        token = uuid.uuid4().hex
        if self._redis is not None:
            try:
                await self._redis().set(keys.stream_reader(request_id), token, ex=3600)
            except (RedisError, OSError, LLMRelayError):
                log.warning("could not record the stream's reader", request_id=request_id)
        return token

    def abandoned(self, request_id: str, grace: float | None = None, token: str = "") -> None:
        """The client of ``request_id`` left mid-stream: cancel it unless it resumes within the grace."""
        delay = RESUME_GRACE_SECONDS if grace is None else grace
        self.resumed(request_id)
        loop = asyncio.get_running_loop()
        self._pending[request_id] = loop.call_later(delay, self._fire, request_id, token)

    def resumed(self, request_id: str) -> bool:
        """A stream of ``request_id`` (re)started: drop its pending cancel. True if there was one."""
        handle = self._pending.pop(request_id, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    def pending(self) -> list[str]:
        return list(self._pending)

    def _fire(self, request_id: str, token: str) -> None:
        self._pending.pop(request_id, None)
        task = asyncio.get_running_loop().create_task(self._cancel_quietly(request_id, token))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cancel_quietly(self, request_id: str, token: str) -> None:
        try:
            if token and self._redis is not None:
                current = await self._redis().get(keys.stream_reader(request_id))
                if current is not None and current.decode() != token:
                    log.info("the client resumed through another replica", request_id=request_id)
                    return
            await self._cancel(request_id)
            log.info("cancelled a request whose client left", request_id=request_id)
        except LLMRelayError as err:
            log.warning("could not cancel an abandoned request", request_id=request_id, error=err.type_name)
        except (RedisError, OSError) as err:
            log.warning(
                "could not cancel an abandoned request", request_id=request_id, error=type(err).__name__
            )

    async def aclose(self) -> None:
        """Drop pending cancels (their clients may resume through another replica) and finish cancels."""
        for handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
