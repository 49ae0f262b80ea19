"""The one stream relay of the façade: a request's events out as SSE frames, whatever the wire format.

JSON-RPC and the OpenAI-compatible endpoint relay events the same way and differ only in how an event
and an error are written: :class:`StreamRelay` takes the caller's stream slot and the in-flight gauge,
writes the frames, turns a failure into one last error frame, and when the response closes gives the
slot back, records the call's outcome, and hands a request whose client left to the stream registry
(which cancels it unless it is resumed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from starlette.types import Receive

from llmrelay.producer.api import sse
from llmrelay.producer.api.facade import Facade
from llmrelay.producer.api.jsonrpc import INTERNAL_ERROR
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.events import StreamEvent

log = structlog.get_logger("llmrelay.api")

T = TypeVar("T")

#: Writes the frames of one event (none, one or several).
EventWriter = Callable[[StreamEvent], Iterable[bytes]]
#: Writes the last frame of a stream that failed: ``(our error, or None for an unexpected one, index)``.
ErrorWriter = Callable[[LLMRelayError | None, int], bytes]


@dataclass(slots=True)
class StreamRelay:
    """One relayed stream of one caller, from admission to the close of its response.

    ``grace`` is how long an abandoned request may wait for a resume before it is cancelled (None: the
    registry's default); ``token`` voids a cancel pending from an earlier broken stream of it.
    """

    facade: Facade
    caller: str
    method: str
    request_id: str = ""
    grace: float | None = None
    token: str = ""
    finished: bool = False
    outcome: str = "ok"
    started: float = field(default_factory=time.perf_counter)
    admitted: bool = False

    def observe(self, outcome: str) -> None:
        self.facade.metrics.observe_call(self.method, outcome, time.perf_counter() - self.started)

    def admit(self) -> None:
        """Take one of the caller's stream slots (RateLimitedError when it has none left)."""
        self.facade.streams.acquire(self.caller)
        self.facade.metrics.streams.inc()
        self.admitted = True

    async def follow(self, request_id: str) -> None:
        """Name the request being relayed, voiding a cancel pending from an earlier broken stream."""
        self.request_id = request_id
        self.token = await self.facade.streams.started(request_id)

    def end(self, outcome: str) -> None:
        """The stream ended (or was refused) with this outcome: nothing more is to be sent."""
        self.finished, self.outcome = True, outcome

    def refused(self, outcome: str) -> None:
        """An admitted stream that is answered without being relayed."""
        self.end(outcome)
        self.closed(False)

    def closed(self, disconnected: bool) -> None:
        """The response closed; ``disconnected`` when its client left first."""
        if self.admitted:
            self.facade.streams.release(self.caller)
            self.facade.metrics.streams.dec()
        outcome = self.outcome
        if disconnected and not self.finished:
            outcome = "disconnected"
            if self.request_id:
                self.facade.streams.abandoned(self.request_id, self.grace, self.token)
        self.observe(outcome)

    def response(self, frames: AsyncGenerator[bytes, None]) -> sse.EventStreamResponse:
        return sse.EventStreamResponse(
            frames, headers=[(b"x-request-id", self.request_id.encode())], on_close=self.closed
        )

    async def frames(
        self,
        events: AsyncIterator[StreamEvent],
        write: EventWriter,
        fail: ErrorWriter,
        *,
        after: int = 0,
        opening: Iterable[bytes] = (),
    ) -> AsyncGenerator[bytes, None]:
        """``opening``, then each event's frames, then a failure's error frame; ``events`` is closed."""
        last = after
        try:
            for frame in opening:
                yield frame
            async for event in events:
                last = event.index
                for frame in write(event):
                    yield frame
            self.finished = True
        except LLMRelayError as err:
            self.end(str(err.code))
            yield fail(err, err.event_index if err.event_index is not None else last + 1)
        except Exception:
            log.exception("stream relay failed", method=self.method, request_id=self.request_id)
            self.end(str(INTERNAL_ERROR))
            yield fail(None, last + 1)
        finally:
            await aclose(events)


class WithFirst(Generic[T]):
    """The result of ``first`` (a step already under way), then the items of ``rest``.

    Closing it cancels ``first`` if it has not come yet and closes ``rest``, whether or not it was
    iterated at all.
    """

    def __init__(self, first: asyncio.Future[T], rest: AsyncIterator[T]) -> None:
        self._first: asyncio.Future[T] | None = first
        self._rest = rest

    def __aiter__(self) -> WithFirst[T]:
        return self

    async def __anext__(self) -> T:
        first, self._first = self._first, None
        if first is not None:
            return await first
        return await anext(self._rest)

    async def aclose(self) -> None:
        if self._first is not None and not self._first.done():
            self._first.cancel()
        await aclose(self._rest)


async def aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def unless_disconnected(work: Awaitable[T], receive: Receive) -> T | None:
    """Await ``work`` unless the client disconnects first (then ``work`` is cancelled and None returned)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(sse._until_disconnect(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


async def one(frame: bytes) -> AsyncGenerator[bytes, None]:
    yield frame


__all__ = ["StreamRelay", "WithFirst", "aclose", "one", "unless_disconnected"]
