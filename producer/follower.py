"""Reading a request's events: the one follower (log, live tail, resync, end) and the one replay filter.

Every reader of events in the producer goes through :meth:`EventFollower.follow`: the SDK's
``complete``, ``stream``, ``events``, ``result`` and ``resume``, and through them the JSON-RPC and
OpenAI-compatible relays. It reads the request's event log for what happened before it subscribed (or
while its pub/sub connection was down), then the live channel, and yields each event once, in index
order, up to the terminal one. Callers that cannot take text back (a plain text stream, an OpenAI
stream) pass token text through a :class:`ReplayFilter`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from redis.asyncio import Redis

from llmrelay.producer.backend import backend_call
from llmrelay.producer.subscriptions import RESYNC, Subscriptions
from llmrelay.shared import events, keys, scripts
from llmrelay.shared.errors import JobNotFoundError, RequestTimeoutError, StreamRestartedError
from llmrelay.shared.events import TERMINAL, ErrorEvent, StreamEvent


class EventFollower:
    """Follows requests' events over one Redis client and the process's shared pub/sub connection."""

    def __init__(self, redis: Redis, subscriptions: Subscriptions) -> None:
        self._redis = redis
        self._subs = subscriptions

    async def follow(
        self,
        provider: str,
        request_id: str,
        after: int,
        deadline: float,
        *,
        queue: asyncio.Queue[Any] | None = None,
        catch_up: bool = True,
        terminal_only: bool = False,
    ) -> AsyncIterator[StreamEvent]:
        """Events after index ``after`` in order, live, each once, up to and including the terminal one.

        An error event is raised as its exception. ``queue`` is a subscription the caller opened
        already (before enqueuing, so that nothing is published unseen); without one the follower
        subscribes itself. ``catch_up=False`` skips the first log read, for a job just queued.
        ``terminal_only`` yields the terminal event alone. RequestTimeoutError past ``deadline``.
        """
        if queue is None:
            async with self._subs.subscription(keys.channel(provider, request_id)) as own:
                async for event in self.follow(
                    provider, request_id, after, deadline, queue=own, terminal_only=terminal_only
                ):
                    yield event
            return
        last = after
        batch: Iterable[StreamEvent] = ()
        ended = False
        if catch_up:
            batch = await self._read_log(provider, request_id, last)
            if not batch:
                ended = await self._has_ended(provider, request_id)
                if ended:
                    # Either the reader has seen the end already, or it ended since the read.
                    batch = await self._read_log(provider, request_id, last)
        while True:
            for event in batch:
                if event.index <= last:
                    continue
                last = event.index
                if isinstance(event, TERMINAL):
                    if isinstance(event, ErrorEvent):
                        raise event.exception()
                    yield event
                    return
                if not terminal_only:
                    yield event
            if ended:
                return
            batch = await self._next(queue, provider, request_id, last, deadline)

    async def _next(
        self, queue: asyncio.Queue[Any], provider: str, request_id: str, last: int, deadline: float
    ) -> list[StreamEvent]:
        """The next live event, or the log after ``last`` when the connection was re-established."""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RequestTimeoutError(
                    f"no result for request {request_id!r} before its deadline",
                    data={"request_id": request_id},
                )
            try:
                raw = await asyncio.wait_for(queue.get(), remaining)
            except TimeoutError:
                continue
            if raw is RESYNC:
                return await self._read_log(provider, request_id, last)
            return [events.decode(raw)]

    async def _read_log(self, provider: str, request_id: str, after: int) -> list[StreamEvent]:
        entries = await backend_call(
            self._redis.xrange(keys.events(provider, request_id), min=f"(0-{after}", max="+")
        )
        return [events.decode(fields[b"e"]) for _id, fields in entries]

    async def _has_ended(self, provider: str, request_id: str) -> bool:
        """Whether the request is in a terminal state; JobNotFoundError when there is no such request."""
        status: bytes | None = await backend_call(
            self._redis.hget(keys.state(provider, request_id), "status")  # type: ignore[arg-type]
        )
        if status is None:
            raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})
        return status.decode() in scripts.TERMINAL


class ReplayFilter:
    """Text to pass on from token events when a retried attempt restarts a stream already under way.

    A text stream cannot take text back: the new attempt's text is matched against what was sent and
    only what goes beyond it is passed on; should it differ, StreamRestartedError ends the stream (the
    job itself goes on, and its result can still be read).
    """

    __slots__ = ("_replay", "_sent")

    def __init__(self) -> None:
        self._sent: list[str] = []
        self._replay: str | None = None

    def restart(self) -> None:
        self._replay = "".join(self._sent) if self._sent else None

    def token(self, text: str) -> str:
        replay = self._replay
        if replay is not None:
            common = min(len(text), len(replay))
            if text[:common] != replay[:common]:
                raise StreamRestartedError("a retried attempt diverged from the text already sent")
            if len(text) <= len(replay):
                self._replay = replay[len(text) :]
                return ""
            text = text[len(replay) :]
            self._replay = None
        self._sent.append(text)
        return text


__all__ = ["EventFollower", "ReplayFilter"]
