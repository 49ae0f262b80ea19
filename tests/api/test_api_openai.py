"""The OpenAI-compatible endpoints, driven by the official openai SDK and by raw HTTP for the error shapes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from api_support import chat, sse_events

from llmrelay.shared import Settings
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker

Serve = Callable[..., Awaitable[Any]]
MODELS = ["gpt-6.1-terra", "claude-haiku-5-5", "gemini-3.8-flash"]
PROVIDER = {"gpt-6.1-terra": "openai", "claude-haiku-5-5": "anthropic", "gemini-3.8-flash": "gemini"}


@pytest.fixture
async def sdk(settings: Settings, worker: Worker, serve: Serve) -> AsyncIterator[openai.AsyncOpenAI]:
    live = await serve(settings)
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", MODELS)
async def test_openai_sdk_completes_with_each_provider(sdk: openai.AsyncOpenAI, model: str) -> None:
    prompt = f"Say something about {model} [[sim:tokens=9]]"
    completion = await sdk.chat.completions.create(
        model=model,
        messages=[{"role": "developer", "content": "Be brief."}, {"role": "user", "content": prompt}],
        max_completion_tokens=50,
        temperature=0.2,
        user="user-42",
    )
    assert completion.object == "chat.completion"
    assert completion.model == model
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].message.content == "".join(reply_for(prompt, 9))
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens == 9
    assert completion.id.startswith("chatcmpl-")


@pytest.mark.parametrize("model", MODELS)
async def test_openai_sdk_streams_with_each_provider_and_usage(sdk: openai.AsyncOpenAI, model: str) -> None:
    prompt = f"Stream about {model} [[sim:tokens=15 tps=500]]"
    chunks = [
        chunk
        async for chunk in await sdk.chat.completions.create(
            model=model,
            messages=[{"role": "user", "content": prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
    ]
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "".join(reply_for(prompt, 15))
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 15
    assert all(c.usage is None for c in chunks[:-1])


async def test_openai_stream_without_include_usage_has_no_usage_chunk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-6.1-terra", messages=[{"role": "user", "content": "plain"}], stream=True
    )
    chunks = [c async for c in stream]
    assert all(c.choices for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_openai_sdk_lists_and_retrieves_models(sdk: openai.AsyncOpenAI) -> None:
    models = [m async for m in sdk.models.list()]
    ids = {m.id for m in models}
    assert set(MODELS) <= ids
    owned = {m.id: m.owned_by for m in models}
    assert owned["claude-haiku-5-5"] == "anthropic"
    model = await sdk.models.retrieve("gemini-3.8-flash")
    assert model.owned_by == "gemini"
    with pytest.raises(openai.NotFoundError):
        await sdk.models.retrieve("gpt-0")


async def test_openai_sdk_sees_status_errors_of_the_right_class(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    with pytest.raises(openai.NotFoundError) as not_found:
        await sdk.chat.completions.create(model="gpt-0", messages=[{"role": "user", "content": "x"}])
    assert not_found.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as bad:
        await sdk.chat.completions.create(
            model="gpt-6.1-terra", messages=[{"role": "user", "content": "x"}], n=2
        )
    assert bad.value.param == "n"
    with pytest.raises(openai.InternalServerError) as down:
        await sdk.chat.completions.create(
            model="gpt-6.1-terra", messages=[{"role": "user", "content": "boom [[sim:fault=500]]"}]
        )
    assert down.value.status_code == 503
    with pytest.raises(openai.InternalServerError):
        await sdk.chat.completions.create(
            model="gpt-6.1-terra",
            messages=[{"role": "user", "content": "boom [[sim:fault=500]]"}],
            stream=True,
        )


async def test_openai_sdk_sees_an_error_raised_mid_stream(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.chat.completions.create(
        model="gpt-6.1-terra",
        messages=[{"role": "user", "content": "cut me [[sim:fault=cut after=3 tokens=20 tps=200]]"}],
        stream=True,
    )
    received: list[str] = []

    async def drain() -> None:
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                received.append(chunk.choices[0].delta.content)

    with pytest.raises(openai.APIError) as failed:
        await drain()
    assert "ProviderUnavailable" in str(failed.value) or failed.value.code == "provider_unavailable"
    assert "".join(received)  # the text before the cut did arrive


async def test_a2a_headers_and_extensions_reach_the_provider(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    sim.clear()
    completion = await sdk.chat.completions.create(
        model="claude-haiku-5-5",
        messages=[{"role": "user", "content": "context please"}],
        extra_headers={"X-Trace-Id": "trace-from-header", "X-Source-Agent": "router"},
        extra_body={"session_id": "sess-9", "trace_id": "trace-from-body"},
    )
    extension = completion.model_extra["llmrelay"] if completion.model_extra else {}
    assert extension["trace_id"] == "trace-from-body"
    assert extension["source_agent"] == "router"
    assert extension["session_id"] == "sess-9"
    assert extension["provider"] == "anthropic"
    seen = {k.lower(): v for k, v in sim.requests("anthropic")[-1]["headers"].items()}
    assert seen["x-trace-id"] == "trace-from-body"
    assert seen["x-session-id"] == "sess-9"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"n": 3}, "n"),
        ({"tools": [{"type": "custom", "custom": {"name": "f"}}]}, "tools.0.type"),
        ({"functions": [{"name": "f"}]}, "functions"),
        ({"function_call": "auto"}, "function_call"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
         "response_format.json_schema.schema"),
        ({"response_format": {"type": "grammar"}}, "response_format"),
        ({"logprobs": True}, "logprobs"),
        ({"top_logprobs": 2}, "top_logprobs"),
        ({"logit_bias": {"50256": -100}}, "logit_bias"),
        ({"presence_penalty": 0.5}, "presence_penalty"),
        ({"modalities": ["text", "audio"]}, "modalities"),
        ({"audio": {"voice": "alloy"}}, "audio"),
        ({"prediction": {"type": "content", "content": "x"}}, "prediction"),
        ({"web_search_options": {"search_context_size": "low"}}, "web_search_options"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"store": True}, "store"),
        ({"verbosity": "low"}, "verbosity"),
        ({"prompt_cache_key": "k"}, "prompt_cache_key"),
        ({"safety_identifier": "u"}, "safety_identifier"),
        ({"reasoning_effort": "xhigh"}, "reasoning_effort"),
        ({"stream_options": {"include_obfuscation": False}}, "stream_options.include_obfuscation"),
        ({"frequency_penalty": 0.3}, "frequency_penalty"),
        ({"an_unknown_parameter": 1}, "an_unknown_parameter"),
    ],
)  # fmt: skip
async def test_features_that_change_semantics_are_refused(
    client: httpx2.AsyncClient, extra: dict[str, Any], param: str
) -> None:
    response = await client.post("/v1/chat/completions", json=chat("x", **extra))
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[1, 2]", None),
        (b'{"model": "gpt-6.1-terra"}', "messages"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "function", "content": "x"}]}', "messages.0.role"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "tool", "content": "x"}]}',
         "messages.0.tool_call_id"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": [{"type": "image_url"}]}]}',
         "messages.0.content.0"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}',
         "messages.0.content.0"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": 5}]}', "messages.0.content"),
        (b'{"model": "gpt-6.1-terra", "messages": ["x"]}', "messages.0"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "assistant", "tool_calls": [{"id": "1"}]}]}',
         "messages.0.tool_calls.0"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}], "temperature": 9}',
         "temperature"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}], "stream": "yes"}', "stream"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}], "stream_options": 1}',
         "stream_options"),
        (b'{"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}], "metadata": 1}', "metadata"),
    ],
)  # fmt: skip
async def test_malformed_chat_requests_are_400_in_openai_shape(
    client: httpx2.AsyncClient, body: bytes, param: str | None
) -> None:
    response = await client.post("/v1/chat/completions", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param


async def test_text_parts_and_accepted_defaults_are_served(
    client: httpx2.AsyncClient, worker: Worker
) -> None:
    body = chat("ignored", n=1, tools=[], response_format={"type": "text"}, presence_penalty=0, seed=7,
                tool_choice="none", modalities=["text"], max_tokens=30, stop="zzz",
                metadata={"team": "a"})  # fmt: skip
    body["messages"] = [{"role": "user", "content": [{"type": "text", "text": "part one "}, {"type": "text",
                                                                                            "text": "two"}]},
                        {"role": "assistant", "content": None}, {"role": "user", "content": "go"}]  # fmt: skip
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "".join(reply_for("go", 20))


async def test_service_errors_map_to_their_status_and_type(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    settings = make_settings(ALLOWED_MODELS="gpt-6.1-terra")
    live = await serve(settings)
    async with live.client() as client:
        refused = await client.post("/v1/chat/completions", json=chat("x", model="claude-haiku-5-5"))
        assert refused.status_code == 403
        assert refused.json()["error"] == {
            "message": "model 'claude-haiku-5-5' is not allowed here",
            "type": "invalid_request_error",
            "param": "model",
            "code": "model_not_allowed",
        }
        streamed = await client.post(
            "/v1/chat/completions", json=chat("x", model="claude-haiku-5-5", stream=True)
        )
        assert streamed.status_code == 403
        too_long = await client.post("/v1/chat/completions", json=chat("x", max_tokens=10_000_000))
        assert too_long.status_code == 400
        missing = await client.get("/v1/nothing-here")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "not_found"
        wrong_method = await client.get("/v1/chat/completions")
        assert wrong_method.status_code == 405


async def test_a_queue_full_refusal_is_429_with_retry_after(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    # No worker: the first request fills the one-slot queue, the next are refused.
    settings = make_settings(LLMRELAY_MAX_QUEUE_LENGTH=1)
    live = await serve(settings)
    async with live.client() as client:
        await client.post("/jsonrpc", json={"jsonrpc": "2.0", "id": 1, "method": "llm.submit",
                                            "params": chat("fill")})  # fmt: skip
        for stream in (False, True):
            response = await client.post("/v1/chat/completions", json=chat("x", stream=stream))
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "queue_full"
            assert response.headers["retry-after"] == "1"


async def test_a_stream_whose_client_leaves_is_cancelled(
    settings: Settings, worker: Worker, serve: Serve
) -> None:
    from llmrelay.producer import LLMProducer
    from tests.support import poll

    live = await serve(settings)
    body = chat("go on [[sim:tokens=300 tps=50]]", stream=True, request_id="oa-leaver")
    async with live.client() as client, client.stream("POST", "/v1/chat/completions", json=body) as response:
        async for line in response.aiter_lines():
            if '"content":"' in line and '"content":""' not in line:
                break
    async with LLMProducer(settings) as producer:
        await poll(lambda: _status(producer, "oa-leaver"), timeout=8)


async def _status(producer: Any, request_id: str) -> bool:
    return bool(await producer.status(request_id) == "cancelled")


async def test_raw_stream_frames_end_with_done(client: httpx2.AsyncClient, worker: Worker) -> None:
    response = await client.post("/v1/chat/completions", json=chat("frames [[sim:tokens=3]]", stream=True))
    events = sse_events(response.text)
    assert events[-1]["data"] == "[DONE]"
    assert response.headers["x-request-id"] in events[0]["data"]["id"]


async def test_a_retried_stream_does_not_repeat_text_to_an_openai_client(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    settings = make_settings(LLM_MAX_RETRIES=2, LLMRELAY_BACKOFF_BASE=0.01, LLMRELAY_BACKOFF_MAX=0.02)
    live = await serve(settings)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    prompt = "Once only [[sim:fault=cut after=4 times=1 tokens=14 tps=300]]"
    try:
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0) as sdk:
            stream = await sdk.chat.completions.create(
                model="gpt-6.1-terra", messages=[{"role": "user", "content": prompt}], stream=True
            )
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    finally:
        await worker.stop(grace=2)
    assert text == "".join(reply_for(prompt, 14))


def test_replay_filter_passes_only_new_text_and_refuses_divergence() -> None:
    from llmrelay.producer.follower import ReplayFilter
    from llmrelay.shared.errors import StreamRestartedError

    replay = ReplayFilter()
    assert replay.token("ab") == "ab"
    assert replay.token("cd") == "cd"
    replay.restart()
    assert replay.token("a") == ""
    assert replay.token("bc") == ""
    assert replay.token("dEF") == "EF"
    assert replay.token("G") == "G"
    replay.restart()
    with pytest.raises(StreamRestartedError):
        replay.token("x")
    replay = ReplayFilter()
    replay.token("abc")
    replay.restart()
    with pytest.raises(StreamRestartedError):
        replay.token("abX-and-more")


def test_every_shared_error_has_an_openai_code_and_status() -> None:
    from llmrelay.producer.api.openai_compat import service_error
    from llmrelay.shared.errors import ERRORS_BY_NAME

    codes = set()
    for name, cls in ERRORS_BY_NAME.items():
        status, body, _headers = service_error(cls("x"))
        error = orjson.loads(body)["error"]
        assert status == cls.http_status
        assert error["type"] == cls.openai_type
        assert error["code"].replace("_", "").isalpha() and error["code"].islower(), name
        codes.add(error["code"])
    assert len(codes) == len(ERRORS_BY_NAME)
