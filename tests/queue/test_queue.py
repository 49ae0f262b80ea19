"""The queue end to end in one process: producer -> Redis streams -> worker -> SDK -> simulator -> back."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import (
    DeadLetteredError,
    JobNotFoundError,
    LLMRequest,
    ModelNotAllowedError,
    ProviderUnavailableError,
    QueueFullError,
    RequestCancelledError,
    RequestTimeoutError,
    Settings,
    keys,
)
from llmrelay.shared.events import StreamEvent, TokenEvent
from llmrelay.shared.jobs import Job
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import poll, rdb

MODELS = ["gpt-6.1-terra", "gpt-6.1-sol", "claude-haiku-5-5", "gemini-3.8-flash"]


def req(text: str = "hello there", model: str = "gpt-6.1-terra", **kw: object) -> LLMRequest:
    return LLMRequest(model=model, messages=[{"role": "user", "content": text}], **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", MODELS)
async def test_completes_through_the_queue_with_usage_cost_and_context(
    model: str, producer: LLMProducer, worker: Worker, sim: SimulatorServer
) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = await producer.complete(
        req("tell me a story", model, trace_id=trace, source_agent="planner", session_id="s-1")
    )
    assert response.content == "".join(reply_for("tell me a story", 20))
    assert response.usage.completion_tokens == 20
    assert response.usage.total_tokens == response.usage.prompt_tokens + 20
    info = producer.governance.catalog.resolve(model)
    assert response.cost_usd == pytest.approx(info.cost(response.usage.prompt_tokens, 20))
    assert response.provider == info.provider and response.model == info.name
    assert (response.trace_id, response.source_agent, response.session_id) == (trace, "planner", "s-1")
    assert response.attempts == 1 and response.latency_ms > 0 and response.ttft_ms is not None
    seen = sim.requests()[-1]["headers"]
    assert (
        seen["x-trace-id"] == trace and seen["x-source-agent"] == "planner" and seen["x-session-id"] == "s-1"
    )
    assert seen["traceparent"].startswith(f"00-{trace}-")


@pytest.mark.parametrize("model", MODELS)
async def test_streams_tokens_in_order(model: str, producer: LLMProducer, worker: Worker) -> None:
    text = "stream please [[sim:tokens=30 tps=2000]]"
    parts = [t async for t in producer.stream(req(text, model))]
    assert "".join(parts) == "".join(reply_for(text, 30))
    assert len(parts) >= 2  # tokens arrive as they are generated, not all at the end


async def test_events_carry_indexes_and_context(producer: LLMProducer, worker: Worker) -> None:
    events = [e async for e in producer.events(req("idx [[sim:tps=500]]", trace_id="t-1", source_agent="a"))]
    assert [e.index for e in events] == list(range(1, len(events) + 1))
    assert events[-1].type == "done"
    assert all(e.trace_id == "t-1" and e.source_agent == "a" for e in events)


async def test_result_survives_the_caller(producer: LLMProducer, worker: Worker, settings: Settings) -> None:
    request_id = await producer.submit(req("fire and forget", request_id="ff-1"))
    assert request_id == "ff-1"
    async with LLMProducer(settings) as other:  # a different process, after a disconnect
        response = await other.result("ff-1", timeout=10)
    assert response.content == "".join(reply_for("fire and forget", 20))
    assert await producer.status("ff-1") == "done"


async def test_same_request_id_runs_once_and_both_callers_get_the_result(
    producer: LLMProducer, worker: Worker, sim: SimulatorServer, settings: Settings
) -> None:
    r = req("idempotent [[sim:ttft_ms=200]]", request_id="same-1")
    async with LLMProducer(settings) as other:
        first, second = await asyncio.gather(producer.complete(r), other.complete(r))
    third = await producer.complete(r)  # after the end: the stored result, no new run
    assert first == second == third
    assert sum(1 for rec in sim.requests() if "idempotent" in orjson.dumps(rec["body"]).decode()) == 1


async def test_second_caller_streams_from_the_start(
    producer: LLMProducer, worker: Worker, settings: Settings
) -> None:
    # Slow enough that the job is still running when the second caller comes (3 s: a generous bound
    # for the moment between the third token and the second caller's request).
    r = req("late joiner [[sim:tps=5 tokens=15]]", request_id="join-1")
    log = rdb(settings.redis_url)
    first = asyncio.create_task(_collect(producer.stream(r)))
    # The second caller joins once tokens are in the log: pub/sub does not replay them, only the log
    # catch-up of the late-join path can give it the start of the text.
    await poll(lambda: log.xlen(keys.events("openai", "join-1")) >= 3)
    async with LLMProducer(settings) as other:
        late_stream = other.stream(r)
        head = await anext(late_stream)
        still_running = await producer.status("join-1") == "running"
        late = head + await _collect(late_stream)
    assert still_running  # it joined a running job, not read a stored result
    assert late == await first == "".join(reply_for("late joiner", 15))


async def _collect(stream: object) -> str:
    return "".join([t async for t in stream])  # type: ignore[attr-defined]


async def test_resume_after_an_index_misses_nothing(producer: LLMProducer, worker: Worker) -> None:
    events = [e async for e in producer.events(req("resume me [[sim:tps=400]]", request_id="res-1"))]
    cut = len(events) // 2
    resumed = [e async for e in producer.resume("res-1", events[cut - 1].index)]
    assert resumed == events[cut:]


async def test_disallowed_model_is_refused_before_anything_is_queued(
    settings: Settings, worker: Worker, sim: SimulatorServer
) -> None:
    narrow = settings.model_copy(update={"allowed_models": ["gpt-6.1-terra"]})
    async with LLMProducer(narrow) as p:
        with pytest.raises(ModelNotAllowedError):
            await p.complete(req("no", "gpt-6.1-sol"))
        with pytest.raises(ModelNotAllowedError):
            await p.complete(req("no", "gpt-6.1-terra", fallback_models=["claude-sonnet-5-5"]))
    assert rdb(settings.redis_url).xlen(keys.work_stream("openai", "interactive")) == 0
    assert sim.requests() == []


async def test_worker_refuses_a_disallowed_model_that_was_queued_anyway(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    narrow = settings.model_copy(update={"allowed_models": ["gpt-6.1-terra"]})
    w = Worker(narrow, concurrency=4)
    await w.start()
    try:
        with pytest.raises(ModelNotAllowedError):
            await producer.complete(req("sneaky", "gpt-6.1-sol", request_id="sneaky-1"))
        with pytest.raises(ModelNotAllowedError):
            await producer.complete(req("sneaky too", "gpt-6.1-terra", fallback_models=["gpt-6.1-sol"]))
    finally:
        await w.stop(grace=1)
    assert sim.requests() == []
    dead = rdb(settings.redis_url).xrange(keys.dead_letter("openai"))
    assert dead[0][1][b"id"] == b"sneaky-1"
    assert b"ModelNotAllowedError" in dead[0][1][b"error"]
    assert len(dead) == 2


async def test_undecodable_payload_goes_to_the_dead_letter_stream(settings: Settings, worker: Worker) -> None:
    client = rdb(settings.redis_url)
    stream = keys.work_stream("openai", "interactive")
    client.xadd(stream, {"id": "garbage-1", "j": b"{not json"})
    dead = await poll(lambda: client.xrange(keys.dead_letter("openai")))
    assert dead[0][1][b"id"] == b"garbage-1"
    assert b"does not decode" in dead[0][1][b"error"]
    # The worker keeps serving.
    async with LLMProducer(settings) as p:
        assert (await p.complete(req("still alive"))).content
    assert client.xlen(stream) == 0


async def test_delivery_cap_dead_letters_and_tells_the_caller(
    settings: Settings, producer: LLMProducer
) -> None:
    capped = settings.model_copy(update={"max_deliveries": 2, "lease_seconds": 0.3})
    client = rdb(settings.redis_url)
    stream = keys.work_stream("openai", "interactive")
    client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    request_id = await producer.submit(req("poison", request_id="poison-1"))
    # Two deliveries that "crash": read by consumers that never finish.
    for name in ("crashed-a", "crashed-b"):
        client.xreadgroup(keys.GROUP, name, {stream: ">"}, count=1)
        client.hincrby(keys.state("openai", request_id), "deliveries", 1)
        client.hset(keys.state("openai", request_id), "last_error", "ProviderUnavailableError: boom")
        client.xclaim(stream, keys.GROUP, name, 0, [client.xrange(stream)[0][0]])
    w = Worker(capped, concurrency=4)
    await w.start()
    try:
        with pytest.raises(DeadLetteredError) as info:
            await producer.result(request_id, timeout=10)
    finally:
        await w.stop(grace=1)
    assert "boom" in info.value.data["last_error"]
    dead = client.xrange(keys.dead_letter("openai"))
    assert dead[0][1][b"id"] == b"poison-1" and b"poison" in dead[0][1][b"job"]
    assert client.xlen(stream) == 0


async def test_job_past_its_deadline_is_never_started(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    request_id = await producer.submit(req("too late", timeout=0.2))
    await asyncio.sleep(0.4)  # the behaviour under test: the deadline passes while the job is queued
    w = Worker(settings, concurrency=4)
    await w.start()
    try:
        with pytest.raises(RequestTimeoutError):
            await producer.result(request_id, timeout=10)
    finally:
        await w.stop(grace=1)
    assert sim.requests() == []


async def test_caller_gives_up_at_the_deadline_when_no_worker_runs(producer: LLMProducer) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await producer.complete(req("nobody home", timeout=0.3))
    assert time.monotonic() - started < 5


async def test_deadline_cuts_a_slow_generation(producer: LLMProducer, worker: Worker) -> None:
    with pytest.raises(RequestTimeoutError):
        await producer.complete(req("slow [[sim:ttft_ms=3000]]", timeout=0.5))


async def test_cancel_a_queued_job(producer: LLMProducer, settings: Settings, sim: SimulatorServer) -> None:
    client = rdb(settings.redis_url)
    stream = keys.work_stream("openai", "interactive")
    request_id = await producer.submit(req("cancel me while queued"))
    [(_, fields)] = client.xrange(stream)
    assert await producer.cancel(request_id)
    assert client.xlen(stream) == 0  # its entry is gone: it takes no room in the queue
    assert not await producer.cancel(request_id)  # it had ended: this call cancelled nothing
    with pytest.raises(RequestCancelledError):
        await producer.result(request_id, timeout=5)
    # The entry as a worker that read it just before the cancel still holds it, and a job queued
    # after it: once the worker has run that one, it has seen the cancelled one too.
    client.xadd(stream, fields)
    after = await producer.submit(req("queued after the cancelled one"))
    w = Worker(settings, concurrency=4)
    await w.start()
    try:
        assert (await producer.result(after, timeout=30)).content
    finally:
        await w.stop(grace=1)
    prompts = [r["body"]["messages"][-1]["content"] for r in sim.requests()]
    assert prompts == ["queued after the cancelled one"]  # the cancelled job never reached the provider
    assert await producer.status(request_id) == "cancelled"
    with pytest.raises(RequestCancelledError):
        await producer.result(request_id, timeout=5)
    assert client.xlen(stream) == 0


async def test_cancel_a_running_job_frees_its_slot(producer: LLMProducer, worker: Worker) -> None:
    stream = producer.events(req("long one [[sim:tokens=400 tps=50]]", request_id="run-cancel"))
    first = await stream.__anext__()
    assert first.type == "token"
    assert await producer.cancel("run-cancel")
    with pytest.raises(RequestCancelledError):
        async for _ in stream:
            pass
    await poll(lambda: not worker._running["openai"])
    assert await producer.status("run-cancel") == "cancelled"


async def test_cancel_of_an_unknown_request_is_not_found(producer: LLMProducer) -> None:
    with pytest.raises(JobNotFoundError):
        await producer.cancel("never-seen")
    with pytest.raises(JobNotFoundError):
        await producer.result("never-seen", timeout=1)


async def test_full_queue_fails_fast(settings: Settings) -> None:
    small = settings.model_copy(update={"max_queue_length": 3})
    async with LLMProducer(small) as p:
        for i in range(3):
            await p.submit(req(f"fill {i}"))
        with pytest.raises(QueueFullError) as info:
            await p.submit(req("one too many"))
    assert info.value.retry_after is not None


async def test_retryable_fault_is_retried_with_a_restart_event(producer: LLMProducer, worker: Worker) -> None:
    text = "flaky [[sim:fault=cut after=5 times=1 tps=1000]]"
    events = [e async for e in producer.events(req(text))]
    kinds = [e.type for e in events]
    assert "restart" in kinds
    after_restart = kinds.index("restart")
    text_after = "".join(e.text for e in events[after_restart:] if isinstance(e, TokenEvent))
    assert text_after == "".join(reply_for(text, 20))
    assert events[-1].response.attempts == 2


async def test_stream_hides_a_restart_when_the_retry_repeats_the_text(
    producer: LLMProducer, worker: Worker
) -> None:
    text = "seamless [[sim:fault=cut after=4 times=1 tps=1000]]"
    assert await _collect(producer.stream(req(text))) == "".join(reply_for(text, 20))


async def test_retries_stop_at_max_retries(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    strict = settings.model_copy(update={"max_retries": 2})
    w = Worker(strict, concurrency=4)
    await w.start()
    try:
        with pytest.raises(ProviderUnavailableError):
            await producer.complete(req("always down [[sim:fault=500]]"))
    finally:
        await w.stop(grace=1)
    assert len(sim.requests()) == 3


async def test_failover_only_when_asked(producer: LLMProducer, worker: Worker, sim: SimulatorServer) -> None:
    down = "[[sim:fault=503 provider=openai]]"
    with pytest.raises(ProviderUnavailableError):
        await producer.complete(req(f"no failover {down}"))
    response = await producer.complete(req(f"with failover {down}", fallback_models=["claude-haiku-5-5"]))
    assert response.provider == "anthropic" and response.model == "claude-haiku-5-5"
    assert response.attempts == 4 + 1  # max_retries + 1 on openai, then anthropic


async def test_rate_limited_provider_pauses_every_worker(
    producer: LLMProducer, worker: Worker, sim: SimulatorServer, settings: Settings
) -> None:
    started = time.monotonic()
    response = await producer.complete(req("slow down [[sim:fault=429 retry_after=1 times=1]]"))
    assert response.attempts == 2
    assert time.monotonic() - started >= 0.9
    assert rdb(settings.redis_url).pttl(keys.pause("openai")) <= 0  # the pause has run out


async def test_interactive_lane_is_served_before_a_batch_backlog(
    settings: Settings, sim: SimulatorServer
) -> None:
    async with LLMProducer(settings) as p:
        batch_ids = [await p.submit(req(f"bulk {i} [[sim:ttft_ms=50]]", priority="batch")) for i in range(40)]
        urgent = await p.submit(req("urgent [[sim:ttft_ms=50]]"))
        w = Worker(settings.model_copy(update={"batch_max_share": 0.25}), concurrency=4)
        await w.start()
        try:
            await p.result(urgent, timeout=10)
            client = rdb(settings.redis_url)
            done_batch = sum(client.hget(keys.state("openai", rid), "status") == b"done" for rid in batch_ids)
            # The urgent job went through while at most a few batch jobs (one slot's worth) ran.
            assert done_batch <= 4
            for rid in batch_ids:  # and the batch lane is not starved
                await p.result(rid, timeout=30)
        finally:
            await w.stop(grace=2)


async def test_producer_reports_an_unreachable_redis(settings: Settings) -> None:
    from llmrelay.shared import BackendUnavailableError

    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:1/0"})
    with pytest.raises(BackendUnavailableError):
        async with LLMProducer(broken):
            pass


def test_job_codec_refuses_foreign_providers() -> None:
    from llmrelay.shared import InvalidRequestError

    good = Job("r", "openai", "gpt-6.1-terra", req(), 0.0, 1.0)
    data = orjson.loads(good.encode())
    data["p"] = "mystery"
    with pytest.raises(InvalidRequestError):
        Job.decode(orjson.dumps(data))


async def test_resume_past_the_end_returns_at_once(producer: LLMProducer, worker: Worker) -> None:
    events = [e async for e in producer.events(req("the end", request_id="end-1"))]
    started = time.monotonic()
    assert [e async for e in producer.resume("end-1", events[-1].index)] == []
    assert time.monotonic() - started < 1


async def test_error_events_keep_their_index(settings: Settings, producer: LLMProducer) -> None:
    strict = settings.model_copy(update={"max_retries": 0})
    w = Worker(strict, concurrency=2)
    await w.start()
    try:
        seen: list[StreamEvent] = []

        async def follow() -> None:
            async for event in producer.events(req("broken [[sim:fault=500]]")):
                seen.append(event)

        with pytest.raises(ProviderUnavailableError) as info:
            await follow()
    finally:
        await w.stop(grace=1)
    assert info.value.event_index == len(seen) + 1


async def test_a_stopping_worker_releases_jobs_it_read_but_never_started(
    settings: Settings, producer: LLMProducer
) -> None:
    long_lease = settings.model_copy(update={"lease_seconds": 30.0})
    client = rdb(settings.redis_url)
    stream = keys.work_stream("openai", "interactive")
    client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    request_id = await producer.submit(req("read, never run", request_id="orphan-1"))
    # A read cut short by a stop: the entry is delivered to this consumer, which never starts it.
    client.xreadgroup(keys.GROUP, "cut-short", {stream: ">"}, count=1)
    stopping = Worker(long_lease, providers=["openai"], concurrency=4)
    stopping.worker_id = "cut-short"
    await stopping.start()
    await stopping.stop(grace=1)
    heir = Worker(long_lease, providers=["openai"], concurrency=4)
    started = time.monotonic()
    await heir.start()
    try:
        response = await producer.result(request_id, timeout=10)
    finally:
        await heir.stop(grace=1)
    assert response.content
    assert time.monotonic() - started < 5  # not after a 30 s lease


async def test_a_dropped_pubsub_connection_loses_no_event(
    producer: LLMProducer, worker: Worker, settings: Settings
) -> None:
    text = "through a reconnect [[sim:tokens=60 tps=60]]"
    stream = producer.events(req(text, request_id="drop-1"))
    events = [await stream.__anext__()]
    # Kill this DB's pub/sub connections (the producer's, and the worker's control channel) mid-stream.
    client = rdb(settings.redis_url)
    db = int(settings.redis_url.rsplit("/", 1)[1])
    killed = 0
    for c in client.client_list():
        if "P" in c.get("flags", "") and int(c.get("db", -1)) == db:
            killed += client.client_kill_filter(_id=c["id"])
    assert killed >= 1
    events += [e async for e in stream]
    indexes = [e.index for e in events]
    assert indexes == list(range(1, len(events) + 1))  # none lost, none repeated
    final_text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    assert final_text == events[-1].response.content == "".join(reply_for(text, 60))
