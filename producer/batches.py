"""The producer's side of bulk workloads: store a batch, hand it to the feeder, read its progress."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis

from llmrelay.shared import keys
from llmrelay.shared.batch import (
    ARQ_QUEUE,
    FEED_FUNCTION,
    MAX_BATCH_ITEMS,
    TERMINAL_ITEM_STATES,
    BatchItem,
    BatchMeta,
    BatchStatus,
    decode_item,
    encode_item,
    encode_request,
    items_key,
    meta_key,
    requests_key,
)
from llmrelay.shared.errors import InvalidRequestError, JobNotFoundError, LLMRelayError
from llmrelay.shared.governance import Governance
from llmrelay.shared.jobs import decode_error, decode_result
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.payloads import PayloadError
from llmrelay.shared.queue import cancel_request
from llmrelay.shared.scripts import CANCEL_BATCH, LuaScript

#: How long a batch's bookkeeping stays readable.
BATCH_TTL_SECONDS = 7 * 86400
#: Items read or written per Redis round trip.
CHUNK = 1000

_CANCEL_BATCH = LuaScript(CANCEL_BATCH)


def prepare(
    requests: Sequence[LLMRequest], governance: Governance, batch_id: str
) -> list[tuple[str, LLMRequest]]:
    """Check every item before anything is stored: (provider, request) pairs in the batch lane.

    A refused item raises its error with ``data["index"]``; nothing of the batch is written then.
    """
    if not requests:
        raise InvalidRequestError("a batch needs at least one request", data={"field": "requests"})
    if len(requests) > MAX_BATCH_ITEMS:
        raise InvalidRequestError(
            f"a batch holds at most {MAX_BATCH_ITEMS} requests, not {len(requests)}",
            data={"field": "requests", "limit": MAX_BATCH_ITEMS},
        )
    seen: set[str] = set()
    prepared: list[tuple[str, LLMRequest]] = []
    for index, request in enumerate(requests):
        try:
            route = governance.route(request)
        except LLMRelayError as err:
            err.data["index"] = index
            raise
        request_id = request.request_id or f"{batch_id}-{index:06d}"
        if request_id in seen:
            raise InvalidRequestError(
                f"request id {request_id!r} appears twice in the batch", data={"index": index}
            )
        seen.add(request_id)
        item = request.model_copy(update={"request_id": request_id, "priority": "batch"})
        prepared.append((route.model.provider, item))
    return prepared


async def store(redis: Redis, batch_id: str, items: list[tuple[str, LLMRequest]]) -> None:
    """Write the batch and ask the workers' arq queue to feed it."""
    meta = meta_key(batch_id)
    if await redis.exists(meta):
        raise InvalidRequestError(f"batch {batch_id!r} exists already", data={"batch_id": batch_id})
    async with redis.pipeline(transaction=False) as pipe:
        for start in range(0, len(items), CHUNK):
            chunk = items[start : start + CHUNK]
            pipe.rpush(items_key(batch_id), *(encode_item(p, _request_id(r)) for p, r in chunk))
            pipe.rpush(requests_key(batch_id), *(encode_request(r) for _, r in chunk))
        pipe.hset(meta, mapping=BatchMeta(state="feeding", total=len(items), created=time.time()).encode())
        for key in (meta, items_key(batch_id), requests_key(batch_id)):
            pipe.expire(key, BATCH_TTL_SECONDS)
        await pipe.execute()
    arq = ArqRedis(connection_pool=redis.connection_pool)
    await arq.enqueue_job(
        FEED_FUNCTION, batch_id, 0, _job_id=f"{FEED_FUNCTION}:{batch_id}:0", _queue_name=ARQ_QUEUE
    )


def _request_id(request: LLMRequest) -> str:
    assert request.request_id is not None, "prepare() gives every item its request id"
    return request.request_id


async def items(redis: Redis, batch_id: str, start: int = 0, stop: int = -1) -> list[tuple[str, str]]:
    """The batch's items as (provider, request id), in submission order."""
    return [decode_item(entry) for entry in await redis.lrange(items_key(batch_id), start, stop)]  # type: ignore[misc]


