"""Reading a request's events: the one follower (log, live tail, resync, end) and the one replay filter.

Every reader of events in the producer goes through :meth:`EventFollower.follow`: the SDK's
``complete``, ``stream``, ``events``, ``result`` and ``resume``, and through them the JSON-RPC and
OpenAI-compatible relays. It reads the request's event log for what happened before it subscribed (or
while its pub/sub connection was down), then the live channel, and yields each event once, in index
order, up to the terminal one. Callers that cannot take text back (a plain text stream, an OpenAI
stream) pass token text and tool-call deltas through a :class:`ReplayFilter`.
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
from llmrelay.shared.events import TERMINAL, ErrorEvent, StreamEvent, ToolCallEvent


class EventFollower:
    """Follows requests' events over one Redis client and the process's shared pub/sub connection."""

    def __init__(self, redis: Redis, subscriptions: Subscriptions, namespace: str) -> None:
        self._redis = redis
        self._subs = subscriptions
        self._namespace = namespace  # the deployment's, in its channel names (keys.namespace)

    @property
    def namespace(self) -> str:
        """The deployment's namespace in channel names (``keys.namespace`` of its Redis URL)."""
        return self._namespace

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
            async with self._subs.subscription(
                keys.channel(provider, request_id, namespace=self._namespace)
            ) as own:
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
    """What to pass on from token and tool_call events when a retried attempt restarts a stream already
    under way.

    A stream to a caller cannot take anything back: the new attempt's text and tool-call deltas are
    matched, in order, against what was sent, and only what goes beyond it is passed on; should they
    differ (other text, another call, another call id), StreamRestartedError ends the stream (the job
    itself goes on, and its result can still be read). How the deltas were split into events does not
    matter, only what they add up to.
    """

    __slots__ = ("_replay", "_sent")

    def __init__(self) -> None:
        self._sent: list[_Segment] = []
        self._replay: list[_Segment] | None = None

    def restart(self) -> None:
        self._replay = [_Segment(s.call_index, s.id, s.name, s.text) for s in self._sent] or None

    def token(self, text: str) -> str:
        """The part of a token event's text not sent yet."""
        out = self._match(None, None, None, text)
        if out:
            self._record(None, None, None, out)
        return out

    def tool_call(self, event: ToolCallEvent) -> ToolCallEvent | None:
        """The part of a tool_call event not sent yet (None if all of it was), as an event to send."""
        if self._replay is None:
            self._record(event.call_index, event.id, event.name, event.arguments)
            return event
        head = self._replay[0]
        named = event.id is not None or event.name is not None
        if head.call_index != event.call_index or (named and (head.id, head.name) != (event.id, event.name)):
            raise _diverged()
        if named != head.head_pending:
            raise _diverged()
        rest = self._match(event.call_index, event.id, event.name, event.arguments)
        if not rest:
            return None
        self._record(event.call_index, None, None, rest)
        return ToolCallEvent(event.index, event.call_index, None, None, rest, context=event.context)

    def _match(self, call_index: int | None, id_: str | None, name: str | None, text: str) -> str:
        """``text`` less the part the replay already covers; StreamRestartedError if it differs."""
        replay = self._replay
        if replay is None:
            return text
        head = replay[0]
        if head.call_index != call_index:
            raise _diverged()
        head.head_pending = False
        common = min(len(text), len(head.text))
        if text[:common] != head.text[:common]:
            raise _diverged()
        if len(text) < len(head.text):
            head.text = head.text[len(text) :]
            return ""
        text = text[len(head.text) :]
        replay.pop(0)
        if not replay:
            self._replay = None
        elif text:
            raise _diverged()
        return text

    def _record(self, call_index: int | None, id_: str | None, name: str | None, text: str) -> None:
        last = self._sent[-1] if self._sent else None
        if last is not None and last.call_index == call_index and id_ is None and name is None:
            last.text += text
        else:
            self._sent.append(_Segment(call_index, id_, name, text))


class _Segment:
    """A run of sent text (``call_index`` None) or of one tool call's deltas (its id, name, arguments)."""

    __slots__ = ("call_index", "head_pending", "id", "name", "text")

    def __init__(self, call_index: int | None, id_: str | None, name: str | None, text: str) -> None:
        self.call_index = call_index
        self.id = id_
        self.name = name
        self.text = text
        self.head_pending = id_ is not None or name is not None


def _diverged() -> StreamRestartedError:
    return StreamRestartedError("a retried attempt diverged from what the stream had already sent")


__all__ = ["EventFollower", "ReplayFilter"]
