"""Embeddings through the queue: producer -> Redis -> worker -> SDK -> simulator -> back, under the same
governance as completions (allowed models, idempotency, retries, deadlines, cancellation, rate limits)."""

from __future__ import annotations

import asyncio
import io
import math
import time
import uuid

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import (
    AuthenticationError,
    EmbeddingRequest,
    InvalidRequestError,
    LLMRequest,
    ModelNotAllowedError,
    RequestCancelledError,
    RequestTimeoutError,
    Settings,
    keys,
)
from llmrelay.shared.logging import configure_logging
from llmrelay.shared.queue import enqueue, make_job
from llmrelay.shared.settings import RateLimit
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.queue.test_secrets import _dump_redis
from tests.support import (
    EMBEDDING_MODEL_OF,
    GEMINI_EMBEDDING_MODEL,
    OPENAI_EMBEDDING_MODEL,
    OPENAI_MODEL,
    poll,
    rdb,
)

EMBEDDING_MODELS = [OPENAI_EMBEDDING_MODEL, GEMINI_EMBEDDING_MODEL]


def emb(texts: list[str], model: str = OPENAI_EMBEDDING_MODEL, **kw: object) -> EmbeddingRequest:
    return EmbeddingRequest(model=model, input=texts, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_embeds_through_the_queue_with_usage_cost_and_context(
    model: str, producer: LLMProducer, worker: Worker, sim: SimulatorServer
) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    response = await producer.embed(
        emb(["first text here", "second"], model, trace_id=trace, source_agent="indexer", session_id="s-9")
    )
    info = producer.governance.catalog.resolve(model)
    assert [len(v) for v in response.vectors] == [info.dimensions, info.dimensions]
    assert all(math.isclose(sum(x * x for x in v), 1.0, rel_tol=1e-5) for v in response.vectors)
    assert response.usage.prompt_tokens == response.usage.total_tokens > 0
    assert response.cost_usd == pytest.approx(info.cost(response.usage.prompt_tokens, 0))
    assert (response.model, response.provider, response.attempts) == (info.name, info.provider, 1)
    assert (response.trace_id, response.source_agent, response.session_id) == (trace, "indexer", "s-9")
    [record] = sim.requests()
    assert record["headers"]["x-trace-id"] == trace and record["headers"]["x-session-id"] == "s-9"
    assert record["headers"]["traceparent"].startswith(f"00-{trace}-")


async def test_same_request_id_runs_once(
    producer: LLMProducer, worker: Worker, sim: SimulatorServer, settings: Settings
) -> None:
    request = emb(["only once [[sim:slow_first_byte_ms=200]]"], request_id=f"emb-{uuid.uuid4().hex}")
    async with LLMProducer(settings) as other:
        first, second = await asyncio.gather(producer.embed(request), other.embed(request))
    third = await producer.embed(request)
    assert first.vectors == second.vectors == third.vectors
    assert len(sim.requests()) == 1
    # The id names an embedding: a completion under it is refused, naming the field.
    chat = LLMRequest(
        model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}], request_id=request.request_id
    )
    with pytest.raises(InvalidRequestError) as refused:
        await producer.complete(chat)
    assert refused.value.data["field"] == "request_id"


async def test_an_embedding_under_a_completions_id_is_refused(producer: LLMProducer, worker: Worker) -> None:
    rid = f"chat-{uuid.uuid4().hex}"
    await producer.complete(
        LLMRequest(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}], request_id=rid)
    )
    with pytest.raises(InvalidRequestError) as refused:
        await producer.embed(emb(["y"], request_id=rid))
    assert refused.value.data["field"] == "request_id"


async def test_governance_refuses_before_anything_is_queued(
    settings: Settings, worker: Worker, sim: SimulatorServer
) -> None:
    narrow = settings.model_copy(update={"allowed_models": [OPENAI_MODEL, GEMINI_EMBEDDING_MODEL]})
    async with LLMProducer(narrow) as p:
        with pytest.raises(ModelNotAllowedError):
            await p.embed(emb(["no"], OPENAI_EMBEDDING_MODEL))
        with pytest.raises(InvalidRequestError) as chat_model:
            await p.embed(emb(["no"], OPENAI_MODEL))
        assert chat_model.value.data["field"] == "model"
        with pytest.raises(InvalidRequestError) as embedding_model:
            await p.complete(
                LLMRequest(model=GEMINI_EMBEDDING_MODEL, messages=[{"role": "user", "content": "x"}])
            )
        assert embedding_model.value.data["field"] == "model"
        with pytest.raises(InvalidRequestError) as too_wide:
            await p.embed(emb(["no"], GEMINI_EMBEDDING_MODEL, dimensions=4096))
        assert too_wide.value.data["field"] == "dimensions"
    client = rdb(settings.redis_url)
    assert all(client.xlen(keys.work_stream(p, "interactive")) == 0 for p in ("openai", "gemini"))
    assert sim.requests() == []