async def meta(redis: Redis, batch_id: str) -> BatchMeta:
    try:
        return BatchMeta.decode(await redis.hgetall(meta_key(batch_id)))  # type: ignore[misc]
    except PayloadError:
        raise JobNotFoundError(f"no batch {batch_id!r}", data={"batch_id": batch_id}) from None


async def _statuses(redis: Redis, entries: Sequence[tuple[str, str]]) -> AsyncIterator[tuple[int, Any]]:
    """``(index, status)`` of each item, from its request's state; None once that has expired."""
    for start in range(0, len(entries), CHUNK):
        async with redis.pipeline(transaction=False) as pipe:
            for provider, request_id in entries[start : start + CHUNK]:
                pipe.hget(keys.state(provider, request_id), "status")
            statuses = await pipe.execute()
        for offset, raw in enumerate(statuses):
            yield start + offset, raw


def _item_status(raw: Any, index: int, batch: BatchMeta) -> str:
    if raw is not None:
        return raw.decode() if isinstance(raw, bytes) else str(raw)
    if index < batch.fed:
        return "expired"  # fed, and its result has outlived LLMRELAY_RESULT_TTL
    return "cancelled" if batch.state == "cancelled" else "pending"


async def status(redis: Redis, batch_id: str) -> BatchStatus:
    batch = await meta(redis, batch_id)
    fed = batch.fed
    counts: dict[str, int] = {}
    async for index, raw in _statuses(redis, await items(redis, batch_id)):
        name = _item_status(raw, index, batch)
        counts[name] = counts.get(name, 0) + 1
        if raw is not None:
            # Items are fed in order and have a state once fed: the feeder's checkpoint, read before
            # the states, may lag behind them (items can even finish before it is written).
            fed = max(fed, index + 1)
    completed = sum(n for name, n in counts.items() if name in TERMINAL_ITEM_STATES)
    state = batch.state
    if state != "cancelled" and completed >= batch.total:
        state = "done"
    return BatchStatus(
        batch_id=batch_id,
        state=state,
        total=batch.total,
        fed=fed,
        counts=counts,
        completed=completed,
        created_at=batch.created,
    )


async def results(redis: Redis, batch_id: str, offset: int, limit: int | None) -> AsyncIterator[BatchItem]:
    batch = await meta(redis, batch_id)
    end = batch.total if limit is None else min(batch.total, offset + limit)
    for start in range(offset, end, CHUNK):
        chunk = await items(redis, batch_id, start, min(end, start + CHUNK) - 1)
        async with redis.pipeline(transaction=False) as pipe:
            for provider, request_id in chunk:
                pipe.hmget(keys.state(provider, request_id), ["status", "result", "error"])
            rows = await pipe.execute()
        for i, ((_provider, request_id), (raw_status, result, error)) in enumerate(
            zip(chunk, rows, strict=True)
        ):
            index = start + i
            yield BatchItem(
                index=index,
                request_id=request_id,
                status=_item_status(raw_status, index, batch),
                response=decode_result(result) if result else None,
                error=decode_error(error) if error else None,
            )


async def cancel(redis: Redis, batch_id: str, result_ttl: int, namespace: str) -> int:
    """Cancel a batch: only the call that moves it from feeding or running to cancelled counts its
    never-fed items; queued and running items are cancelled one by one (the feeder cancels any it
    moved into a stream while this ran)."""
    if (await status(redis, batch_id)).finished:
        return 0
    if not await _CANCEL_BATCH(redis, [meta_key(batch_id)], []):
        return 0
    fed = (await meta(redis, batch_id)).fed
    entries = await items(redis, batch_id)
    cancelled = 0
    async for index, raw in _statuses(redis, entries):
        if raw is None:
            cancelled += index >= fed  # never fed: it never will be (else: expired)
        elif raw in (b"queued", b"running"):
            provider, request_id = entries[index]
            cancelled += await cancel_request(redis, provider, request_id, result_ttl, namespace=namespace)
    return cancelled


def new_batch_id() -> str:
    return "b-" + uuid.uuid4().hex


__all__ = ["cancel", "items", "meta", "new_batch_id", "prepare", "results", "status", "store"]
