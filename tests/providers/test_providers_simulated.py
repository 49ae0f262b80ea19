"""The adapters through the real SDKs against the loopback simulator: content, usage, headers, faults."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from provider_test_support import CANARY_KEYS, MODELS, SYSTEM, make_call, new_trace_id, sim_settings_for

from llmrelay.shared.errors import (
    AuthenticationError,
    InvalidRequestError,
    LLMRelayError,
    PermissionDeniedError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestTimeoutError,
    UnknownModelError,
)
from llmrelay.shared.settings import Settings
from llmrelay.simulator.app import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderAdapter, StreamEnd

pytestmark = pytest.mark.parametrize("model", MODELS)

MakeAdapter = Callable[..., ProviderAdapter]


def _provider(settings: Settings, model: str) -> str:
    return settings.catalog.resolve(model).provider


def _requests_for(sim: SimulatorServer, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in sim.requests() if r["headers"].get("x-trace-id") == trace_id]


async def _collect(adapter: ProviderAdapter, call: Any) -> tuple[list[str], StreamEnd]:
    items = [item async for item in adapter.stream(call)]
    *texts, end = items
    assert all(isinstance(t, str) and t for t in texts)
    assert isinstance(end, StreamEnd)
    return texts, end  # type: ignore[return-value]


async def _read_into(stream: AsyncIterator[str | StreamEnd], out: list[str | StreamEnd]) -> None:
    async for item in stream:
        out.append(item)


def _assert_secret_free(error: LLMRelayError, key: str) -> None:
    for text in (str(error), repr(error), json.dumps(error.to_dict()), error.message):
        assert key not in text
    assert error.__cause__ is None
    assert error.__suppress_context__


# -- replies ------------------------------------------------------------------------------------------


async def test_complete_returns_the_deterministic_reply_with_usage(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    prompt = "Tell me about the sea"
    adapter = make_adapter(_provider(sim_settings, model))
    result = await adapter.complete(make_call(sim_settings, model, prompt))
    assert result.text == "".join(reply_for(prompt, 20))
    assert result.end.finish_reason == "stop"
    # Prompt tokens are the words of every message, the system text included.
    words = len(SYSTEM.split()) + len(prompt.split())
    assert result.end.usage.model_dump() == {
        "prompt_tokens": words,
        "completion_tokens": 20,
        "total_tokens": words + 20,
        "cached_prompt_tokens": 0,
        "reasoning_tokens": 0,
    }
    assert result.end.api_model == sim_settings.catalog.resolve(model).api_id


async def test_stream_yields_plain_text_deltas_then_exactly_one_end(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    prompt = "Stream a short answer [[sim:tokens=12]]"
    adapter = make_adapter(_provider(sim_settings, model))
    texts, end = await _collect(adapter, make_call(sim_settings, model, prompt))
    assert all(type(t) is str for t in texts)
    assert len(texts) == 12  # one SSE event per token, passed through without re-chunking
    assert "".join(texts) == "".join(reply_for(prompt, 12))
    assert end.finish_reason == "stop"
    assert end.usage.completion_tokens == 12


async def test_max_tokens_truncates_and_reports_length(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    prompt = "A long answer please [[sim:tokens=30]]"
    adapter = make_adapter(_provider(sim_settings, model))
    texts, end = await _collect(adapter, make_call(sim_settings, model, prompt, max_tokens=5))
    assert "".join(texts) == "".join(reply_for(prompt, 30)[:5])
    assert end.finish_reason == "length"
    assert end.usage.completion_tokens == 5


async def test_a2a_headers_reach_the_provider_on_every_call(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    trace_id = new_trace_id()
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(
        sim_settings, model, "hello", trace_id=trace_id, source_agent="planner", session_id="sess-42"
    )
    await adapter.complete(call)
    await adapter.complete(call)
    seen = _requests_for(sim, trace_id)
    assert len(seen) == 2
    for record in seen:
        headers = record["headers"]
        assert headers["x-source-agent"] == "planner"
        assert headers["x-session-id"] == "sess-42"
        assert headers["x-trace-id"] == trace_id
        assert headers["traceparent"] == call.headers["traceparent"]
        assert headers["traceparent"].startswith(f"00-{trace_id}-")


async def test_ratelimit_headers_are_read_into_the_stream_end(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    provider = _provider(sim_settings, model)
    adapter = make_adapter(provider)
    result = await adapter.complete(make_call(sim_settings, model, "hello"))
    info = result.end.ratelimit
    if provider == "gemini":
        assert info is None  # the Gemini API sends no rate-limit headers
        return
    assert info is not None
    assert isinstance(info.remaining_requests, int)
    assert isinstance(info.remaining_tokens, int)
    assert info.remaining_requests >= 0
    assert info.remaining_tokens >= 0
    assert info.reset_requests_s is not None
    assert info.reset_tokens_s is not None
    assert 0 <= info.reset_requests_s <= 60
    assert 0 <= info.reset_tokens_s <= 60


async def test_sampling_parameters_are_sent_where_given(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    trace_id = new_trace_id()
    adapter = make_adapter(_provider(sim_settings, model))
    sampling = {"max_tokens": 50, "temperature": 0.5, "top_p": 0.9, "stop": ["END"]}
    call = make_call(sim_settings, model, "hello", trace_id=trace_id, **sampling)
    await adapter.complete(call)
    (record,) = _requests_for(sim, trace_id)
    body = record["body"]
    api = record["api"]
    if api == "chat":
        assert body["messages"][0] == {"role": "system", "content": SYSTEM}
        assert body["stream"] is True
        assert body["stream_options"] == {"include_usage": True}
        assert (body["max_completion_tokens"], body["temperature"], body["top_p"]) == (50, 0.5, 0.9)
        assert body["stop"] == ["END"]
    elif api == "responses":
        assert body["instructions"] == SYSTEM
        assert body["input"] == [{"role": "user", "content": "hello"}]
        assert (body["max_output_tokens"], body["temperature"], body["top_p"]) == (50, 0.5, 0.9)
        assert body["stream"] is True
        assert body["store"] is False
    elif record["provider"] == "anthropic":
        assert body["system"] == SYSTEM
        assert body["messages"] == [{"role": "user", "content": "hello"}]
        assert (body["max_tokens"], body["temperature"], body["top_p"]) == (50, 0.5, 0.9)
        assert body["stop_sequences"] == ["END"]
        assert body["stream"] is True
    else:
        assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
        assert body["contents"] == [{"role": "user", "parts": [{"text": "hello"}]}]
        generation = body["generationConfig"]
        sampling_sent = (generation["maxOutputTokens"], generation["temperature"], generation["topP"])
        assert sampling_sent == (50, 0.5, 0.9)
        assert generation["stopSequences"] == ["END"]
        assert record["query"] == "alt=sse"


async def test_parameters_left_unset_are_not_sent(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    trace_id = new_trace_id()
    adapter = make_adapter(_provider(sim_settings, model))
    await adapter.complete(make_call(sim_settings, model, "hello", system=None, trace_id=trace_id))
    (record,) = _requests_for(sim, trace_id)
    sent = json.dumps(record["body"])
    for name in ("temperature", "top_p", "topP", "stop", "instructions", "systemInstruction"):
        assert f'"{name}"' not in sent
    if record["provider"] == "anthropic":
        # The Messages API requires max_tokens: the catalog's cap, at most 4096.
        assert record["body"]["max_tokens"] == 4096
        assert "system" not in record["body"]


async def test_assistant_turns_keep_their_role(
    model: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    trace_id = new_trace_id()
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, "first", trace_id=trace_id)
    call.request.messages.extend(
        type(call.request.messages[0])(role=role, content=text)
        for role, text in (("assistant", "an answer"), ("user", "and then?"))
    )
    result = await adapter.complete(call)
    assert result.text == "".join(reply_for("and then?", 20))
    (record,) = _requests_for(sim, trace_id)
    body = record["body"]
    turns = body.get("messages") or body.get("input") or body.get("contents")
    roles = [turn["role"] for turn in turns if turn["role"] != "system"]
    assistant = "model" if record["provider"] == "gemini" else "assistant"
    assert roles == ["user", assistant, "user"]


# -- faults -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("retry_after", [2, 1.5])
async def test_429_is_rate_limited_with_the_providers_retry_after(
    model: str, retry_after: float, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, f"busy [[sim:fault=429 retry_after={retry_after}]]")
    with pytest.raises(RateLimitedError) as caught:
        await adapter.complete(call)
    assert caught.value.retry_after == pytest.approx(retry_after)
    assert caught.value.retryable
    assert caught.value.data["status"] == 429
    assert caught.value.to_dict()["data"]["retry_after"] == pytest.approx(retry_after)


@pytest.mark.parametrize("fault", ["500", "503", "529"])
async def test_server_errors_are_provider_unavailable_and_tried_once(
    model: str, fault: str, sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    trace_id = new_trace_id()
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, f"fail [[sim:fault={fault}]]", trace_id=trace_id)
    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(call)
    assert caught.value.retryable
    assert caught.value.data["status"] >= 500
    # SDK retries are off: the worker sees (and counts) every attempt.
    assert len(_requests_for(sim, trace_id)) == 1


async def test_503_with_retry_after_carries_it(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, "fail [[sim:fault=503 retry_after=3]]")
    with pytest.raises(ProviderUnavailableError) as caught:
        await adapter.complete(call)
    assert caught.value.data["retry_after"] == pytest.approx(3.0)


async def test_overload_inside_a_stream_is_provider_unavailable(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, "go [[sim:fault=overloaded_in_stream after=3]]")
    received: list[str | StreamEnd] = []
    with pytest.raises(ProviderUnavailableError):
        await _read_into(adapter.stream(call), received)
    assert len(received) == 3
    assert all(isinstance(item, str) for item in received)


async def test_a_stream_cut_midway_is_provider_unavailable(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    prompt = "go [[sim:fault=cut after=5]]"
    adapter = make_adapter(_provider(sim_settings, model))
    received: list[str | StreamEnd] = []
    with pytest.raises(ProviderUnavailableError) as caught:
        await _read_into(adapter.stream(make_call(sim_settings, model, prompt)), received)
    assert received == reply_for(prompt, 20)[:5]
    assert caught.value.__cause__ is None


async def test_401_is_authentication_error_without_the_key(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    provider = _provider(sim_settings, model)
    adapter = make_adapter(provider)
    with pytest.raises(AuthenticationError) as caught:
        await adapter.complete(make_call(sim_settings, model, "who am I [[sim:fault=401]]"))
    assert type(caught.value) is AuthenticationError
    assert "[REDACTED]" in caught.value.message  # the simulator quoted the key; it was masked
    _assert_secret_free(caught.value, CANARY_KEYS[provider])  # type: ignore[index]


@pytest.mark.parametrize(
    ("fault", "expected"),
    [("400", InvalidRequestError), ("403", PermissionDeniedError), ("404", UnknownModelError)],
)
async def test_client_errors_map_to_their_shared_class(
    model: str, fault: str, expected: type[LLMRelayError], sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    with pytest.raises(expected) as caught:
        await adapter.complete(make_call(sim_settings, model, f"bad [[sim:fault={fault}]]"))
    assert type(caught.value) is expected
    assert not caught.value.retryable
    assert caught.value.data["status"] == int(fault)


async def test_a_hung_provider_times_out_at_the_calls_deadline(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    call = make_call(sim_settings, model, "wait [[sim:fault=hang]]", timeout=0.3)
    with pytest.raises(RequestTimeoutError) as caught:
        await adapter.complete(call)
    assert caught.value.retryable


async def test_missing_key_fails_before_any_request(
    model: str, sim: SimulatorServer, make_adapter: MakeAdapter
) -> None:
    keyless = sim_settings_for(sim, OPENAI_API_KEY=None, ANTHROPIC_API_KEY=None, GEMINI_API_KEY=None)
    provider = _provider(keyless, model)
    adapter = make_adapter(provider, keyless)
    trace_id = new_trace_id()
    call = make_call(keyless, model, "hello", trace_id=trace_id)
    with pytest.raises(AuthenticationError, match=f"no API key configured for {provider}"):
        await adapter.complete(call)
    with pytest.raises(AuthenticationError):
        await _read_into(adapter.stream(call), [])
    assert _requests_for(sim, trace_id) == []


async def test_leaving_a_stream_early_releases_it_cleanly(
    model: str, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    adapter = make_adapter(_provider(sim_settings, model))
    stream = adapter.stream(make_call(sim_settings, model, "a long one [[sim:tokens=200]]"))
    first = await anext(stream)
    assert isinstance(first, str)
    await stream.aclose()  # type: ignore[attr-defined]
    # The adapter stays usable after a consumer walked away mid-stream.
    result = await adapter.complete(make_call(sim_settings, model, "again"))
    assert result.text == "".join(reply_for("again", 20))
