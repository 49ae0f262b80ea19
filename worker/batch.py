"""The batch feeder: an arq job that moves a batch's stored requests into the batch streams.

One round feeds items in order until the batch is fed, a stream is full (``LLMRELAY_MAX_QUEUE_LENGTH``)
or ``ROUND_SECONDS`` have passed, checkpoints ``fed`` in the batch's hash after each chunk, then queues
the next round (deferred when the queue was full). Rounds have deterministic arq job ids, so a round
retried after its worker died queues the same successor, and never two. An item is enqueued with a
fixed request id, so feeding it twice (a round that died between enqueueing and checkpointing) runs it
once. An item that no longer routes (its model disallowed since submission) ends as failed.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from arq.connections import ArqRedis

from llmrelay.shared import keys
from llmrelay.shared.batch import (
    ARQ_QUEUE,
    FED_FIELD,
    FEED_FUNCTION,
    STATE_FIELD,
    BatchMeta,
    decode_item,
    decode_request,
    items_key,
    meta_key,
    requests_key,
)
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.governance import Governance
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.payloads import PayloadError
from llmrelay.shared.queue import cancel_request, enqueue, make_job
from llmrelay.shared.settings import Settings
from llmrelay.worker.relay import JobEvents

log = structlog.get_logger("llmrelay.batch")

ROUND_SECONDS = 20.0
CHUNK = 200
FULL_RETRY_SECONDS = 0.5


async def feed_batch(ctx: dict[str, Any], batch_id: str, round_: int = 0) -> dict[str, Any]:
    """One feeding round of ``batch_id``; returns where it got to."""
    redis: ArqRedis = ctx["redis"]
    settings: Settings = ctx["settings"]
    governance: Governance = ctx["governance"]
    try:
        batch = BatchMeta.decode(await redis.hgetall(meta_key(batch_id)))  # type: ignore[misc]
    except PayloadError:
        return {"batch_id": batch_id, "state": "missing"}
    if batch.state != "feeding":
        return {"batch_id": batch_id, "state": batch.state}
    total, fed = batch.total, batch.fed
    full = False
    started = time.monotonic()
    while fed < total and not full and time.monotonic() - started < ROUND_SECONDS:
        raw_requests = await redis.lrange(requests_key(batch_id), fed, fed + CHUNK - 1)  # type: ignore[misc]
        raw_items = await redis.lrange(items_key(batch_id), fed, fed + CHUNK - 1)  # type: ignore[misc]
        moved: list[tuple[str, str]] = []
        for raw_request, raw_item in zip(raw_requests, raw_items, strict=True):
            provider, request_id = decode_item(raw_item)
            if not await _feed_one(redis, settings, governance, provider, decode_request(raw_request)):
                full = True
                break
            moved.append((provider, request_id))
        fed += len(moved)
        await redis.hset(meta_key(batch_id), FED_FIELD, str(fed))  # type: ignore[misc]
        if await redis.hget(meta_key(batch_id), STATE_FIELD) != b"feeding":  # type: ignore[misc]
            # Cancelled while this chunk went in: what it moved must not run either.
            for provider, request_id in moved:
                await cancel_request(
                    redis,
                    provider,
                    request_id,
                    settings.result_ttl,
                    namespace=keys.namespace(settings.redis_url),
                )
            return {"batch_id": batch_id, "state": "cancelled", "fed": fed}
    if fed >= total:
        await redis.hset(meta_key(batch_id), STATE_FIELD, "running")  # type: ignore[misc]
        log.info("batch fed", batch_id=batch_id, total=total)
        return {"batch_id": batch_id, "state": "running", "fed": fed}
    await redis.enqueue_job(
        FEED_FUNCTION,
        batch_id,
        round_ + 1,
        _job_id=f"{FEED_FUNCTION}:{batch_id}:{round_ + 1}",
        _queue_name=ARQ_QUEUE,
        _defer_by=FULL_RETRY_SECONDS if full else None,
    )
    return {"batch_id": batch_id, "state": "feeding", "fed": fed, "queue_full": full}


async def _feed_one(
    redis: ArqRedis, settings: Settings, governance: Governance, provider: str, request: LLMRequest
) -> bool:
    """Enqueue one item; False when its stream is full (nothing done, try again later)."""
    assert request.request_id is not None
    try:
        route = governance.route(request)
    except LLMRelayError as err:
        await _fail(redis, settings, provider, request, err)
        return True
    outcome, _ = await enqueue(redis, make_job(request, route, settings, stream=False), settings)
    return outcome != "full"


async def _fail(
    redis: ArqRedis, settings: Settings, provider: str, request: LLMRequest, err: LLMRelayError
) -> None:
    """Give an item that cannot run its terminal state, as a worker would."""
    assert request.request_id is not None
    writer = JobEvents(
        redis,
        provider,
        request.request_id,
        context=request.a2a(),
        stream_key=keys.work_stream(provider, "batch"),
        entry_id="0-1",  # it never had an entry: acknowledging this one is a no-op
        deliveries="",
        last_index=0,
        ttl_ms=int(settings.result_ttl * 1000),
        namespace=keys.namespace(settings.redis_url),
    )
    await writer.fail("failed", err)
