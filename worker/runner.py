"""Runs one job: begin (lease, delivery cap, deadline), attempts with retries and failover, the end."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog
from redis.asyncio import Redis

from llmrelay.shared import keys, scripts
from llmrelay.shared.catalog import ModelInfo
from llmrelay.shared.embeddings import (
    EmbeddingRequest,
    EmbeddingResponse,
    EmbeddingUsage,
    chat_model_refused,
    check_embedding_model,
    estimate_input_tokens,
)
from llmrelay.shared.errors import (
    DeadLetteredError,
    InvalidRequestError,
    LLMRelayError,
    ProviderError,
    RateLimitedError,
    RequestCancelledError,
    RequestTimeoutError,
)
from llmrelay.shared.governance import Governance, estimate_prompt_tokens
from llmrelay.shared.jobs import Job, read_entry
from llmrelay.shared.metrics import WorkerMetrics
from llmrelay.shared.models import LLMRequest, LLMResponse
from llmrelay.shared.redaction import redact
from llmrelay.shared.scripts import LuaScript
from llmrelay.shared.settings import Settings
from llmrelay.worker.artifacts import ArtifactStore
from llmrelay.worker.output import parsed_output
from llmrelay.worker.providers.base import (
    Completion,
    EmbeddingCall,
    ProviderAdapter,
    ProviderCall,
    StreamAccumulator,
)
from llmrelay.worker.ratelimit import RateLimiter
from llmrelay.worker.relay import JobEvents, LeaseLostError

log = structlog.get_logger("llmrelay.worker")

_BEGIN = LuaScript(scripts.BEGIN)

#: How many tokens the limiter charges up front when a request sets no max_tokens.
DEFAULT_COMPLETION_ESTIMATE = 256


class CancelReason:
    """Why a running job's task was cancelled: by its caller, or by this worker's shutdown."""

    CALLER = "caller"
    SHUTDOWN = "shutdown"


@dataclass(slots=True)
class Running:
    """A job in flight in this process."""

    request_id: str
    entry_id: str
    lane: str
    task: asyncio.Task[None] | None = None
    cancel_reason: str | None = None
    started: float = field(default_factory=time.monotonic)


class JobRunner:
    """Everything a worker does with one delivered work stream entry."""

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        governance: Governance,
        adapters: Callable[[str], ProviderAdapter],
        limiter: RateLimiter,
        metrics: WorkerMetrics,
        consumer: str,
    ) -> None:
        self._redis = redis
        self._settings = settings
        self._governance = governance
        self._adapters = adapters
        self._limiter = limiter
        self._metrics = metrics
        self._consumer = consumer
        self._artifacts = ArtifactStore(redis, settings.result_ttl)

        self._namespace = keys.namespace(settings.redis_url)

    async def run(
        self, provider: str, lane: str, entry_id: str, fields: dict[bytes, bytes], running: Running
    ) -> None:
        stream_key = keys.work_stream(provider, lane)
        request_id, raw = read_entry(fields)
        request_id = request_id or entry_id
        try:
            job = Job.decode(raw)
        except InvalidRequestError as err:
            await self._dead_letter_undecodable(provider, request_id, stream_key, entry_id, err, raw)
            return
        bound = log.bind(provider=job.provider, model=job.model, lane=lane, **job.request.log_context())
        begin = await _BEGIN(
            self._redis,
            [keys.state(provider, job.request_id), stream_key, keys.pause(provider)],
            [self._consumer, time.time(), self._settings.max_deliveries, entry_id, keys.GROUP],
        )
        events = partial(
            self._events, provider, job.request_id, stream_key, entry_id, context=job.request.a2a()
        )
        match [_text(begin[0]), *begin[1:]]:
            case ["skip", status]:
                bound.debug("nothing to run", status=_text(status))
            case ["cancelled", last_index]:
                await events(int(last_index)).fail("cancelled", _cancelled())
            case ["expired", last_index]:
                await events(int(last_index)).fail(
                    "expired", RequestTimeoutError("the request's deadline passed while it was queued")
                )
            case ["dead", last_index, last_error]:
                await self._dead_letter_capped(events(int(last_index)), _text(last_error), raw, bound)
            case ["run", last_index, deliveries, paused_ms]:
                # BEGIN read this stream's provider's pause: the job's own only when the two match.
                known_pause = max(0, int(paused_ms)) if job.provider == provider else None
                writer = events(int(last_index), str(deliveries))
                await self._deliver(job, writer, int(deliveries), known_pause, running, bound, raw)
            case _:
                raise RuntimeError(f"unexpected reply from the BEGIN script: {begin!r}")

    async def _deliver(
        self,
        job: Job,
        writer: JobEvents,
        deliveries: int,
        paused_ms: int | None,
        running: Running,
        bound: Any,
        raw: bytes,
    ) -> None:
        """One delivery BEGIN let run: the worker-side model check, the attempts, the terminal event."""
        provider = writer.provider
        try:
            for name in (job.model, *job.fallbacks):
                info = self._governance.check(name)  # ALLOWED_MODELS on the worker's side too
                if isinstance(job.request, EmbeddingRequest):
                    check_embedding_model(job.request, info)
                elif info.kind != "chat":
                    raise chat_model_refused(info, "model")
        except InvalidRequestError as err:
            # Whoever wrote this job bypassed the producer's check: it must never reach a provider.
            self._metrics.dead_letters.labels(provider).inc()
            bound.error("job names a model this worker may not run; dead-lettered", error=err.message)
            await writer.fail("dead", err, raw)
            return
        if deliveries > 1:
            self._metrics.reclaimed.labels(provider).inc()
        if writer.index > 0 and job.stream:
            await writer.restart(deliveries, "the job was delivered again")
        try:
            response = await self._execute(job, writer, bound, paused_ms)
        except asyncio.CancelledError:
            if running.cancel_reason == CancelReason.CALLER:
                await asyncio.shield(writer.fail("cancelled", _cancelled()))
                self._metrics.requests.labels(provider, job.model, "cancelled").inc()
                return
            raise  # shutdown: left unacknowledged for another worker to reclaim
        except LeaseLostError:
            bound.warning("lease lost to a newer delivery; dropping this attempt")
            return
        except LLMRelayError as err:
            status = "expired" if isinstance(err, RequestTimeoutError) else "failed"
            self._metrics.requests.labels(provider, job.model, type(err).__name__).inc()
            bound.warning("request failed", error=type(err).__name__, message=err.message)
            await asyncio.shield(writer.fail(status, err))
            return
        await asyncio.shield(writer.done(response))

    async def _dead_letter_capped(self, writer: JobEvents, last_error: str, raw: bytes, bound: Any) -> None:
        """A job that failed as many deliveries as allowed ends in the dead-letter stream."""
        cap = self._settings.max_deliveries
        self._metrics.dead_letters.labels(writer.provider).inc()
        bound.error("delivery cap reached; dead-lettered", deliveries=cap)
        error = DeadLetteredError(
            f"the job failed {cap} deliveries",
            data={"last_error": (last_error or "no error recorded")[:2000]},
        )
        await writer.fail("dead", error, raw)

    def _events(
        self,
        provider: str,
        request_id: str,
        stream_key: str,
        entry_id: str,
        last_index: int,
        deliveries: str = "",
        *,
        context: dict[str, Any],
    ) -> JobEvents:
        """The event writer for one delivery; ``deliveries`` empty when no lease is held (a job ended
        without running)."""
        return JobEvents(
            self._redis,
            provider,
            request_id,
            context=context,
            stream_key=stream_key,
            entry_id=entry_id,
            deliveries=deliveries,
            last_index=last_index,
            ttl_ms=int(self._settings.result_ttl * 1000),
            namespace=self._namespace,
        )

    async def _execute(
        self, job: Job, writer: JobEvents, bound: Any, paused_ms: int | None
    ) -> LLMResponse | EmbeddingResponse:
        settings = self._settings
        chain = [job.model, *job.fallbacks]
        attempts = 0
        estimate = _estimate_tokens(job)
        last_error: LLMRelayError | None = None
        for position, name in enumerate(chain):
            model = self._governance.check(name)  # ALLOWED_MODELS again, on the worker's side
            if position > 0:
                bound.warning("failing over", from_model=chain[position - 1], to_model=model.name)
            adapter = self._adapters(model.provider)
            for retry in range(settings.max_retries + 1):
                remaining = job.deadline - time.time()
                if remaining <= 0:
                    raise RequestTimeoutError("the request's deadline passed", data={"attempts": attempts})
                # BEGIN already read the provider's pause: the first attempt skips a round trip when no
                # limit is configured for its model.
                known_pause = paused_ms if attempts == 0 and model.provider == job.provider else None
                await self._limiter.acquire(model, estimate, job.deadline, known_pause)
                await writer.ensure_owned()
                attempts += 1
                if writer.tokens_sent:
                    await writer.restart(attempts, f"retrying after {type(last_error).__name__}")
                try:
                    async with asyncio.timeout(job.deadline - time.time()):
                        response: LLMResponse | EmbeddingResponse
                        if isinstance(job.request, EmbeddingRequest):
                            response = await self._embed(job, job.request, model, adapter, attempts)
                        else:
                            response = await self._attempt(job, model, adapter, writer, attempts)
                except TimeoutError:
                    raise RequestTimeoutError(
                        "the request's deadline passed during the provider call", data={"attempts": attempts}
                    ) from None
                except LLMRelayError as err:
                    last_error = err
                    self._metrics.errors.labels(model.provider, model.name, type(err).__name__).inc()
                    await self._record_error(job, err)
                    writer.discard()
                    if isinstance(err, RateLimitedError) and err.retry_after:
                        await self._limiter.pause(model.provider, err.retry_after, "429")
                    if not err.retryable or retry == settings.max_retries:
                        break
                    delay = _backoff(retry, settings.backoff_base, settings.backoff_max, _retry_after(err))
                    if time.time() + delay >= job.deadline:
                        break
                    self._metrics.retries.labels(model.provider, model.name, type(err).__name__).inc()
                    bound.info("retrying", error=type(err).__name__, delay=round(delay, 3), attempt=attempts)
                    await asyncio.sleep(delay)
                    continue
                await self._limiter.reconcile(model, estimate, response.usage.total_tokens)
                return response
            if last_error is not None and not last_error.retryable:
                raise last_error
        assert last_error is not None
        raise last_error

    async def _embed(
        self, job: Job, request: EmbeddingRequest, model: ModelInfo, adapter: ProviderAdapter, attempts: int
    ) -> EmbeddingResponse:
        """One embedding attempt: no stream, one result, counted in the metrics like a completion."""
        call = EmbeddingCall(
            model=model,
            request=request,
            timeout=max(0.001, job.deadline - time.time()),
            headers=request.context.headers(),
        )
        done = await adapter.embed(call)
        if len(done.vectors) != len(request.input):
            raise _broken_reply(model, f"{len(done.vectors)} vectors for {len(request.input)} inputs")
        rate = done.ratelimit
        if rate is not None and rate.remaining_requests == 0 and rate.reset_requests_s:
            await self._limiter.pause(model.provider, rate.reset_requests_s, "remaining requests 0")
        latency = time.time() - job.enqueued_at
        labels = (model.provider, model.name)
        cost = model.cost(done.prompt_tokens, 0)
        self._metrics.latency.labels(*labels).observe(latency)
        self._metrics.tokens.labels(*labels, "prompt").inc(done.prompt_tokens)
        self._metrics.cost.labels(*labels).inc(cost)
        self._metrics.requests.labels(*labels, "ok").inc()
        return EmbeddingResponse(
            request_id=job.request_id,
            model=model.name,
            provider=model.provider,
            vectors=done.vectors,
            usage=EmbeddingUsage.of(done.prompt_tokens),
            cost_usd=cost,
            latency_ms=round(latency * 1000, 3),
            attempts=attempts,
            trace_id=request.trace_id,
            source_agent=request.source_agent,
            session_id=request.session_id,
        )

    async def _attempt(
        self, job: Job, model: ModelInfo, adapter: ProviderAdapter, writer: JobEvents, attempts: int
    ) -> LLMResponse:
        """One call to one model: its stream folded by the accumulator ``complete`` uses too, so that
        both paths end alike, and its text relayed as it arrives."""
        request = job.request
        assert isinstance(request, LLMRequest)
        call = ProviderCall(
            model=model,
            request=request,
            timeout=max(0.001, job.deadline - time.time()),
            headers=request.context.headers(),
            artifacts=await self._artifacts.load(request, model, log),
        )
        accumulator = StreamAccumulator(model.provider)
        relay = job.stream
        relayed = 0
        async for item in adapter.stream(call):
            delta = accumulator.add(item)
            if relay and delta is not None:
                relayed += 1
                if relayed == 1:
                    await writer.push_first(delta)
                else:
                    writer.push(delta)
        done = accumulator.completion()
        end = done.end
        if (
            end.ratelimit is not None
            and end.ratelimit.remaining_requests == 0
            and end.ratelimit.reset_requests_s
        ):
            await self._limiter.pause(model.provider, end.ratelimit.reset_requests_s, "remaining requests 0")
        # Kept before the caller can see the calls, so that its next turn finds them.
        await self._artifacts.save(request, model, done.artifacts)
        called = bool(done.tool_calls)
        parsed = parsed_output(request, done.text, called_tools=called, provider=model.provider)
        return self._response(job, model, done, attempts, parsed)

    def _response(
        self, job: Job, model: ModelInfo, done: Completion, attempts: int, parsed: Any = None
    ) -> LLMResponse:
        """The attempt's stream as the job's response, counted in the metrics."""
        end = done.end
        usage = end.usage
        latency = time.time() - job.enqueued_at
        labels = (model.provider, model.name)
        self._metrics.latency.labels(*labels).observe(latency)
        first = done.first_token_at
        if first is not None:
            self._metrics.ttft.labels(*labels).observe(first - job.enqueued_at)
        self._metrics.tokens.labels(*labels, "prompt").inc(usage.prompt_tokens)
        self._metrics.tokens.labels(*labels, "completion").inc(usage.completion_tokens)
        cost = model.cost(
            usage.prompt_tokens, usage.completion_tokens, cached_prompt_tokens=usage.cached_prompt_tokens
        )
        self._metrics.cost.labels(*labels).inc(cost)
        self._metrics.requests.labels(*labels, "ok").inc()
        return LLMResponse(
            request_id=job.request_id,
            model=model.name,
            provider=model.provider,
            content=done.text,
            tool_calls=done.tool_calls,
            parsed=parsed,
            finish_reason=end.finish_reason,
            latency_ms=round(latency * 1000, 3),
            ttft_ms=round((first - job.enqueued_at) * 1000, 3) if first is not None else None,
            usage=usage,
            cost_usd=cost,
            attempts=attempts,
            trace_id=job.request.trace_id,
            source_agent=job.request.source_agent,
            session_id=job.request.session_id,
        )

    async def _record_error(self, job: Job, err: LLMRelayError) -> None:
        message = redact(f"{type(err).__name__}: {err.message}")[:2000]
        await self._redis.hset(keys.state(job.provider, job.request_id), "last_error", message)  # type: ignore[misc]

    async def _dead_letter_undecodable(
        self,
        provider: str,
        request_id: str,
        stream_key: str,
        entry_id: str,
        err: InvalidRequestError,
        raw: bytes,
    ) -> None:
        """A payload that does not decode cannot be run: it goes to the dead-letter stream at once."""
        if not keys.valid_request_id(request_id):
            request_id = "invalid-" + entry_id
        log.error("undecodable job dead-lettered", provider=provider, entry_id=entry_id, error=err.message)
        self._metrics.dead_letters.labels(provider).inc()
        writer = self._events(provider, request_id, stream_key, entry_id, 0, context={})
        await writer.fail("dead", err, raw[:65536])


def _estimate_tokens(job: Job) -> int:
    """What the token limiter charges up front: an embedding's input, or a completion's prompt and output."""
    request = job.request
    if isinstance(request, EmbeddingRequest):
        return sum(estimate_input_tokens(text) for text in request.input)
    return estimate_prompt_tokens(request) + (request.max_tokens or DEFAULT_COMPLETION_ESTIMATE)


def _broken_reply(model: ModelInfo, what: str) -> ProviderError:
    return ProviderError(f"{model.provider}: {what}", data={"provider": model.provider, "status": None})


def _retry_after(err: LLMRelayError) -> float | None:
    value = err.data.get("retry_after")
    return float(value) if isinstance(value, int | float) else None


def _backoff(retry: int, base: float, cap: float, retry_after: float | None) -> float:
    """Exponential backoff with full jitter; a provider's retry-after is a floor."""
    delay = random.uniform(0, min(cap, base * (2**retry)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _cancelled() -> RequestCancelledError:
    return RequestCancelledError("cancelled by the caller")


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