async def test_worker_refuses_a_disallowed_embedding_model_that_was_queued_anyway(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    narrow = settings.model_copy(update={"allowed_models": [OPENAI_MODEL]})
    w = Worker(narrow, concurrency=4)
    await w.start()
    try:
        with pytest.raises(ModelNotAllowedError):
            await producer.embed(emb(["sneaky"], request_id="emb-sneaky"))
    finally:
        await w.stop(grace=1)
    assert sim.requests() == []
    [(_, dead)] = rdb(settings.redis_url).xrange(keys.dead_letter("openai"))
    assert dead[b"id"] == b"emb-sneaky" and b"ModelNotAllowedError" in dead[b"error"]


async def test_worker_refuses_a_queued_job_whose_kind_does_not_match_its_model(
    settings: Settings, producer: LLMProducer, worker: Worker, sim: SimulatorServer
) -> None:
    # A completion job naming an embedding model, written past the producer's check.
    chat = LLMRequest(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}], request_id="kind-mix")
    route = producer.governance.route(chat)
    job = make_job(chat, route, settings, stream=False)
    job.model = OPENAI_EMBEDDING_MODEL
    assert (await enqueue(producer.redis, job, settings))[0] == "queued"
    with pytest.raises(InvalidRequestError) as refused:
        await producer.result("kind-mix", timeout=20)
    assert refused.value.data["field"] == "model"
    assert sim.requests() == []


async def test_a_retryable_fault_is_retried(
    producer: LLMProducer, worker: Worker, sim: SimulatorServer
) -> None:
    sim.add_fault(503, provider="gemini", times=1)
    response = await producer.embed(emb(["again"], GEMINI_EMBEDDING_MODEL))
    assert response.attempts == 2
    assert [r["fault"] for r in sim.requests()] == ["503", None]


async def test_a_provider_refusal_is_not_retried(
    producer: LLMProducer, worker: Worker, sim: SimulatorServer
) -> None:
    sim.add_fault(400, provider="openai", times=None)
    with pytest.raises(InvalidRequestError):
        await producer.embed(emb(["bad"]))
    assert len(sim.requests()) == 1


async def test_the_deadline_cuts_a_slow_provider(producer: LLMProducer, worker: Worker) -> None:
    started = time.monotonic()
    with pytest.raises(RequestTimeoutError):
        await producer.embed(emb(["slow [[sim:slow_first_byte_ms=5000]]"], timeout=0.5))
    assert time.monotonic() - started < 4.5


async def test_cancel_a_queued_embedding(
    producer: LLMProducer, settings: Settings, sim: SimulatorServer
) -> None:
    rid = f"emb-cancel-{uuid.uuid4().hex}"
    waiting = asyncio.ensure_future(producer.embed(emb(["never run"], request_id=rid)))
    client = rdb(settings.redis_url)
    await poll(lambda: client.exists(keys.state("openai", rid)))
    assert await producer.cancel(rid)
    with pytest.raises(RequestCancelledError):
        await waiting
    assert await producer.status(rid) == "cancelled"
    assert sim.requests() == []


async def test_tokens_are_charged_from_the_input_and_reconciled_with_usage(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    tpm = 6000  # 100 tokens a second: 10 ms of budget per token
    limited = settings.model_copy(update={"rate_limits": {OPENAI_EMBEDDING_MODEL: RateLimit(tpm=tpm)}})
    w = Worker(limited, concurrency=4)
    await w.start()
    try:
        words = "word " * 400  # 2000 characters: 500 tokens estimated, 400 counted by the provider
        response = await producer.embed(emb([words]))
        assert response.usage.prompt_tokens == 400
        tat = float(rdb(settings.redis_url).get(keys.rate("openai", OPENAI_EMBEDDING_MODEL, "tpm")) or 0)
        ahead_ms = tat - time.time() * 1000
        # The limit holds the 400 tokens the provider counted (4 s of budget), not the 500 estimated.
        assert 2000 < ahead_ms <= 4000
        # A second large input cannot be admitted within its deadline: the limit binds on input tokens.
        with pytest.raises(RequestTimeoutError) as held:
            await producer.embed(emb([words + "more"], timeout=1.0))
        assert "rate limit" in held.value.message
    finally:
        await w.stop(grace=1)
    assert len(sim.requests()) == 1


@pytest.mark.parametrize("provider", ["openai", "gemini"])
async def test_canary_key_leaks_nowhere(provider: str, env: dict[str, str]) -> None:
    canary = f"sk-canary-{uuid.uuid4().hex}" if provider == "openai" else f"AIzaCanary{uuid.uuid4().hex[:29]}"
    name = "OPENAI_API_KEY" if provider == "openai" else "GEMINI_API_KEY"
    settings = Settings(_env_file=None, **{**env, name: canary, "LLMRELAY_LOG_LEVEL": "DEBUG"})  # type: ignore[arg-type]
    logs = io.StringIO()
    configure_logging(settings, stream=logs)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    model = EMBEDDING_MODEL_OF[provider]
    try:
        async with LLMProducer(settings) as producer:
            ok = await producer.embed(emb(["hi"], model))
            with pytest.raises(AuthenticationError) as refused:
                await producer.embed(emb(["[[sim:fault=401]]"], model))
    finally:
        await worker.stop(grace=2)
    assert canary not in ok.model_dump_json()
    err = refused.value
    assert canary not in str(err) and canary not in str(err.to_dict())
    assert canary.encode() not in _dump_redis(settings.redis_url)
    assert canary not in logs.getvalue()
