"""Adapter construction, the registry, and stream endings the simulator does not produce."""

from __future__ import annotations

import json
from typing import Any

import httpx2
import pytest
from provider_test_support import CANARY_KEYS, make_call

from llmrelay.shared.errors import InvalidRequestError, ProviderUnavailableError, RateLimitedError
from llmrelay.shared.redaction import MASK, redact
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import (
    ADAPTERS,
    AnthropicAdapter,
    GeminiAdapter,
    OpenAIAdapter,
    ProviderAdapter,
    StreamEnd,
    build_adapter,
)
from llmrelay.worker.providers._common import DEFAULT_BASE_URLS

LOOPBACK = "http://127.0.0.1:9"


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "OPENAI_API_KEY": CANARY_KEYS["openai"],
        "ANTHROPIC_API_KEY": CANARY_KEYS["anthropic"],
        "GEMINI_API_KEY": CANARY_KEYS["gemini"],
        "OPENAI_BASE_URL": LOOPBACK + "/v1",
        "ANTHROPIC_BASE_URL": LOOPBACK,
        "GEMINI_BASE_URL": LOOPBACK,
        "LLMRELAY_HTTP_POOL_SIZE": 7,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


# -- construction and the registry --------------------------------------------------------------------


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_in_flight_connections_never_fall_below_the_idle_pool(provider: str) -> None:
    adapter: Any = build_adapter(provider, _settings(LLMRELAY_WORKER_CONCURRENCY=3))
    try:
        pool = adapter._http._transport._pool
        assert (pool._max_connections, pool._max_keepalive_connections) == (7, 7)
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_each_adapter_owns_one_pool_of_the_configured_size(provider: str) -> None:
    adapter: Any = build_adapter(provider, _settings())
    try:
        assert type(adapter) is ADAPTERS[provider]
        assert adapter.name == provider
        pool = adapter._http._transport._pool
        # Idle connections as configured; in flight, as many as the worker runs jobs at once.
        assert (pool._max_connections, pool._max_keepalive_connections) == (256, 7)
    finally:
        await adapter.aclose()
    assert adapter._http.is_closed


@pytest.mark.parametrize("cls", [OpenAIAdapter, AnthropicAdapter])
async def test_openai_and_anthropic_clients_use_our_pool_without_retries(cls: type[Any]) -> None:
    adapter = cls(_settings())
    try:
        assert adapter._client.max_retries == 0
        assert adapter._client._client is adapter._http
    finally:
        await adapter.aclose()


async def test_gemini_runs_on_our_httpx2_client_never_aiohttp_and_never_retries() -> None:
    adapter = GeminiAdapter(_settings())
    try:
        api_client = adapter._client.aio._api_client
        assert api_client._async_httpx_client is adapter._http
        assert isinstance(api_client._async_httpx_client, httpx2.AsyncClient)
        assert not api_client._use_aiohttp()
        assert api_client._http_options.retry_options is None
        assert api_client._http_options.api_version == "v1beta"
        assert api_client._http_options.timeout == 60_000  # milliseconds
    finally:
        await adapter.aclose()


async def test_keys_are_registered_for_redaction_at_construction() -> None:
    key = "sk-ant-canary-construction-" + "z" * 12
    adapter = AnthropicAdapter(_settings(ANTHROPIC_API_KEY=key))
    try:
        assert redact(f"key={key}") == f"key={MASK}"
    finally:
        await adapter.aclose()


@pytest.mark.parametrize("provider", sorted(ADAPTERS))
async def test_unset_base_url_means_the_providers_own_endpoint(provider: str) -> None:
    settings = _settings(OPENAI_BASE_URL="", ANTHROPIC_BASE_URL="", GEMINI_BASE_URL="")
    adapter: Any = build_adapter(provider, settings)
    try:
        if provider == "gemini":
            base = adapter._client.aio._api_client._http_options.base_url
        else:
            base = str(adapter._client.base_url)
        assert base.rstrip("/") == DEFAULT_BASE_URLS[provider]  # type: ignore[index]
    finally:
        await adapter.aclose()


def test_unknown_provider_is_refused() -> None:
    with pytest.raises(InvalidRequestError, match="unknown provider 'mistral'"):
        build_adapter("mistral", _settings())


# -- stream endings, through the real SDKs on a mock transport ------------------------------------------


