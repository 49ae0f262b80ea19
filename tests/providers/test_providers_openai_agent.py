"""The OpenAI adapter's agent surface through the real SDK against the simulator, on both APIs: tool
loops, parallel calls, tool choice, structured output, images and documents, and the native request
shape each API received; plus the mappings the simulator cannot see (usage details, refusals)."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx2
import jsonschema
import orjson
import pytest
from openai.types.chat import ChatCompletionChunk
from openai.types.completion_usage import CompletionUsage
from openai.types.responses import Response, ResponseStreamEvent
from provider_test_support import new_trace_id
from pydantic import TypeAdapter

from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.settings import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderAdapter, ProviderCall
from llmrelay.worker.providers.base import Completion, StreamAccumulator, StreamEnd, ToolCallDelta
from llmrelay.worker.providers.openai import (
    _chat_messages,
    _chat_params,
    _responses_end,
    _responses_input,
    _responses_params,
)

CHAT, RESPONSES = "gpt-6.1-terra", "gpt-6.1-sol"
APIS = [CHAT, RESPONSES]
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}
TOOLS = [
    {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER},
    {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}}},
]
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
PDF = base64.b64encode(b"%PDF-1.4 llmrelay").decode()


def _call(settings: Settings, model: str, messages: list[dict[str, Any]], **fields: Any) -> ProviderCall:
    trace = new_trace_id()
    request = LLMRequest.model_validate({"model": model, "messages": messages, "trace_id": trace, **fields})
    return ProviderCall(settings.catalog.resolve(model), request, 10.0, request.context.headers())


def _body(sim: SimulatorServer, call: ProviderCall) -> dict[str, Any]:
    [record] = [r for r in sim.requests() if r["headers"].get("x-trace-id") == call.request.trace_id]
    body: dict[str, Any] = record["body"]
    return body


async def _run(adapter: ProviderAdapter, call: ProviderCall, stream: bool) -> tuple[Completion, list[Any]]:
    """The completion, and the stream items (streamed) or [] (drained by ``complete``)."""
    if not stream:
        return await adapter.complete(call), []
    accumulator = StreamAccumulator("openai")
    items: list[Any] = []
    async for item in adapter.stream(call):
        items.append(item)
        accumulator.add(item)
    return accumulator.completion(), items


@pytest.mark.parametrize("model", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_two_turn_tool_loop(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Callable[..., ProviderAdapter],
    model: str,
    stream: bool,
) -> None:
    adapter = make_adapter("openai")
    user = {"role": "user", "content": "What is the weather in Oslo?"}
    first = _call(sim_settings, model, [{"role": "system", "content": "Be brief."}, user], tools=TOOLS)
    done, items = await _run(adapter, first, stream)
    assert done.end.finish_reason == "tool_calls"
    [tool_call] = done.tool_calls
    assert tool_call.name == "get_weather"
    jsonschema.validate(tool_call.arguments, WEATHER)
    if stream:
        deltas = [i for i in items if isinstance(i, ToolCallDelta)]
        assert deltas[0].id == tool_call.id and deltas[0].name == "get_weather"
        assert len([d for d in deltas if d.arguments]) > 1, "arguments arrive in fragments"

    assistant = {"role": "assistant", "tool_calls": [tool_call.model_dump()]}
    result = {"role": "tool", "tool_call_id": tool_call.id, "content": '{"celsius": 12}'}
    second = _call(sim_settings, model, [user, assistant, result], tools=TOOLS)
    answer, _ = await _run(adapter, second, stream)
    assert answer.end.finish_reason == "stop"
    assert answer.text and not answer.tool_calls

    body = _body(sim, second)
    tool = body["tools"][0]
    if model == CHAT:
        assert tool == {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather by city", "parameters": WEATHER},
        }
        assert body["messages"][1]["tool_calls"][0]["function"]["name"] == "get_weather"
        assert body["messages"][2] == {
            "role": "tool",
            "tool_call_id": tool_call.id,
            "content": '{"celsius": 12}',
        }
    else:
        assert tool == {
            "type": "function",
            "name": "get_weather",
            "description": "Weather by city",
            "parameters": WEATHER,
            "strict": False,
        }
        assert body["store"] is False
        assert [item.get("type", "message") for item in body["input"]] == [
            "message",
            "function_call",
            "function_call_output",
        ]
        assert body["input"][1]["call_id"] == tool_call.id
        assert body["input"][2]["output"] == '{"celsius": 12}'


@pytest.mark.parametrize("model", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_calls(
    sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], model: str, stream: bool
) -> None:
    call = _call(sim_settings, model, [{"role": "user", "content": "both [[sim:calls=2]]"}], tools=TOOLS)
    done, _ = await _run(make_adapter("openai"), call, stream)
    assert [c.name for c in done.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in done.tool_calls}) == 2
    assert done.end.finish_reason == "tool_calls"


@pytest.mark.parametrize("model", APIS)
async def test_tool_choice_none_required_named_and_parallel_off(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], model: str
) -> None:
    adapter = make_adapter("openai")
    user = [{"role": "user", "content": "hello [[sim:calls=2]]"}]
    none = _call(sim_settings, model, user, tools=TOOLS, tool_choice="none")
    done = await adapter.complete(none)
    assert done.end.finish_reason == "stop" and not done.tool_calls and done.text
    assert _body(sim, none)["tool_choice"] == "none"

    required = _call(
        sim_settings, model, user, tools=TOOLS, tool_choice="required", parallel_tool_calls=False
    )
    done = await adapter.complete(required)
    assert [c.name for c in done.tool_calls] == ["get_weather"]
    body = _body(sim, required)
    assert body["tool_choice"] == "required" and body["parallel_tool_calls"] is False

    named = _call(sim_settings, model, user, tools=TOOLS, tool_choice={"name": "get_time"})
    done = await adapter.complete(named)
    assert [c.name for c in done.tool_calls] == ["get_time"]
    expected = (
        {"type": "function", "function": {"name": "get_time"}}
        if model == CHAT
        else {"type": "function", "name": "get_time"}
    )
    assert _body(sim, named)["tool_choice"] == expected


@pytest.mark.parametrize("model", APIS)
@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_reply_validates(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Callable[..., ProviderAdapter],
    model: str,
    stream: bool,
) -> None:
    fmt = {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": True, "description": "Today"}
    call = _call(sim_settings, model, [{"role": "user", "content": "weather as JSON"}], response_format=fmt)
    done, _ = await _run(make_adapter("openai"), call, stream)
    jsonschema.validate(orjson.loads(done.text), WEATHER)
    body = _body(sim, call)
    native = {"name": "weather", "schema": WEATHER, "strict": True, "description": "Today"}
    if model == CHAT:
        assert body["response_format"] == {"type": "json_schema", "json_schema": native}
    else:
        assert body["text"] == {"format": {"type": "json_schema", **native}}


@pytest.mark.parametrize("model", APIS)
async def test_json_object_reply(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], model: str
) -> None:
    call = _call(
        sim_settings,
        model,
        [{"role": "user", "content": "answer in JSON"}],
        response_format={"type": "json_object"},
    )
    done = await make_adapter("openai").complete(call)
    assert isinstance(orjson.loads(done.text), dict)
    body = _body(sim, call)
    assert (body["response_format"] if model == CHAT else body["text"]["format"]) == {"type": "json_object"}


@pytest.mark.parametrize("model", APIS)
async def test_images_by_url_and_base64_and_a_document(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], model: str
) -> None:
    parts = [
        {"type": "text", "text": "what is in these?"},
        {"type": "image", "url": "https://example.com/cat.png", "detail": "high"},
        {"type": "image", "data": PIXEL, "media_type": "image/png"},
        {"type": "document", "data": PDF},
    ]
    adapter = make_adapter("openai")
    plain = _call(sim_settings, model, [{"role": "user", "content": "what is in these?"}])
    rich = _call(sim_settings, model, [{"role": "user", "content": parts}])
    base = await adapter.complete(plain)
    done = await adapter.complete(rich)
    assert done.end.usage.prompt_tokens - base.end.usage.prompt_tokens == 3 * 85  # the simulator saw 3 media
    pdf_url = f"data:application/pdf;base64,{PDF}"
    if model == CHAT:
        content = _body(sim, rich)["messages"][0]["content"]
        assert content == [
            {"type": "text", "text": "what is in these?"},
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png", "detail": "high"}},
            {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
            {"type": "file", "file": {"filename": "document-3.pdf", "file_data": pdf_url}},
        ]
    else:
        content = _body(sim, rich)["input"][0]["content"]
        assert content == [
            {"type": "input_text", "text": "what is in these?"},
            {"type": "input_image", "image_url": "https://example.com/cat.png", "detail": "high"},
            {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"},
            {"type": "input_file", "filename": "document-3.pdf", "file_data": pdf_url},
        ]


async def test_chat_sends_seed_reasoning_and_options(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    call = _call(
        sim_settings,
        CHAT,
        [{"role": "user", "content": "hi", "name": "alice"}],
        seed=7,
        provider_options={"openai": {"service_tier": "flex", "user": "u-1"}},
    )
    await make_adapter("openai").complete(call)
    body = _body(sim, call)
    assert body["seed"] == 7 and body["service_tier"] == "flex" and body["user"] == "u-1"
    assert body["messages"][0] == {"role": "user", "content": "hi", "name": "alice"}
    assert "reasoning_effort" not in body


async def test_responses_sends_reasoning_effort_and_options(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter]
) -> None:
    call = _call(
        sim_settings,
        RESPONSES,
        [{"role": "user", "content": "hi"}],
        reasoning={"effort": "low"},
        provider_options={"openai": {"service_tier": "flex"}},
    )
    await make_adapter("openai").complete(call)
    body = _body(sim, call)
    assert body["reasoning"] == {"effort": "low"} and body["service_tier"] == "flex"
    assert "reasoning_effort" not in body and body["store"] is False


@pytest.mark.parametrize(
    ("model", "fields", "field"),
    [
        (RESPONSES, {"seed": 1}, "seed"),
        # gpt-4.1 (deprecated, still served) is the catalog's one chat model that does not reason.
        ("gpt-4.1", {"reasoning": {"effort": "high"}}, "reasoning.effort"),
        (RESPONSES, {"reasoning": {"budget_tokens": 2048}}, "reasoning.budget_tokens"),
        (CHAT, {"provider_options": {"openai": {"max_tokens": 5}}}, "provider_options.openai.max_tokens"),
        (CHAT, {"seed": 3, "provider_options": {"openai": {"seed": 4}}}, "provider_options.openai.seed"),
        (RESPONSES, {"provider_options": {"openai": {"store": True}}}, "provider_options.openai.store"),
    ],
)
async def test_what_openai_cannot_take_is_refused_by_name(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Callable[..., ProviderAdapter],
    model: str,
    fields: dict[str, Any],
    field: str,
) -> None:
    call = _call(sim_settings, model, [{"role": "user", "content": "hi"}], **fields)
    with pytest.raises(InvalidRequestError, match=field.replace(".", r"\.")) as caught:
        await make_adapter("openai").complete(call)
    assert caught.value.data["field"] == field
    assert not [r for r in sim.requests() if r["headers"].get("x-trace-id") == call.request.trace_id]


def test_responses_refuses_a_message_name() -> None:
    request = LLMRequest.model_validate({"messages": [{"role": "user", "content": "hi", "name": "bob"}]})
    with pytest.raises(InvalidRequestError, match=r"messages\[0\]\.name"):
        _responses_input(request)


def test_assistant_text_and_tool_calls_keep_their_order() -> None:
    request = LLMRequest.model_validate(
        {
            "messages": [
                {"role": "user", "content": "go"},
                {
                    "role": "assistant",
                    "content": "checking",
                    "tool_calls": [{"id": "c1", "name": "f", "arguments": {"a": 1}}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "ok", "name": "f"},
            ]
        }
    )
    assert _chat_messages(request)[1] == {
        "role": "assistant",
        "content": "checking",
        "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": '{"a":1}'}}],
    }
    _, items = _responses_input(request)
    assert items[1:] == [
        {"role": "assistant", "content": "checking"},
        {"type": "function_call", "call_id": "c1", "name": "f", "arguments": '{"a":1}'},
        {"type": "function_call_output", "call_id": "c1", "output": "ok"},
    ]


async def test_chat_usage_reads_cached_and_reasoning_tokens(
    sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = CompletionUsage.model_validate(
        {
            "prompt_tokens": 100,
            "completion_tokens": 40,
            "total_tokens": 140,
            "prompt_tokens_details": {"cached_tokens": 64},
            "completion_tokens_details": {"reasoning_tokens": 30},
        }
    )
    chunks = [
        ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
            }
        ),
        ChatCompletionChunk.model_validate(
            {
                "id": "c",
                "object": "chat.completion.chunk",
                "created": 0,
                "model": "m",
                "choices": [],
                "usage": usage.model_dump(),
            }
        ),
    ]

    adapter = make_adapter("openai")

    async def create(**kwargs: Any) -> _FakeStream:
        return _FakeStream(chunks)

    monkeypatch.setattr(adapter._client.chat.completions, "create", create)  # type: ignore[attr-defined]
    done = await adapter.complete(_call(sim_settings, CHAT, [{"role": "user", "content": "hi"}]))
    assert (done.end.usage.cached_prompt_tokens, done.end.usage.reasoning_tokens) == (64, 30)
    assert done.end.usage.total_tokens == 140


def test_responses_usage_reads_cached_and_reasoning_tokens() -> None:
    response = Response.model_validate(
        {
            "id": "r",
            "object": "response",
            "created_at": 0,
            "model": "gpt-6.1-sol",
            "status": "completed",
            "output": [
                {
                    "type": "function_call",
                    "id": "fc",
                    "call_id": "c",
                    "name": "f",
                    "arguments": "{}",
                    "status": "completed",
                }
            ],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": 50,
                "input_tokens_details": {"cached_tokens": 32, "cache_write_tokens": 0},
                "output_tokens": 20,
                "output_tokens_details": {"reasoning_tokens": 12},
                "total_tokens": 70,
            },
        }
    )
    end = _responses_end(response, None)  # type: ignore[arg-type]
    assert isinstance(end, StreamEnd)
    assert end.finish_reason == "tool_calls"
    assert (end.usage.cached_prompt_tokens, end.usage.reasoning_tokens) == (32, 12)


class _FakeStream:
    """What ``create(stream=True)`` returns, replaying given SDK events."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events
        self.response = type("R", (), {"headers": httpx2.Headers()})()

    async def __aenter__(self) -> _FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def _replay(self) -> Any:
        for event in self.events:
            yield event

    def __aiter__(self) -> Any:
        return self._replay()


