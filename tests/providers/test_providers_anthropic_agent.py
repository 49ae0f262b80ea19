"""The Anthropic adapter's agent surface through the real SDK against the simulator: tool loops,
parallel calls, tool_choice, structured outputs, images and documents, reasoning, provider options,
and the refusals of what the Messages API cannot take."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import httpx2
import jsonschema
import orjson
import pytest
from provider_test_support import CANARY_KEYS

from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.settings import Settings
from llmrelay.simulator.providers import MEDIA_TOKENS
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import (
    AnthropicAdapter,
    Completion,
    ProviderAdapter,
    ProviderCall,
    StreamAccumulator,
    ToolCallDelta,
)

MODEL = "claude-haiku-5-5"
WEATHER: dict[str, Any] = {
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city", "days"],
    },
}
TIME: dict[str, Any] = {
    "name": "get_time",
    "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}},
}
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()

Make = Callable[..., ProviderAdapter]


def _call(settings: Settings, messages: list[dict[str, Any]], **fields: Any) -> ProviderCall:
    request = LLMRequest.model_validate({"model": MODEL, "messages": messages, **fields})
    return ProviderCall(model=settings.catalog.resolve(MODEL), request=request, timeout=10.0)


async def _run(adapter: ProviderAdapter, call: ProviderCall, *, stream: bool) -> tuple[Completion, list[Any]]:
    """complete(), or stream() folded by the one accumulator; with the items the stream yielded."""
    if not stream:
        return await adapter.complete(call), []
    accumulator = StreamAccumulator("anthropic")
    items = []
    async for item in adapter.stream(call):
        items.append(item)
        accumulator.add(item)
    return accumulator.completion(), items


def _last_body(sim: SimulatorServer) -> dict[str, Any]:
    body: dict[str, Any] = sim.requests(provider="anthropic")[-1]["body"]
    return body


@pytest.mark.parametrize("stream", [False, True])
async def test_two_turn_tool_loop(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make, stream: bool
) -> None:
    sim.reset()
    adapter = make_adapter("anthropic")
    question = [{"role": "user", "content": "weather in oslo?"}]
    first, items = await _run(adapter, _call(sim_settings, question, tools=[WEATHER, TIME]), stream=stream)
    assert first.end.finish_reason == "tool_calls"
    assert first.text == ""
    [tool_call] = first.tool_calls
    assert tool_call.name == "get_weather" and tool_call.id.startswith("toolu_")
    jsonschema.validate(tool_call.arguments, WEATHER["parameters"])
    if stream:
        deltas = [i for i in items if isinstance(i, ToolCallDelta)]
        assert deltas[0].id == tool_call.id and deltas[0].name == "get_weather"
        assert len(deltas) > 2 and all(d.call_index == 0 for d in deltas)
    body = _last_body(sim)
    assert body["tools"][0] == {
        "name": "get_weather",
        "input_schema": WEATHER["parameters"],
        "description": "Weather for a city",
    }
    assert "tool_choice" not in body

    conversation = [
        *question,
        {"role": "assistant", "content": "let me look", "tool_calls": [tool_call.model_dump()]},
        {"role": "tool", "tool_call_id": tool_call.id, "content": "sunny, 20C"},
    ]
    second, _ = await _run(adapter, _call(sim_settings, conversation, tools=[WEATHER, TIME]), stream=stream)
    assert second.end.finish_reason == "stop"
    assert second.text and not second.tool_calls
    body = _last_body(sim)
    assert body["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "text", "text": "let me look"},
            {"type": "tool_use", "id": tool_call.id, "name": "get_weather", "input": tool_call.arguments},
        ],
    }
    assert body["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": tool_call.id, "content": "sunny, 20C"}],
    }


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_calls_and_their_results_in_one_user_turn(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make, stream: bool
) -> None:
    sim.reset()
    adapter = make_adapter("anthropic")
    question = [{"role": "user", "content": "weather and time [[sim:calls=2]]"}]
    first, _ = await _run(adapter, _call(sim_settings, question, tools=[WEATHER, TIME]), stream=stream)
    assert [c.name for c in first.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in first.tool_calls}) == 2
    conversation = [
        *question,
        {"role": "assistant", "tool_calls": [c.model_dump() for c in first.tool_calls]},
        {"role": "tool", "tool_call_id": first.tool_calls[0].id, "content": "sunny"},
        {
            "role": "tool",
            "tool_call_id": first.tool_calls[1].id,
            "content": [{"type": "text", "text": "noon"}],
        },
        {"role": "user", "content": "and tomorrow?"},
    ]
    second, _ = await _run(adapter, _call(sim_settings, conversation, tools=[WEATHER, TIME]), stream=stream)
    assert second.end.finish_reason == "stop"  # the results came back: the model answers in text
    body = _last_body(sim)
    assert [m["role"] for m in body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in body["messages"][1]["content"]] == ["tool_use", "tool_use"]
    assert body["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": first.tool_calls[0].id, "content": "sunny"},
        {
            "type": "tool_result",
            "tool_use_id": first.tool_calls[1].id,
            "content": [{"type": "text", "text": "noon"}],
        },
        {"type": "text", "text": "and tomorrow?"},
    ]

    single, _ = await _run(
        adapter,
        _call(sim_settings, question, tools=[WEATHER, TIME], parallel_tool_calls=False),
        stream=stream,
    )
    assert [c.name for c in single.tool_calls] == ["get_weather"]
    assert _last_body(sim)["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}


@pytest.mark.parametrize(
    ("choice", "wire", "names"),
    [
        ("none", {"type": "none"}, []),
        ("required", {"type": "any"}, ["get_weather"]),
        ({"name": "get_time"}, {"type": "tool", "name": "get_time"}, ["get_time"]),
        ("auto", {"type": "auto"}, ["get_weather"]),
    ],
)
async def test_tool_choice(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Make,
    choice: Any,
    wire: dict[str, Any],
    names: list[str],
) -> None:
    sim.reset()
    adapter = make_adapter("anthropic")
    result = await adapter.complete(
        _call(sim_settings, [{"role": "user", "content": "hi"}], tools=[WEATHER, TIME], tool_choice=choice)
    )
    assert [c.name for c in result.tool_calls] == names
    assert result.end.finish_reason == ("tool_calls" if names else "stop")
    assert _last_body(sim)["tool_choice"] == wire


async def test_required_choice_calls_even_after_a_result(sim_settings: Settings, make_adapter: Make) -> None:
    adapter = make_adapter("anthropic")
    conversation = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "tool_calls": [{"id": "toolu_a", "name": "get_time", "arguments": {}}]},
        {"role": "tool", "tool_call_id": "toolu_a", "content": "noon"},
    ]
    result = await adapter.complete(
        _call(
            sim_settings,
            conversation,
            tools=[WEATHER, TIME],
            tool_choice="required",
            parallel_tool_calls=True,
        )
    )
    assert result.end.finish_reason == "tool_calls"


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_reply_validates(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make, stream: bool
) -> None:
    sim.reset()
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temps": {"type": "array", "items": {"type": "number"}}},
        "required": ["city", "temps"],
    }
    call = _call(
        sim_settings,
        [{"role": "user", "content": "forecast as json"}],
        response_format={
            "type": "json_schema", "name": "forecast", "schema": schema, "strict": True, "description": "3 days"
        },
    )  # fmt: skip
    result, _ = await _run(make_adapter("anthropic"), call, stream=stream)
    assert result.end.finish_reason == "stop"
    jsonschema.validate(orjson.loads(result.text), schema)
    fmt = _last_body(sim)["output_config"]["format"]
    # The SDK's transform closes every object, as structured outputs require.
    assert fmt["type"] == "json_schema" and fmt["schema"]["additionalProperties"] is False
    assert fmt["schema"]["properties"] == schema["properties"]
    assert fmt["schema"]["description"] == "3 days"  # no place beside the schema: it goes inside


async def test_images_by_url_and_base64_and_a_document(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make
) -> None:
    sim.reset()
    content = [
        {"type": "text", "text": "what are these"},
        {"type": "image", "url": "https://example.com/cat.png", "detail": "auto"},
        {"type": "image", "data": PNG, "media_type": "image/png"},
        {"type": "image", "url": f"data:image/png;base64,{PNG}"},
        {"type": "document", "data": PDF},
    ]
    result = await make_adapter("anthropic").complete(
        _call(sim_settings, [{"role": "user", "content": content}])
    )
    assert result.text
    assert result.end.usage.prompt_tokens == 3 + 4 * MEDIA_TOKENS
    [message] = _last_body(sim)["messages"]
    assert message["content"] == [
        {"type": "text", "text": "what are these"},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
    ]


@pytest.mark.parametrize(
    ("reasoning", "max_tokens", "thinking", "sent_max"),
    [
        # Without max_tokens the limit is raised to hold medium's 8192 budget and a default reply.
        ({"effort": "medium"}, None, {"type": "enabled", "budget_tokens": 8192}, 8192 + 4096),
        # A max_tokens of 8192 cannot hold medium's 8192 budget and a reply: half of them think.
        ({"effort": "medium"}, 8192, {"type": "enabled", "budget_tokens": 4096}, 8192),
        ({"effort": "low"}, None, {"type": "enabled", "budget_tokens": 2048}, 2048 + 4096),
        ({"budget_tokens": 3000}, 5000, {"type": "enabled", "budget_tokens": 3000}, 5000),
        ({"effort": "high"}, 4000, {"type": "enabled", "budget_tokens": 2000}, 4000),
        ({"budget_tokens": 0}, None, {"type": "disabled"}, 4096),
    ],
)
async def test_reasoning_becomes_a_thinking_budget(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: Make,
    reasoning: dict[str, Any],
    max_tokens: int | None,
    thinking: dict[str, Any],
    sent_max: int,
) -> None:
    sim.reset()
    fields: dict[str, Any] = {"reasoning": reasoning}
    if max_tokens is not None:
        fields["max_tokens"] = max_tokens
    await make_adapter("anthropic").complete(
        _call(sim_settings, [{"role": "user", "content": "think"}], **fields)
    )
    body = _last_body(sim)
    assert body["thinking"] == thinking
    assert body["max_tokens"] == sent_max


async def test_provider_options_merge_without_overriding(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make
) -> None:
    sim.reset()
    schema = {"type": "object", "properties": {"a": {"type": "string"}}}
    await make_adapter("anthropic").complete(
        _call(
            sim_settings,
            [{"role": "user", "content": "hi"}],
            temperature=0.5,
            response_format={"type": "json_schema", "schema": schema},
            provider_options={
                "anthropic": {"top_k": 5, "output_config": {"effort": "high"}, "metadata": {"user_id": "u1"}}
            },
        )
    )
    body = _last_body(sim)
    assert body["top_k"] == 5 and body["temperature"] == 0.5
    assert body["metadata"] == {"user_id": "u1"}
    assert body["output_config"]["effort"] == "high"
    assert body["output_config"]["format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"seed": 7}, "seed"),
        ({"temperature": 1.5}, "temperature"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"response_format": {"type": "json_schema", "schema": {"minimum": 1}}}, "response_format.schema"),
        ({"reasoning": {"budget_tokens": 500}}, "reasoning.budget_tokens"),
        ({"reasoning": {"budget_tokens": 2000}, "max_tokens": 2000}, "reasoning.budget_tokens"),
        ({"reasoning": {"effort": "low"}, "max_tokens": 1024}, "reasoning.effort"),
        ({"provider_options": {"anthropic": {"model": "other"}}}, "provider_options.anthropic.model"),
        ({"provider_options": {"anthropic": {"max_tokens": 9}}}, "provider_options.anthropic.max_tokens"),
        (
            {"temperature": 0.2, "provider_options": {"anthropic": {"temperature": 1}}},
            "provider_options.anthropic.temperature",
        ),
        (
            {
                "response_format": {"type": "json_schema", "schema": {"type": "object"}},
                "provider_options": {"anthropic": {"output_config": {"format": None}}},
            },
            "provider_options.anthropic.output_config",
        ),
    ],
)
async def test_what_the_messages_api_cannot_take_is_refused_by_name(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make, fields: dict[str, Any], field: str
) -> None:
    sim.reset()
    with pytest.raises(InvalidRequestError) as info:
        await make_adapter("anthropic").complete(
            _call(sim_settings, [{"role": "user", "content": "hi"}], **fields)
        )
    assert info.value.data["field"] == field
    assert field in info.value.message
    assert sim.requests(provider="anthropic") == []


@pytest.mark.parametrize(
    ("part", "field"),
    [
        (
            {"type": "image", "url": "https://example.com/a.png", "detail": "high"},
            "messages[0].content[0].detail",
        ),
        ({"type": "image", "url": "data:image/png;base64,%%%"}, "messages[0].content[0].url"),
        ({"type": "image", "url": "data:image/tiff;base64,AAAA"}, "messages[0].content[0].url"),
    ],
)
async def test_image_forms_the_api_cannot_take_are_refused(
    sim_settings: Settings, make_adapter: Make, part: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await make_adapter("anthropic").complete(_call(sim_settings, [{"role": "user", "content": [part]}]))
    assert info.value.data["field"] == field


# -- what the simulator does not send: cache usage, thinking tokens, a thinking block before a call ----


def _sse(*events: dict[str, Any]) -> bytes:
    return "".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n" for e in events).encode()


def _on(body: bytes) -> AnthropicAdapter:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    settings = Settings(
        _env_file=None, ANTHROPIC_API_KEY=CANARY_KEYS["anthropic"], ANTHROPIC_BASE_URL="http://127.0.0.1:9"
    )
    return AnthropicAdapter(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))


async def test_cache_and_thinking_usage_and_a_call_after_a_thinking_block(sim_settings: Settings) -> None:
    body = _sse(
        {
            "type": "message_start",
            "message": {
                "id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-5-5",
                "content": [], "stop_reason": None,
                "usage": {"input_tokens": 10, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 20,
                          "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": "", "signature": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "content_block_start", "index": 1,
         "content_block": {"type": "tool_use", "id": "toolu_x", "name": "get_time", "input": {}}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"zone": '}},
        {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": '"UTC"}'}},
        {"type": "content_block_stop", "index": 1},
        {"type": "message_delta", "delta": {"stop_reason": "tool_use"},
         "usage": {"output_tokens": 40, "output_tokens_details": {"thinking_tokens": 30}}},
        {"type": "message_stop"},
    )  # fmt: skip
    adapter = _on(body)
    try:
        call = _call(sim_settings, [{"role": "user", "content": "time?"}], tools=[TIME])
        result, items = await _run(adapter, call, stream=True)
    finally:
        await adapter.aclose()
    assert [i for i in items if isinstance(i, ToolCallDelta)] == [
        ToolCallDelta(0, "toolu_x", "get_time", ""),
        ToolCallDelta(0, arguments='{"zone": '),
        ToolCallDelta(0, arguments='"UTC"}'),
    ]
    assert result.text == ""  # thinking is not reply text
    assert [(c.id, c.name, c.arguments) for c in result.tool_calls] == [
        ("toolu_x", "get_time", {"zone": "UTC"})
    ]
    assert result.end.finish_reason == "tool_calls"
    usage = result.end.usage
    assert (usage.prompt_tokens, usage.cached_prompt_tokens, usage.completion_tokens) == (130, 100, 40)
    assert (usage.reasoning_tokens, usage.total_tokens) == (30, 170)


async def test_strict_tools_are_sent_strict(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: Make
) -> None:
    sim.reset()
    tools = [{**TIME, "strict": True}, {**WEATHER, "strict": False}]
    result = await make_adapter("anthropic").complete(
        _call(sim_settings, [{"role": "user", "content": "time?"}], tools=tools)
    )
    assert [c.name for c in result.tool_calls] == ["get_time"]
    assert [t.get("strict") for t in _last_body(sim)["tools"]] == [True, False]