def _sse(*events: tuple[str | None, Any]) -> bytes:
    out = []
    for event, data in events:
        head = f"event: {event}\n" if event else ""
        payload = data if isinstance(data, str) else json.dumps(data)
        out.append(f"{head}data: {payload}\n\n")
    return "".join(out).encode()


def _adapter_on(
    cls: type[Any], body: bytes, headers: dict[str, str] | None = None
) -> tuple[ProviderAdapter, list[httpx2.Request]]:
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(
            200, headers={"content-type": "text/event-stream", **(headers or {})}, content=body
        )

    client = httpx2.AsyncClient(transport=httpx2.MockTransport(handler))
    return cls(_settings(), http_client=client), seen


async def _drain(adapter: ProviderAdapter, model: str) -> tuple[str, StreamEnd]:
    try:
        result = await adapter.complete(make_call(_settings(), model, "hi"))
    finally:
        await adapter.aclose()
    return result.text, result.end


def _chat_chunk(content: str | None, finish: str | None = None, **extra: Any) -> dict[str, Any]:
    delta = {} if content is None else {"content": content}
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "gpt-6.1-terra",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        **extra,
    }


async def test_openai_chat_content_filter_and_role_only_chunks() -> None:
    body = _sse(
        (None, _chat_chunk(None)),
        (None, _chat_chunk("")),
        (None, _chat_chunk("partial")),
        (None, _chat_chunk(None, "content_filter")),
        (None, {**_chat_chunk(None), "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}),
        (None, "[DONE]"),
    )
    adapter, _ = _adapter_on(OpenAIAdapter, body, {"x-ratelimit-reset-requests": "6m0s"})
    text, end = await _drain(adapter, "gpt-6.1-terra")
    assert text == "partial"
    assert end.finish_reason == "content_filter"
    assert end.usage.total_tokens == 4
    assert end.ratelimit is not None
    assert end.ratelimit.reset_requests_s == 360.0


async def test_openai_chat_stream_without_a_finish_reason_is_a_cut() -> None:
    adapter, _ = _adapter_on(OpenAIAdapter, _sse((None, _chat_chunk("half"))))
    with pytest.raises(ProviderUnavailableError, match="without a finish reason"):
        await _drain(adapter, "gpt-6.1-terra")


def _response_obj(status: str, reason: str | None = None, error: Any = None) -> dict[str, Any]:
    return {
        "id": "r1",
        "object": "response",
        "status": status,
        "model": "gpt-6.1-sol",
        "output": [],
        "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "usage": {"input_tokens": 2, "output_tokens": 1, "total_tokens": 3},
    }


def _delta(text: str) -> tuple[str, dict[str, Any]]:
    event = {
        "type": "response.output_text.delta",
        "delta": text,
        "item_id": "i",
        "output_index": 0,
        "content_index": 0,
        "logprobs": [],
        "sequence_number": 1,
    }
    return "response.output_text.delta", event


async def test_openai_responses_incomplete_for_content_filter() -> None:
    done = {"type": "response.incomplete", "response": _response_obj("incomplete", "content_filter")}
    adapter, _ = _adapter_on(OpenAIAdapter, _sse(_delta("a"), _delta(""), ("response.incomplete", done)))
    text, end = await _drain(adapter, "gpt-6.1-sol")
    assert text == "a"
    assert end.finish_reason == "content_filter"
    assert end.usage.total_tokens == 3


@pytest.mark.parametrize(
    ("code", "expected"),
    [("server_error", ProviderUnavailableError), ("rate_limit_exceeded", RateLimitedError)],
)
async def test_openai_responses_failed_event_is_translated(code: str, expected: type[Exception]) -> None:
    failed = {
        "type": "response.failed",
        "response": _response_obj("failed", error={"code": code, "message": "it broke"}),
    }
    adapter, _ = _adapter_on(OpenAIAdapter, _sse(_delta("a"), ("response.failed", failed)))
    with pytest.raises(expected, match="it broke"):
        await _drain(adapter, "gpt-6.1-sol")


async def test_openai_responses_error_event_is_translated() -> None:
    error = {"type": "error", "code": "server_error", "message": "oops", "param": None, "sequence_number": 2}
    adapter, _ = _adapter_on(OpenAIAdapter, _sse(_delta("a"), ("error", error)))
    with pytest.raises(ProviderUnavailableError, match="oops"):
        await _drain(adapter, "gpt-6.1-sol")


async def test_openai_responses_stream_without_completion_is_a_cut() -> None:
    adapter, _ = _adapter_on(OpenAIAdapter, _sse(_delta("a")))
    with pytest.raises(ProviderUnavailableError, match="before the response completed"):
        await _drain(adapter, "gpt-6.1-sol")


def _anthropic_events(stop_reason: str, *, stop: bool = True) -> bytes:
    start = {
        "type": "message_start",
        "message": {
            "id": "m",
            "type": "message",
            "role": "assistant",
            "model": "claude-haiku-5-5",
            "content": [],
            "stop_reason": None,
            "usage": {"input_tokens": 5, "output_tokens": 1},
        },
    }
    events: list[tuple[str | None, Any]] = [
        ("message_start", start),
        ("ping", {"type": "ping"}),
        (
            "content_block_start",
            {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        ),
        (
            "content_block_delta",
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "no"}},
        ),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        (
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason},
                "usage": {"input_tokens": 6, "output_tokens": 2},
            },
        ),
    ]
    if stop:
        events.append(("message_stop", {"type": "message_stop"}))
    return _sse(*events)


