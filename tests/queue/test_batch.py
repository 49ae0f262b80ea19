"""Bulk workloads: a batch is checked whole, fed at the queue's pace, followed, read back and cancelled."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from arq.connections import ArqRedis

from llmrelay.producer import LLMProducer
from llmrelay.shared import (
    Governance,
    InvalidRequestError,
    JobNotFoundError,
    LLMRequest,
    ModelNotAllowedError,
    Settings,
    keys,
)
from llmrelay.shared.batch import FED_FIELD, STATE_FIELD, BatchStatus, meta_key
from llmrelay.simulator.reply import reply_for
from llmrelay.worker.batch import feed_batch
from llmrelay.worker.service import Worker
from tests.support import poll, rdb

MODELS = ["gpt-6.1-terra", "claude-haiku-5-5", "gemini-3.8-flash"]


def item(i: int, model: str | None = None, text: str = "", **kw: Any) -> LLMRequest:
    content = text or f"bulk item {i}"
    return LLMRequest(model=model or MODELS[i % 3], messages=[{"role": "user", "content": content}], **kw)


async def finished(producer: LLMProducer, batch_id: str) -> BatchStatus | None:
    status = await producer.batch_status(batch_id)
    return status if status.finished else None


async def test_a_batch_runs_every_item_once_and_reads_back_in_order(
    producer: LLMProducer, worker: Worker
) -> None:
    batch_id = await producer.submit_batch([item(i) for i in range(30)], batch_id="bulk-1")
    status = await poll(lambda: finished(producer, batch_id), timeout=30)
    assert (status.state, status.total, status.fed, status.completed) == ("done", 30, 30, 30)
    assert status.counts == {"done": 30}
    results = [r async for r in producer.batch_results(batch_id)]
    assert [r.index for r in results] == list(range(30))
    assert [r.request_id for r in results] == [f"bulk-1-{i:06d}" for i in range(30)]
    for i, r in enumerate(results):
        assert r.status == "done"
        assert r.response is not None
        assert r.response.content == "".join(reply_for(f"bulk item {i}", 20))
        assert r.response.model == MODELS[i % 3]
    page = [r.index async for r in producer.batch_results(batch_id, offset=10, limit=5)]
    assert page == [10, 11, 12, 13, 14]


async def test_status_counts_items_fed_before_the_feeder_checkpoints_them(
    producer: LLMProducer, settings: Settings
) -> None:
    await producer.submit_batch([item(i, "gpt-6.1-terra") for i in range(3)], batch_id="lagging")
    await feed_batch(_ctx(settings), "lagging")
    # The moment between the items going in (and maybe finishing) and the checkpoint being written.
    rdb(settings.redis_url).hset(meta_key("lagging"), "fed", 0)
    status = await producer.batch_status("lagging")
    assert (status.fed, status.counts) == (3, {"queued": 3})


async def test_items_run_on_the_batch_lane(producer: LLMProducer, settings: Settings) -> None:
    await producer.submit_batch([item(i, "gpt-6.1-terra") for i in range(3)], batch_id="lane-1")
    # No worker runs the jobs here; feed one round by hand and look where the items went.
    await feed_batch(_ctx(settings), "lane-1")
    client = rdb(settings.redis_url)
    assert client.xlen(keys.work_stream("openai", "batch")) == 3
    assert client.xlen(keys.work_stream("openai", "interactive")) == 0


async def test_the_feeder_never_overfills_the_queue(settings: Settings) -> None:
    small = settings.model_copy(update={"max_queue_length": 4})
    async with LLMProducer(small) as producer:
        batch_id = await producer.submit_batch(
            [item(i, "gpt-6.1-terra", f"paced {i} [[sim:ttft_ms=30]]") for i in range(25)]
        )
        worker = Worker(small, concurrency=8)
        await worker.start()
        client = rdb(settings.redis_url)
        depth: list[int] = []
        try:

            async def done() -> bool:
                depth.append(client.xlen(keys.work_stream("openai", "batch")))
                return bool(await finished(producer, batch_id))

            await poll(done, timeout=60, interval=0.01)
        finally:
            await worker.stop(grace=2)
        status = await producer.batch_status(batch_id)
    assert status.counts == {"done": 25}
    assert max(depth) <= 4


async def test_feeding_again_runs_nothing_twice(producer: LLMProducer, settings: Settings) -> None:
    await producer.submit_batch([item(i, "claude-haiku-5-5") for i in range(5)], batch_id="twice")
    ctx = _ctx(settings)
    await feed_batch(ctx, "twice")
    client = rdb(settings.redis_url)
    # A round that died before its checkpoint: the next one starts from the beginning again.
    client.hset(meta_key("twice"), mapping={FED_FIELD: 0, STATE_FIELD: "feeding"})
    await feed_batch(ctx, "twice")
    assert client.xlen(keys.work_stream("anthropic", "batch")) == 5


async def test_the_feeder_of_a_batch_that_is_gone_feeds_nothing(settings: Settings) -> None:
    # Its hash expired, or it never was: the round ends without touching a stream.
    assert await feed_batch(_ctx(settings), "gone") == {"batch_id": "gone", "state": "missing"}
    assert rdb(settings.redis_url).xlen(keys.work_stream("openai", "batch")) == 0


async def test_an_item_whose_model_was_disallowed_since_ends_as_failed(
    producer: LLMProducer, settings: Settings
) -> None:
    await producer.submit_batch([item(0, "gpt-6.1-terra"), item(1, "gemini-3.8-flash")], batch_id="policy")
    narrow = settings.model_copy(update={"allowed_models": ["gemini-3.8-flash"]})
    await feed_batch(_ctx(narrow), "policy")
    results = [r async for r in producer.batch_results("policy")]
    assert results[0].status == "failed"
    assert results[0].error is not None
    assert results[0].error["type"] == "ModelNotAllowedError"
    assert results[1].status == "queued"


async def test_a_batch_is_refused_whole_when_one_item_is_refused(
    producer: LLMProducer, settings: Settings
) -> None:
    requests = [item(0), item(1), item(2, "gpt-6.1-terra")]
    requests.insert(2, item(9, "claude-sonnet-5-5"))
    narrow = settings.model_copy(update={"allowed_models": MODELS})
    async with LLMProducer(narrow) as p:
        with pytest.raises(ModelNotAllowedError) as refused:
            await p.submit_batch(requests, batch_id="refused")
    assert refused.value.data["index"] == 2
    assert not rdb(settings.redis_url).exists(meta_key("refused"))


@pytest.mark.parametrize(
    "requests",
    [
        [],
        [item(0, request_id="same"), item(1, request_id="same")],
    ],
    ids=["empty", "duplicate-ids"],
)
async def test_malformed_batches_are_refused(producer: LLMProducer, requests: list[LLMRequest]) -> None:
    with pytest.raises(InvalidRequestError):
        await producer.submit_batch(requests)


async def test_a_batch_id_is_used_once(producer: LLMProducer) -> None:
    await producer.submit_batch([item(0)], batch_id="once")
    with pytest.raises(InvalidRequestError):
        await producer.submit_batch([item(1)], batch_id="once")
    with pytest.raises(InvalidRequestError):
        await producer.submit_batch([item(1)], batch_id="not a valid id")


async def test_cancel_stops_feeding_and_cancels_what_runs(settings: Settings, producer: LLMProducer) -> None:
    small = settings.model_copy(update={"max_queue_length": 3})
    slow = [item(i, "gpt-6.1-terra", f"slow {i} [[sim:tokens=200 tps=20]]") for i in range(12)]
    async with LLMProducer(small) as p:
        batch_id = await p.submit_batch(slow, batch_id="stop-1")
        worker = Worker(small, concurrency=4)
        await worker.start()
        try:
            await poll(lambda: _some_running(p, batch_id), timeout=20)
            cancelled = await p.batch_cancel(batch_id)
            status = await poll(lambda: finished(p, batch_id), timeout=20)
        finally:
            await worker.stop(grace=2)
    assert cancelled == 12
    assert status.state == "cancelled"
    assert status.counts == {"cancelled": 12}
    async with LLMProducer(small) as p:
        assert await p.batch_cancel(batch_id) == 0  # a second cancel cancels nothing more


async def test_cancelling_a_finished_batch_changes_nothing(producer: LLMProducer, worker: Worker) -> None:
    batch_id = await producer.submit_batch([item(i) for i in range(3)])
    await poll(lambda: finished(producer, batch_id), timeout=30)
    assert await producer.batch_cancel(batch_id) == 0
    status = await producer.batch_status(batch_id)
    assert (status.state, status.counts) == ("done", {"done": 3})


async def test_items_the_feeder_moves_after_a_cancel_are_cancelled_too(
    producer: LLMProducer, settings: Settings
) -> None:
    await producer.submit_batch([item(i, "gpt-6.1-terra") for i in range(4)], batch_id="late")
    client = rdb(settings.redis_url)
    # The cancel lands while a feeding round is moving a chunk: the round sees it afterwards.
    real_hget = ArqRedis.hget

    async def cancel_midway(self: ArqRedis, key: str, field: str) -> Any:
        if field == STATE_FIELD:
            client.hset(meta_key("late"), STATE_FIELD, "cancelled")
        return await real_hget(self, key, field)

    ctx = _ctx(settings)
    ArqRedis.hget = cancel_midway  # type: ignore[method-assign]
    try:
        await feed_batch(ctx, "late")
    finally:
        ArqRedis.hget = real_hget  # type: ignore[method-assign]
    statuses = {r.status async for r in producer.batch_results("late")}
    assert statuses == {"cancelled"}


async def _some_running(producer: LLMProducer, batch_id: str) -> bool:
    return (await producer.batch_status(batch_id)).counts.get("running", 0) > 0


async def test_unknown_batches_are_not_found(producer: LLMProducer) -> None:
    with pytest.raises(JobNotFoundError):
        await producer.batch_status("nope")
    with pytest.raises(JobNotFoundError):
        await producer.batch_cancel("nope")
    with pytest.raises(JobNotFoundError):
        _ = [r async for r in producer.batch_results("nope")]


def _ctx(settings: Settings) -> dict[str, Any]:
    return {
        "redis": ArqRedis.from_url(settings.redis_url),
        "settings": settings,
        "governance": Governance.from_settings(settings),
    }


def test_status_finished_counts_every_outcome() -> None:
    status = BatchStatus(batch_id="b", state="running", total=3, fed=3, counts={"done": 2}, completed=2)
    assert not status.finished
    assert status.model_copy(update={"completed": 3}).finished


async def test_concurrent_batches_do_not_mix(producer: LLMProducer, worker: Worker) -> None:
    a, b = await asyncio.gather(
        producer.submit_batch([item(i, text=f"a{i}") for i in range(6)], batch_id="mix-a"),
        producer.submit_batch([item(i, text=f"b{i}") for i in range(6)], batch_id="mix-b"),
    )
    for batch_id, prefix in ((a, "a"), (b, "b")):
        await poll(lambda batch_id=batch_id: finished(producer, batch_id), timeout=30)
        contents = [r.response.content async for r in producer.batch_results(batch_id) if r.response]
        assert contents == ["".join(reply_for(f"{prefix}{i}", 20)) for i in range(6)]
