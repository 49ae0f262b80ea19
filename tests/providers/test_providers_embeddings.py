"""The embedding adapters against the simulator, through the official SDKs: vectors, usage, limits, errors."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from provider_test_support import CANARY_KEYS, new_trace_id

from llmrelay.shared.embeddings import EmbeddingRequest, estimate_input_tokens
from llmrelay.shared.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProviderUnavailableError,
    RateLimitedError,
)
from llmrelay.shared.settings import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderAdapter
from llmrelay.worker.providers._common import embedding_batches
from llmrelay.worker.providers.base import EmbeddingCall
from tests.support import GEMINI_EMBEDDING_MODEL, OPENAI_EMBEDDING_MODEL

PROVIDER_OF = {OPENAI_EMBEDDING_MODEL: "openai", GEMINI_EMBEDDING_MODEL: "gemini"}
EMBEDDING_MODELS = list(PROVIDER_OF)


def embedding_call(settings: Settings, model: str, texts: list[str], **fields: Any) -> EmbeddingCall:
    request = EmbeddingRequest.model_validate({"model": model, "input": texts, **fields})
    return EmbeddingCall(
        model=settings.catalog.resolve(model),
        request=request,
        timeout=10.0,
        headers=request.context.headers(),
    )


def traced(sim: SimulatorServer, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["headers"].get("x-trace-id") == trace_id]


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_embeds_each_input_as_a_deterministic_unit_vector(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    adapter = make_adapter(PROVIDER_OF[model])
    texts = ["the cat sat", "on the mat", "the cat sat"]
    done = await adapter.embed(embedding_call(sim_settings, model, texts))
    dimension = sim_settings.catalog.resolve(model).dimensions
    assert [len(v) for v in done.vectors] == [dimension] * 3
    assert done.vectors[0] == done.vectors[2] != done.vectors[1]
    for vector in done.vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in vector)), 1.0, rel_tol=1e-5)
    again = await adapter.embed(embedding_call(sim_settings, model, ["on the mat"]))
    assert again.vectors == [done.vectors[1]]


async def test_openai_usage_is_the_providers_count_and_the_sdk_asks_base64(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    trace = new_trace_id()
    call = embedding_call(
        sim_settings,
        OPENAI_EMBEDDING_MODEL,
        ["one two three", "four"],
        trace_id=trace,
        source_agent="indexer",
    )
    done = await make_adapter("openai").embed(call)
    assert done.prompt_tokens == 4  # the simulator counts words
    assert done.ratelimit is not None and done.ratelimit.remaining_requests is not None
    [record] = traced(sim, trace)
    assert record["path"] == "/v1/embeddings"
    assert record["body"]["encoding_format"] == "base64"
    assert record["body"]["input"] == ["one two three", "four"]
    assert record["headers"]["x-source-agent"] == "indexer"
    assert "dimensions" not in record["body"]


async def test_gemini_sends_batch_embed_contents_and_estimates_usage(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    trace = new_trace_id()
    texts = ["a" * 40, "b" * 9]
    done = await make_adapter("gemini").embed(
        embedding_call(sim_settings, GEMINI_EMBEDDING_MODEL, texts, trace_id=trace)
    )
    # batchEmbedContents reports no usage: the count is the estimate the rate limiter charged.
    assert done.prompt_tokens == sum(estimate_input_tokens(t) for t in texts)
    [record] = traced(sim, trace)
    assert record["path"].endswith(f"/models/{GEMINI_EMBEDDING_MODEL}:batchEmbedContents")
    assert [r["content"]["parts"][0]["text"] for r in record["body"]["requests"]] == texts


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_dimensions_are_sent_and_honoured(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    trace = new_trace_id()
    done = await make_adapter(PROVIDER_OF[model]).embed(
        embedding_call(sim_settings, model, ["short please"], dimensions=256, trace_id=trace)
    )
    assert len(done.vectors[0]) == 256
    assert math.isclose(sum(x * x for x in done.vectors[0]), 1.0, rel_tol=1e-5)
    [record] = traced(sim, trace)
    body = record["body"]
    sent = (
        body["dimensions"] if PROVIDER_OF[model] == "openai" else body["requests"][0]["outputDimensionality"]
    )
    assert sent == 256


async def test_gemini_splits_past_100_inputs_and_keeps_their_order(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    trace = new_trace_id()
    texts = [f"text number {i}" for i in range(150)]
    adapter = make_adapter("gemini")
    done = await adapter.embed(embedding_call(sim_settings, GEMINI_EMBEDDING_MODEL, texts, trace_id=trace))
    assert [len(r["body"]["requests"]) for r in traced(sim, trace)] == [100, 50]
    alone = await adapter.embed(embedding_call(sim_settings, GEMINI_EMBEDDING_MODEL, [texts[120]]))
    assert done.vectors[120] == alone.vectors[0]
    assert len(done.vectors) == 150


def test_batches_respect_the_input_count_and_the_token_budget() -> None:
    texts = ["x" * 40] * 5  # 10 tokens each
    assert [len(b) for b in embedding_batches(texts, 2)] == [2, 2, 1]
    assert [len(b) for b in embedding_batches(texts, 100, 25)] == [2, 2, 1]
    assert embedding_batches(["y" * 400], 100, 25) == [["y" * 400]]  # one input alone is never split


@pytest.mark.parametrize(
    ("fault", "error"),
    [("429", RateLimitedError), ("503", ProviderUnavailableError), ("400", InvalidRequestError)],
)
@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_provider_errors_are_translated(
    model: str,
    fault: str,
    error: type[Exception],
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Callable[..., ProviderAdapter],
) -> None:
    sim.add_fault(fault, retry_after=2 if fault == "429" else None, provider=PROVIDER_OF[model])
    with pytest.raises(error) as caught:
        await make_adapter(PROVIDER_OF[model]).embed(embedding_call(sim_settings, model, ["hello"]))
    if fault == "429":
        assert isinstance(caught.value, RateLimitedError) and caught.value.retry_after == 2


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_a_refused_key_never_appears_in_the_error(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    provider = PROVIDER_OF[model]
    sim.add_fault("401", provider=provider)
    with pytest.raises(AuthenticationError) as caught:
        await make_adapter(provider).embed(embedding_call(sim_settings, model, ["hello"]))
    assert CANARY_KEYS[provider] not in str(caught.value)
    assert CANARY_KEYS[provider] not in repr(caught.value.to_dict())


async def test_anthropic_has_no_embeddings_api(
    sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    call = embedding_call(sim_settings, OPENAI_EMBEDDING_MODEL, ["hello"])
    with pytest.raises(InvalidRequestError, match="anthropic has no embeddings API"):
        await make_adapter("anthropic").embed(call)


async def test_a_missing_key_is_refused_before_any_call(
    sim: SimulatorServer, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    settings = Settings(_env_file=None, OPENAI_BASE_URL=sim.openai_base_url)
    with pytest.raises(AuthenticationError):
        await make_adapter("openai", settings).embed(embedding_call(settings, OPENAI_EMBEDDING_MODEL, ["x"]))