async def test_responses_call_whose_arguments_come_only_whole(
    sim_settings: Settings, make_adapter: Callable[..., ProviderAdapter], monkeypatch: pytest.MonkeyPatch
) -> None:
    item = {
        "type": "function_call",
        "id": "fc_1",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": "",
    }
    final = {
        "id": "r",
        "object": "response",
        "created_at": 0,
        "model": "gpt-6.1-sol",
        "status": "completed",
        "output": [{**item, "arguments": '{"city":"Oslo"}', "status": "completed"}],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
    }
    raw = [
        {"type": "response.output_item.added", "output_index": 0, "sequence_number": 0, "item": item},
        {
            "type": "response.function_call_arguments.done",
            "item_id": "fc_1",
            "output_index": 0,
            "sequence_number": 1,
            "name": "get_weather",
            "arguments": '{"city":"Oslo"}',
        },
        {"type": "response.completed", "sequence_number": 2, "response": final},
    ]
    events = [TypeAdapter(ResponseStreamEvent).validate_python(e) for e in raw]
    adapter = make_adapter("openai")

    async def create(**kwargs: Any) -> _FakeStream:
        return _FakeStream(events)

    monkeypatch.setattr(adapter._client.responses, "create", create)  # type: ignore[attr-defined]
    done = await adapter.complete(_call(sim_settings, RESPONSES, [{"role": "user", "content": "hi"}]))
    [tool_call] = done.tool_calls
    assert (tool_call.id, tool_call.name, tool_call.arguments) == ("call_1", "get_weather", {"city": "Oslo"})
    assert done.end.finish_reason == "tool_calls"


def test_a_text_format_is_sent_as_text_on_both_apis() -> None:
    request = LLMRequest.model_validate(
        {"messages": [{"role": "user", "content": "hi"}], "response_format": {"type": "text"}}
    )
    assert _chat_params(request, "gpt-6.1-terra")["response_format"] == {"type": "text"}
    assert _responses_params(request, "gpt-6.1-sol")["text"] == {"format": {"type": "text"}}
