"""The producer SDK: enqueue LLM requests onto the provider streams and follow their events."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Sequence
from typing import Any, TypeVar

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import RedisError

from llmrelay.producer import batches
from llmrelay.producer.subscriptions import RESYNC, Subscriptions
from llmrelay.shared import keys, scripts
from llmrelay.shared.batch import BatchItem, BatchStatus
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.connections import blocking_pool
from llmrelay.shared.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    JobNotFoundError,
    LLMRelayError,
    ProviderUnavailableError,
    QueueFullError,
    RequestTimeoutError,
    StreamRestartedError,
)
from llmrelay.shared.events import TERMINAL_TYPES
from llmrelay.shared.governance import Governance
from llmrelay.shared.jobs import Job
from llmrelay.shared.models import LLMRequest, LLMResponse
from llmrelay.shared.queue import cancel_request, enqueue, make_job
from llmrelay.shared.settings import Settings

T = TypeVar("T")

#: How long past a job's deadline a caller keeps waiting for the worker's own timeout event.
DEADLINE_GRACE = 2.0


class LLMProducer:
    """The callers' side of llmrelay.

    One Redis connection pool and one pub/sub connection serve every request of the process. Use it as an
    async context manager, or call ``start()`` and ``aclose()``. Every error is a ``shared.errors`` one.
    """

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        redis_url: str | None = None,
        governance: Governance | None = None,
    ) -> None:
        self.settings = settings or Settings()
        if redis_url is not None:
            self.settings = self.settings.model_copy(update={"redis_url": redis_url})
        self.governance = governance or Governance.from_settings(self.settings)
        self.instance_id = uuid.uuid4().hex[:12]
        self._pool: BlockingConnectionPool | None = None
        self._redis: Redis | None = None
        self._subs: Subscriptions | None = None
        self._providers: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> LLMProducer:
        return cls(Settings())

    async def __aenter__(self) -> LLMProducer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def start(self) -> None:
        """Open the pool and the pub/sub connection before serving, so no request pays for them."""
        self._pool = blocking_pool(self.settings.redis_url, self.settings.redis_pool_size)
        self._redis = Redis(connection_pool=self._pool)
        try:
            await self._redis.ping()
            self._subs = Subscriptions(self._redis, f"{keys.PREFIX}:producer:{self.instance_id}")
            await self._subs.start()
        except (RedisError, OSError) as exc:
            await self.aclose()
            raise BackendUnavailableError(f"Redis is not reachable: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        if self._subs is not None:
            await self._subs.aclose()
            self._subs = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._pool is not None:
            await self._pool.aclose()
            self._pool = None

    @property
    def redis(self) -> Redis:
        if self._redis is None:
            raise BackendUnavailableError("the producer is not started: use 'async with LLMProducer(...)'")
        return self._redis

    # -- public API -----------------------------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one request to its end and return the response."""
        async for event in self.events(request, stream=False):
            if event["type"] == "done":
                return LLMResponse.model_validate(event["response"])
        raise ProviderUnavailableError("the event stream ended without a result")  # pragma: no cover

    async def stream(self, request: LLMRequest) -> AsyncGenerator[str, None]:
        """Yield the response's text as it is generated.

        If the job is retried after some text was yielded, the new attempt's text is matched against what
        was already yielded and only the rest is passed on; should it differ, StreamRestartedError is
        raised (the job itself goes on, and ``result(request_id)`` returns its final response).
        """
        delivered: list[str] = []
        replay: str | None = None
        async for event in self.events(request, stream=True):
            kind = event["type"]
            if kind == "token":
                text: str = event["text"]
                if replay is not None:
                    if len(text) <= len(replay):
                        if not replay.startswith(text):
                            raise StreamRestartedError(
                                "a retried attempt diverged from the text already sent"
                            )
                        replay = replay[len(text) :]
                        continue
                    if not text.startswith(replay):
                        raise StreamRestartedError("a retried attempt diverged from the text already sent")
                    text = text[len(replay) :]
                    replay = None
                delivered.append(text)
                yield text
            elif kind == "restart":
                replay = "".join(delivered) if delivered else None
            elif kind == "done":
                return

    async def submit(self, request: LLMRequest) -> str:
        """Queue a request and return its id at once; ``result(request_id)`` waits for the response."""
        job = self._job(request, stream=False)
        outcome = await self._call(self._enqueue_job(job))
        if _text(outcome[0]) == "full":
            raise self._queue_full(job)
        return job.request_id

    async def result(self, request_id: str, *, timeout: float | None = None) -> LLMResponse:
        """The response of a submitted request, waiting for it (until ``timeout`` seconds) if needed."""
        provider = await self._provider_of(request_id)
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.request_timeout)
        async for event in self._follow(provider, request_id, 0, deadline, terminal_only=True):
            if event["type"] == "done":
                return LLMResponse.model_validate(event["response"])
        raise ProviderUnavailableError("the event stream ended without a result")  # pragma: no cover

    async def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request. True if it was (or is being) cancelled by this call."""
        return await self._cancel_on(await self._provider_of(request_id), request_id)

    async def _cancel_on(self, provider: str, request_id: str) -> bool:
        return await self._call(cancel_request(self.redis, provider, request_id, self.settings.result_ttl))

    # -- bulk workloads ---------------------------------------------------------------------------------

    async def submit_batch(self, requests: Sequence[LLMRequest], *, batch_id: str | None = None) -> str:
        """Queue many requests on the batch lane; returns the batch id at once.

        Every item is checked first (a refused one raises its error with ``data["index"]``, and nothing
        is stored). Items keep their ``request_id`` or get ``<batch id>-<index>``. The workers feed them
        into the batch streams as the queue has room; see ``batch_status`` and ``batch_results``.
        """
        batch_id = batch_id or batches.new_batch_id()
        if not keys.valid_request_id(batch_id):
            raise InvalidRequestError("batch_id is not a valid id", data={"field": "batch_id"})
        items = batches.prepare(requests, self.governance, batch_id)
        await self._call(batches.store(self.redis, batch_id, items))
        for provider, item in items:
            assert item.request_id is not None
            self._remember(item.request_id, provider)
        return batch_id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """How many of the batch's items are pending, queued, running, done, failed, cancelled..."""
        return await self._call(batches.status(self.redis, batch_id))

    async def batch_results(
        self, batch_id: str, *, offset: int = 0, limit: int | None = None
    ) -> AsyncGenerator[BatchItem, None]:
        """Each item's outcome in submission order, from ``offset`` (``limit`` items at most)."""
        try:
            async for item in batches.results(self.redis, batch_id, offset, limit):
                yield item
        except (RedisError, OSError) as exc:
            raise BackendUnavailableError(f"Redis failed: {type(exc).__name__}") from None

    async def batch_cancel(self, batch_id: str) -> int:
        """Stop feeding the batch and cancel its queued and running items; returns how many this call
        cancelled (0 for a batch that had already ended or been cancelled)."""
        return await self._call(batches.cancel(self.redis, batch_id, self.settings.result_ttl))

    async def status(self, request_id: str) -> str:
        provider = await self._provider_of(request_id)
        raw = await self._call(self._hget(keys.state(provider, request_id), "status"))
        if raw is None:
            raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})
        return _text(raw)

    async def events(
        self, request: LLMRequest, *, stream: bool = True
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Queue a request and yield its events (token, restart, done) as dicts; errors are raised.

        This is what the façade relays: every event carries its ``index`` for resumption.
        """
        job = self._job(request, stream=stream)
        deadline = time.monotonic() + (job.deadline - job.enqueued_at) + DEADLINE_GRACE
        subs = self._subscriptions()
        channel = keys.channel(job.provider, job.request_id)
        try:
            async with subs.subscription(channel) as queue:
                outcome = await self._call(self._enqueue_job(job))
                state = _text(outcome[0])
                if state == "full":
                    raise self._queue_full(job)
                if state == "done":
                    yield _done_event(outcome[1])
                    return
                if state not in ("queued", "exists"):
                    raise _stored_error(outcome[1], job.request_id, state)
                catch_up = state == "exists"
                async for event in self._follow(
                    job.provider, job.request_id, 0, deadline, queue=queue, catch_up=catch_up
                ):
                    yield event
        except (RedisError, OSError) as exc:
            raise BackendUnavailableError(f"Redis failed: {type(exc).__name__}") from None
        except TimeoutError:
            raise BackendUnavailableError("Redis did not confirm the subscription in time") from None

    async def resume(self, request_id: str, after_index: int = 0) -> AsyncGenerator[dict[str, Any], None]:
        """Follow a request's events after ``after_index`` (e.g. an SSE ``Last-Event-ID``)."""
        provider = await self._provider_of(request_id)
        deadline = time.monotonic() + self.settings.request_timeout + DEADLINE_GRACE
        async for event in self._follow(provider, request_id, after_index, deadline):
            yield event

    # -- internals ------------------------------------------------------------------------------------

    def _subscriptions(self) -> Subscriptions:
        if self._subs is None:
            raise BackendUnavailableError("the producer is not started: use 'async with LLMProducer(...)'")
        return self._subs

    def _job(self, request: LLMRequest, *, stream: bool) -> Job:
        route = self.governance.route(request)
        request_id = request.request_id or uuid.uuid4().hex
        if request.request_id is None:
            request = request.model_copy(update={"request_id": request_id})
        self._remember(request_id, route.model.provider)
        return make_job(request, route, self.settings, stream=stream)

    def _remember(self, request_id: str, provider: str) -> None:
        self._providers[request_id] = provider
        if len(self._providers) > 100_000:
            self._providers.clear()

    async def _enqueue_job(self, job: Job) -> tuple[str, Any]:
        return await enqueue(self.redis, job, self.settings)

    def _queue_full(self, job: Job) -> QueueFullError:
        return QueueFullError(
            f"the {job.provider} {job.lane} queue is full ({self.settings.max_queue_length} jobs)",
            retry_after=1.0,
            data={"provider": job.provider, "lane": job.lane},
        )

    async def _follow(
        self,
        provider: str,
        request_id: str,
        after: int,
        deadline: float,
        *,
        queue: asyncio.Queue[Any] | None = None,
        catch_up: bool = True,
        terminal_only: bool = False,
    ) -> AsyncIterator[dict[str, Any]]:
        """Events after index ``after`` in order, live, each once, up to and including the terminal one."""
        if queue is None:
            async with self._subscriptions().subscription(keys.channel(provider, request_id)) as q:
                async for event in self._follow(
                    provider, request_id, after, deadline, queue=q, terminal_only=terminal_only
                ):
                    yield event
            return
        last = after
        if catch_up:
            for event in await self._read_log(provider, request_id, last):
                last = event["index"]
                if _is_terminal(event):
                    yield _checked(event)
                    return
                if not terminal_only:
                    yield event
            if last == after:
                status = await self._call(self._hget(keys.state(provider, request_id), "status"))
                if status is None:
                    raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})
                if _text(status) in scripts.TERMINAL:
                    # Ended: either the reader has seen the end already, or it ended since the read.
                    for event in await self._read_log(provider, request_id, last):
                        if _is_terminal(event):
                            yield _checked(event)
                            return
                        if not terminal_only:
                            yield event
                    return
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
                events = await self._read_log(provider, request_id, last)
            else:
                events = [orjson.loads(raw)]
            for event in events:
                index = event["index"]
                if index <= last:
                    continue
                last = index
                if _is_terminal(event):
                    yield _checked(event)
                    return
                if not terminal_only:
                    yield event

    async def _read_log(self, provider: str, request_id: str, after: int) -> list[dict[str, Any]]:
        entries = await self._call(
            self.redis.xrange(keys.events(provider, request_id), min=f"(0-{after}", max="+")
        )
        return [orjson.loads(fields[b"e"]) for _id, fields in entries]

    async def _provider_of(self, request_id: str) -> str:
        known = self._providers.get(request_id)
        if known is not None:
            return known
        async with self.redis.pipeline(transaction=False) as pipe:
            for provider in PROVIDERS:
                pipe.exists(keys.state(provider, request_id))
            found = await self._call(pipe.execute())
        for provider, exists in zip(PROVIDERS, found, strict=True):
            if exists:
                return provider
        raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})

    async def _hget(self, key: str, field: str) -> bytes | None:
        value: bytes | None = await self.redis.hget(key, field)  # type: ignore[misc]
        return value

    @staticmethod
    async def _call(awaitable: Awaitable[T]) -> T:
        try:
            return await awaitable
        except (RedisError, OSError) as exc:
            raise BackendUnavailableError(f"Redis failed: {type(exc).__name__}") from None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _is_terminal(event: dict[str, Any]) -> bool:
    return event["type"] in TERMINAL_TYPES


def _checked(event: dict[str, Any]) -> dict[str, Any]:
    if event["type"] == "error":
        error = LLMRelayError.from_dict(event["error"])
        error.event_index = event.get("index")
        raise error
    return event


def _done_event(raw_result: Any) -> dict[str, Any]:
    return {"type": "done", "index": 0, "response": orjson.loads(raw_result)}


def _stored_error(raw: Any, request_id: str, status: str) -> LLMRelayError:
    if raw:
        return LLMRelayError.from_dict(orjson.loads(raw))
    return InvalidRequestError(f"request {request_id!r} ended as {status}")  # pragma: no cover


__all__ = ["LLMProducer", "StreamRestartedError"]