async def test_anthropic_refusal_is_content_filter_and_late_input_usage_counts() -> None:
    adapter, _ = _adapter_on(AnthropicAdapter, _anthropic_events("refusal"))
    text, end = await _drain(adapter, "claude-haiku-5-5")
    assert text == "no"
    assert end.finish_reason == "content_filter"
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (6, 2)


async def test_anthropic_stream_without_message_stop_is_a_cut() -> None:
    adapter, _ = _adapter_on(AnthropicAdapter, _anthropic_events("end_turn", stop=False))
    with pytest.raises(ProviderUnavailableError, match="message_stop"):
        await _drain(adapter, "claude-haiku-5-5")


def _gemini_chunk(
    parts: list[dict[str, Any]] | None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0}
    if parts is not None:
        candidate["content"] = {"role": "model", "parts": parts}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-3.8-flash", **extra}


async def test_gemini_skips_thoughts_but_bills_them() -> None:
    usage = {"promptTokenCount": 4, "candidatesTokenCount": 2, "thoughtsTokenCount": 3, "totalTokenCount": 9}
    body = _sse(
        (None, _gemini_chunk([{"text": "thinking...", "thought": True}, {"text": "hi"}])),
        (None, _gemini_chunk([{"text": " there"}], "STOP", usageMetadata=usage)),
    )
    adapter, seen = _adapter_on(GeminiAdapter, body)
    text, end = await _drain(adapter, "gemini-3.8-flash")
    assert text == "hi there"
    assert end.finish_reason == "stop"
    assert (end.usage.prompt_tokens, end.usage.completion_tokens) == (4, 5)
    assert end.ratelimit is None
    assert seen[0].url.path == "/v1beta/models/gemini-3.8-flash:streamGenerateContent"


async def test_gemini_safety_stop_is_content_filter() -> None:
    adapter, _ = _adapter_on(GeminiAdapter, _sse((None, _gemini_chunk([{"text": "x"}], "SAFETY"))))
    _, end = await _drain(adapter, "gemini-3.8-flash")
    assert end.finish_reason == "content_filter"


async def test_gemini_blocked_prompt_is_content_filter() -> None:
    blocked = {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}}
    adapter, _ = _adapter_on(GeminiAdapter, _sse((None, blocked)))
    text, end = await _drain(adapter, "gemini-3.8-flash")
    assert text == ""
    assert end.finish_reason == "content_filter"
    assert end.usage.prompt_tokens == 4


async def test_gemini_stream_without_a_finish_reason_is_a_cut() -> None:
    adapter, _ = _adapter_on(GeminiAdapter, _sse((None, _gemini_chunk([{"text": "half"}]))))
    with pytest.raises(ProviderUnavailableError, match="without a finish reason"):
        await _drain(adapter, "gemini-3.8-flash")


async def test_headers_ride_on_every_sdk_request() -> None:
    adapter, seen = _adapter_on(OpenAIAdapter, _sse((None, _chat_chunk("x", "stop")), (None, "[DONE]")))
    call = make_call(_settings(), "gpt-6.1-terra", "hi", trace_id="t-1", source_agent="a", session_id="s")
    try:
        await adapter.complete(call)
    finally:
        await adapter.aclose()
    headers = seen[0].headers
    assert (headers["x-trace-id"], headers["x-source-agent"], headers["x-session-id"]) == ("t-1", "a", "s")
    assert "traceparent" not in headers  # only for 32-hex trace ids
    assert headers["authorization"] == f"Bearer {CANARY_KEYS['openai']}"
