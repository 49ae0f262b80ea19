"""The façade's one stream relay, and the producer's one translation of Redis failures, in isolation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Iterable
from types import SimpleNamespace
from typing import Any

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from llmrelay.producer.api.jsonrpc import INTERNAL_ERROR
from llmrelay.producer.api.relay import StreamRelay, WithFirst
from llmrelay.producer.backend import backend_call, redis_failures
from llmrelay.shared.errors import BackendUnavailableError, LLMRelayError, ProviderUnavailableError
from llmrelay.shared.events import StreamEvent, TokenEvent


class Source:
    """Token events 1..n, then ``failure`` raised; remembers whether it was closed."""

    def __init__(self, n: int, failure: BaseException | None = None) -> None:
        self.n, self.failure, self.closed = n, failure, False

    async def run(self) -> AsyncGenerator[StreamEvent, None]:
        try:
            for i in range(1, self.n + 1):
                yield TokenEvent(i, f"t{i}")
            if self.failure is not None:
                raise self.failure
        finally:
            self.closed = True


def write(event: StreamEvent) -> Iterable[bytes]:
    yield b"%d;" % event.index


def fail(err: LLMRelayError | None, index: int) -> bytes:
    return b"error %s at %d" % (type(err).__name__.encode() if err else b"internal", index)


def relay() -> StreamRelay:
    return StreamRelay(SimpleNamespace(), "caller", "llm.stream")  # type: ignore[arg-type]


async def frames_of(r: StreamRelay, source: Source, **kw: Any) -> list[bytes]:
    return [frame async for frame in r.frames(source.run(), write, fail, **kw)]


async def test_the_relay_writes_every_event_and_marks_the_stream_finished() -> None:
    r, source = relay(), Source(3)
    assert await frames_of(r, source, opening=[b"hello;"]) == [b"hello;", b"1;", b"2;", b"3;"]
    assert (r.finished, r.outcome, source.closed) == (True, "ok", True)


async def test_an_unexpected_failure_ends_the_stream_with_an_internal_error_after_the_last_index() -> None:
    r, source = relay(), Source(2, RuntimeError("secret detail"))
    frames = await frames_of(r, source, after=0)
    assert frames == [b"1;", b"2;", b"error internal at 3"]
    assert (r.finished, r.outcome, source.closed) == (True, str(INTERNAL_ERROR), True)


async def test_an_error_event_keeps_its_own_index() -> None:
    err = ProviderUnavailableError("down")
    err.event_index = 9
    r = relay()
    frames = await frames_of(r, Source(1, err))
    assert frames == [b"1;", b"error ProviderUnavailableError at 9"]
    assert r.outcome == str(err.code)


async def test_a_failure_before_any_event_counts_from_the_resume_point() -> None:
    frames = await frames_of(relay(), Source(0, ProviderUnavailableError("down")), after=41)
    assert frames == [b"error ProviderUnavailableError at 42"]


async def test_with_first_yields_the_first_step_then_the_rest() -> None:
    source = Source(3)
    rest = source.run()
    first = asyncio.ensure_future(anext(rest))
    assert [e.index async for e in WithFirst(first, rest)] == [1, 2, 3]


async def test_closing_with_first_before_the_first_step_came_cancels_it_and_closes_the_rest() -> None:
    never: asyncio.Future[StreamEvent] = asyncio.get_running_loop().create_future()
    source = Source(3)
    rest = source.run()
    await anext(rest)  # started, so that closing it runs its cleanup
    await WithFirst(never, rest).aclose()
    assert never.cancelled() and source.closed


@pytest.mark.parametrize("failure", [RedisConnectionError("redis://:hunter2@db:6379 refused"), OSError("x")])
async def test_a_redis_failure_becomes_backend_unavailable_naming_only_its_class(failure: Exception) -> None:
    async def call() -> None:
        raise failure

    with pytest.raises(BackendUnavailableError) as info:
        await backend_call(call())
    assert info.value.message == f"Redis failed: {type(failure).__name__}"
    assert info.value.__cause__ is None and info.value.__suppress_context__
    with (
        pytest.raises(BackendUnavailableError, match=r"^Redis is not reachable: "),
        redis_failures("Redis is not reachable"),
    ):
        raise failure


def test_other_errors_pass_through_the_translation() -> None:
    with pytest.raises(ValueError, match="not ours"), redis_failures():
        raise ValueError("not ours")
