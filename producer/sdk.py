"""The producer SDK: enqueue LLM requests onto the provider streams and follow their events."""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis

from llmrelay.producer import batches
from llmrelay.producer.backend import backend_call, redis_failures
from llmrelay.producer.follower import EventFollower, ReplayFilter
from llmrelay.producer.subscriptions import Subscriptions
from llmrelay.shared import keys
from llmrelay.shared.batch import BatchItem, BatchStatus
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.connections import blocking_pool
from llmrelay.shared.embeddings import EmbeddingRequest, EmbeddingResponse, decode_embedding_result
from llmrelay.shared.errors import (
    BackendUnavailableError,
    InvalidRequestError,
    JobNotFoundError,
    LLMRelayError,
    ProviderUnavailableError,
    QueueFullError,
    StreamRestartedError,
)
from llmrelay.shared.events import DoneEvent, EmbeddingDoneEvent, RestartEvent, StreamEvent, TokenEvent
from llmrelay.shared.governance import Governance
from llmrelay.shared.jobs import Job, decode_error, decode_result
from llmrelay.shared.models import LLMRequest, LLMResponse
from llmrelay.shared.queue import cancel_request, enqueue, make_job
from llmrelay.shared.settings import Settings

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
        self.namespace = keys.namespace(self.settings.redis_url)
        self.instance_id = uuid.uuid4().hex[:12]
        self._pool: BlockingConnectionPool | None = None
        self._redis: Redis | None = None
        self._subs: Subscriptions | None = None
        self._follower: EventFollower | None = None
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
            with redis_failures("Redis is not reachable"):
                await self._redis.ping()
                self._subs = Subscriptions(self._redis, f"{keys.PREFIX}:producer:{self.instance_id}")
                await self._subs.start()
        except BackendUnavailableError:
            await self.aclose()
            raise
        self._follower = EventFollower(self._redis, self._subs, self.namespace)

    async def aclose(self) -> None:
        self._follower = None
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
            raise _not_started()
        return self._redis

    # -- public API -----------------------------------------------------------------------------------

    async def complete(self, request: LLMRequest) -> LLMResponse:
        """Run one request to its end and return the response."""
        return await _response_of(self.events(request, stream=False))

    async def stream(self, request: LLMRequest) -> AsyncGenerator[str, None]:
        """Yield the response's text as it is generated.

        If the job is retried after some text was yielded, the new attempt's text is matched against what
        was already yielded and only the rest is passed on; should it differ, StreamRestartedError is
        raised (the job itself goes on, and ``result(request_id)`` returns its final response).
        Tool-call deltas are not text and are not yielded here: ``events`` yields them as they come, and
        ``complete`` returns the calls whole in ``LLMResponse.tool_calls``.
        """
        replay = ReplayFilter()
        async for event in self.events(request, stream=True):
            match event:
                case TokenEvent(text=text):
                    if text := replay.token(text):
                        yield text
                case RestartEvent():
                    replay.restart()
                case DoneEvent():
                    return

    async def embed(self, request: EmbeddingRequest) -> EmbeddingResponse:
        """Embed the request's inputs through the queue: one vector per input, in order.

        The same governance as ``complete`` holds (ALLOWED_MODELS, rate limits, idempotency by
        ``request_id``, the deadline, retries, cancellation with ``cancel(request_id)``); embeddings are
        never streamed and never fail over to another model.
        """
        route = self.governance.route_embedding(request)
        request_id = request.request_id or uuid.uuid4().hex
        if request.request_id is None:
            request = request.model_copy(update={"request_id": request_id})
        self._remember(request_id, route.model.provider)
        job = make_job(request, route, self.settings, stream=False)
        async with contextlib.aclosing(self._run(job, terminal_only=True)) as events:
            async for event in events:
                if isinstance(event, EmbeddingDoneEvent):
                    return event.response
                break
        raise _other_kind(request_id, "a completion")

    async def submit(self, request: LLMRequest) -> str:
        """Queue a request and return its id at once; ``result(request_id)`` waits for the response."""
        job = self._job(request, stream=False)
        outcome = await self._enqueue_job(job)
        if outcome[0] == "full":
            raise self._queue_full(job)
        return job.request_id

    async def result(self, request_id: str, *, timeout: float | None = None) -> LLMResponse:
        """The response of a submitted request, waiting for it (until ``timeout`` seconds) if needed."""
        provider = await self._provider_of(request_id)
        deadline = time.monotonic() + (timeout if timeout is not None else self.settings.request_timeout)
        return await _response_of(
            self._follow().follow(provider, request_id, 0, deadline, terminal_only=True)
        )

    async def cancel(self, request_id: str) -> bool:
        """Cancel a queued or running request. True if it was (or is being) cancelled by this call."""
        return await self._cancel_on(await self._provider_of(request_id), request_id)

    async def _cancel_on(self, provider: str, request_id: str) -> bool:
        ttl = self.settings.result_ttl
        return await backend_call(
            cancel_request(self.redis, provider, request_id, ttl, namespace=self.namespace)
        )

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
        await backend_call(batches.store(self.redis, batch_id, items))
        for provider, item in items:
            assert item.request_id is not None
            self._remember(item.request_id, provider)
        return batch_id

    async def batch_status(self, batch_id: str) -> BatchStatus:
        """How many of the batch's items are pending, queued, running, done, failed, cancelled..."""
        return await backend_call(batches.status(self.redis, batch_id))

    async def batch_results(
        self, batch_id: str, *, offset: int = 0, limit: int | None = None
    ) -> AsyncGenerator[BatchItem, None]:
        """Each item's outcome in submission order, from ``offset`` (``limit`` items at most)."""
        with redis_failures():
            async for item in batches.results(self.redis, batch_id, offset, limit):
                yield item

    async def batch_cancel(self, batch_id: str) -> int:
        """Stop feeding the batch and cancel its queued and running items; returns how many this call
        cancelled (0 for a batch that had already ended or been cancelled)."""
        return await backend_call(
            batches.cancel(self.redis, batch_id, self.settings.result_ttl, self.namespace)
        )

    async def status(self, request_id: str) -> str:
        provider = await self._provider_of(request_id)
        raw = await backend_call(self._hget(keys.state(provider, request_id), "status"))
        if raw is None:
            raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})
        return _text(raw)

    async def events(self, request: LLMRequest, *, stream: bool = True) -> AsyncGenerator[StreamEvent, None]:
        """Queue a request and yield its events (token, tool_call, restart, done); errors are raised.

        This is what the façade relays: every event carries its ``index`` for resumption, and the
        bytes it came in (``raw``), to pass on as they are.
        """
        # Closed with this generator, so that its subscription ends when the caller stops reading.
        async with contextlib.aclosing(self._run(self._job(request, stream=stream))) as run:
            async for event in run:
                yield event

    async def _run(self, job: Job, *, terminal_only: bool = False) -> AsyncGenerator[StreamEvent, None]:
        """Queue a job (unless its id exists) and follow its events to the end."""
        deadline = time.monotonic() + (job.deadline - job.enqueued_at) + DEADLINE_GRACE
        follower = self._follow()
        # Subscribed before the job is queued: pub/sub has no replay, and a fast job could end unseen.
        channel = keys.channel(job.provider, job.request_id, namespace=self.namespace)
        with redis_failures():
            async with self._subscriptions().subscription(channel) as queue:
                state, detail = await self._enqueue_job(job)
                if state == "full":
                    raise self._queue_full(job)
                if state == "done":
                    if isinstance(job.request, EmbeddingRequest):
                        yield EmbeddingDoneEvent(0, decode_embedding_result(detail))
                    else:
                        yield DoneEvent(0, decode_result(detail))
                    return
                if state not in ("queued", "exists"):
                    raise _stored_error(detail, job.request_id, state)
                async for event in follower.follow(
                    job.provider,
                    job.request_id,
                    0,
                    deadline,
                    queue=queue,
                    catch_up=state == "exists",
                    terminal_only=terminal_only,
                ):
                    yield event

    async def resume(self, request_id: str, after_index: int = 0) -> AsyncGenerator[StreamEvent, None]:
        """Follow a request's events after ``after_index`` (e.g. an SSE ``Last-Event-ID``)."""
        provider = await self._provider_of(request_id)
        deadline = time.monotonic() + self.settings.request_timeout + DEADLINE_GRACE
        async for event in self._follow().follow(provider, request_id, after_index, deadline):
            yield event

    # -- internals ------------------------------------------------------------------------------------

    def _subscriptions(self) -> Subscriptions:
        if self._subs is None:
            raise _not_started()
        return self._subs

    def _follow(self) -> EventFollower:
        if self._follower is None:
            raise _not_started()
        return self._follower

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
        return await backend_call(enqueue(self.redis, job, self.settings))

    def _queue_full(self, job: Job) -> QueueFullError:
        return QueueFullError(
            f"the {job.provider} {job.lane} queue is full ({self.settings.max_queue_length} jobs)",
            retry_after=1.0,
            data={"provider": job.provider, "lane": job.lane},
        )

    async def _provider_of(self, request_id: str) -> str:
        known = self._providers.get(request_id)
        if known is not None:
            return known
        async with self.redis.pipeline(transaction=False) as pipe:
            for provider in PROVIDERS:
                pipe.exists(keys.state(provider, request_id))
            found = await backend_call(pipe.execute())
        for provider, exists in zip(PROVIDERS, found, strict=True):
            if exists:
                return provider
        raise JobNotFoundError(f"no request {request_id!r}", data={"request_id": request_id})

    async def _hget(self, key: str, field: str) -> bytes | None:
        value: bytes | None = await self.redis.hget(key, field)  # type: ignore[misc]
        return value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _not_started() -> BackendUnavailableError:
    return BackendUnavailableError("the producer is not started: use 'async with LLMProducer(...)'")


async def _response_of(stream: AsyncIterator[StreamEvent]) -> LLMResponse:
    """The response of the done event that ends a request's events (an error event is raised).

    The events are closed here, not when they are collected: their subscription ends before this
    returns, so that a next call for the same request id subscribes afresh."""
    try:
        async for event in stream:
            if isinstance(event, DoneEvent):
                return event.response
            if isinstance(event, EmbeddingDoneEvent):
                raise _other_kind(event.response.request_id, "an embedding")
    finally:
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()
    raise ProviderUnavailableError("the event stream ended without a result")  # pragma: no cover


def _other_kind(request_id: str, kind: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"request {request_id!r} is {kind}; its result is read through the call of its own kind",
        data={"field": "request_id", "request_id": request_id},
    )


def _stored_error(raw: Any, request_id: str, status: str) -> LLMRelayError:
    if raw:
        return LLMRelayError.from_dict(decode_error(raw))
    return InvalidRequestError(f"request {request_id!r} ended as {status}")  # pragma: no cover


__all__ = ["LLMProducer", "StreamRestartedError"]
