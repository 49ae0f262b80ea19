"""The Gemini adapter's agent surface (tools, tool results, JSON output, media, reasoning, options)
through the real adapter against the simulator, and what it put on the wire."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx2
import jsonschema
import orjson
import pytest
from provider_test_support import CANARY_KEYS, new_trace_id

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.settings import Settings
from llmrelay.simulator.providers._format import MEDIA_TOKENS
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import GeminiAdapter, ProviderAdapter, ProviderCall, StreamEnd, ToolCallDelta
from llmrelay.worker.providers.base import Completion, drain
from tests.support import GEMINI_MODEL

MODEL = GEMINI_MODEL
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]}},
    "required": ["city", "unit"],
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}
TOOLS = [
    {"name": "get_weather", "description": "Weather for a city", "parameters": WEATHER},
    {"name": "get_time", "parameters": TIME},
]
PNG_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
PDF_B64 = base64.b64encode(b"%PDF-1.4 sim").decode()

MakeAdapter = Callable[..., ProviderAdapter]


def _call(
    settings: Settings,
    messages: list[dict[str, Any]] | str,
    *,
    artifacts: dict[str, CallArtifacts] | None = None,
    **fields: Any,
) -> ProviderCall:
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    request = LLMRequest.model_validate(
        {"model": MODEL, "messages": messages, "trace_id": new_trace_id(), **fields}
    )
    return ProviderCall(
        model=settings.catalog.resolve(MODEL),
        request=request,
        timeout=10.0,
        headers=request.context.headers(),
        artifacts=artifacts or {},
    )


async def _run(adapter: ProviderAdapter, call: ProviderCall, stream: bool) -> tuple[Completion, list[Any]]:
    """The completion, and (streamed) every item the adapter yielded."""
    if not stream:
        return await adapter.complete(call), []
    items = [item async for item in adapter.stream(call)]

    async def replay() -> Any:
        for item in items:
            yield item

    return await drain(replay(), "gemini"), items


def _body(sim: SimulatorServer, call: ProviderCall) -> dict[str, Any]:
    [record] = [r for r in sim.requests() if r["headers"].get("x-trace-id") == call.request.trace_id]
    body: dict[str, Any] = record["body"]
    return body


def _turn_two(first: list[dict[str, Any]], completion: Completion) -> list[dict[str, Any]]:
    calls = [c.model_dump() for c in completion.tool_calls]
    results = [{"role": "tool", "tool_call_id": c["id"], "content": f"result of {c['name']}"} for c in calls]
    return [*first, {"role": "assistant", "content": None, "tool_calls": calls}, *results]


@pytest.mark.parametrize("stream", [False, True])
async def test_two_turn_tool_loop(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter, stream: bool
) -> None:
    adapter = make_adapter("gemini")
    first = [{"role": "system", "content": "Use tools."}, {"role": "user", "content": "Weather in Oslo?"}]
    call = _call(sim_settings, first, tools=TOOLS)
    completion, items = await _run(adapter, call, stream)

    assert completion.end.finish_reason == "tool_calls"
    assert completion.text == ""
    [tool_call] = completion.tool_calls
    assert tool_call.name == "get_weather"
    jsonschema.validate(tool_call.arguments, WEATHER)
    assert tool_call.id.startswith("call_")
    if stream:
        # Gemini sends a call whole: one delta with its id, name and all its arguments.
        [delta] = [item for item in items if isinstance(item, ToolCallDelta)]
        assert (delta.call_index, delta.id, delta.name) == (0, tool_call.id, "get_weather")
        assert orjson.loads(delta.arguments) == tool_call.arguments
        assert isinstance(items[-1], StreamEnd)
    body = _body(sim, call)
    [declaration, _] = body["tools"][0]["functionDeclarations"]
    assert declaration == {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters_json_schema": WEATHER,
    }
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "AUTO"}}
    assert body["systemInstruction"]["parts"] == [{"text": "Use tools."}]

    second = _call(sim_settings, _turn_two(first, completion), tools=TOOLS, artifacts=completion.artifacts)
    answer, _ = await _run(adapter, second, stream)
    assert answer.end.finish_reason == "stop"
    assert answer.text.strip() and not answer.tool_calls
    contents = _body(sim, second)["contents"]
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    [signature] = [found.signature for found in completion.artifacts.values()]
    assert contents[1]["parts"] == [
        {
            "functionCall": {"id": tool_call.id, "args": tool_call.arguments, "name": "get_weather"},
            "thoughtSignature": signature,
        }
    ]
    assert contents[2]["parts"] == [
        {
            "functionResponse": {
                "id": tool_call.id,
                "name": "get_weather",
                "response": {"output": "result of get_weather"},
            }
        }
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_calls_and_their_results_in_one_turn(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter, stream: bool
) -> None:
    adapter = make_adapter("gemini")
    first = [{"role": "user", "content": "Weather and time in Oslo [[sim:calls=2]]"}]
    completion, items = await _run(adapter, _call(sim_settings, first, tools=TOOLS), stream)
    assert completion.end.finish_reason == "tool_calls"
    assert [c.name for c in completion.tool_calls] == ["get_weather", "get_time"]
    assert len({c.id for c in completion.tool_calls}) == 2
    jsonschema.validate(completion.tool_calls[1].arguments, TIME)
    if stream:
        assert [d.call_index for d in items if isinstance(d, ToolCallDelta)] == [0, 1]

    second = _call(sim_settings, _turn_two(first, completion), tools=TOOLS, artifacts=completion.artifacts)
    answer, _ = await _run(adapter, second, stream)
    assert answer.end.finish_reason == "stop" and answer.text
    contents = _body(sim, second)["contents"]
    # Both results answer one call turn: Gemini takes them as one user turn.
    assert len(contents) == 3
    assert [p["functionResponse"]["name"] for p in contents[2]["parts"]] == ["get_weather", "get_time"]
    assert [p["functionResponse"]["id"] for p in contents[2]["parts"]] == [
        c.id for c in completion.tool_calls
    ]


@pytest.mark.parametrize(
    ("choice", "config", "names"),
    [
        ("none", {"mode": "NONE"}, []),
        ("required", {"mode": "ANY"}, ["get_weather"]),
        ({"name": "get_time"}, {"mode": "ANY", "allowedFunctionNames": ["get_time"]}, ["get_time"]),
        ("auto", {"mode": "AUTO"}, ["get_weather"]),
    ],
)
async def test_tool_choice(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: MakeAdapter,
    choice: Any,
    config: dict[str, Any],
    names: list[str],
) -> None:
    call = _call(sim_settings, "Now what?", tools=TOOLS, tool_choice=choice)
    completion = await make_adapter("gemini").complete(call)
    assert [c.name for c in completion.tool_calls] == names
    assert completion.end.finish_reason == ("tool_calls" if names else "stop")
    if not names:
        assert completion.text
    assert _body(sim, call)["toolConfig"] == {"functionCallingConfig": config}


async def test_strict_tools_ask_for_validated_calls(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    tools = [{**TOOLS[0], "strict": True}]
    call = _call(sim_settings, "Weather?", tools=tools)
    completion = await make_adapter("gemini").complete(call)
    assert [c.name for c in completion.tool_calls] == ["get_weather"]
    assert _body(sim, call)["toolConfig"] == {"functionCallingConfig": {"mode": "VALIDATED"}}


async def test_no_tools_sends_no_tool_config(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    call = _call(sim_settings, "hi", tool_choice="none", parallel_tool_calls=False)
    assert (await make_adapter("gemini").complete(call)).text
    body = _body(sim, call)
    assert "tools" not in body and "toolConfig" not in body


async def test_parallel_calls_cannot_be_turned_off(sim_settings: Settings, make_adapter: MakeAdapter) -> None:
    adapter = make_adapter("gemini")
    with pytest.raises(InvalidRequestError, match="parallel_tool_calls") as info:
        await adapter.complete(_call(sim_settings, "hi", tools=TOOLS, parallel_tool_calls=False))
    assert info.value.data["field"] == "parallel_tool_calls"
    # With calls turned off altogether there is nothing to run in parallel.
    call = _call(sim_settings, "hi", tools=TOOLS, tool_choice="none", parallel_tool_calls=False)
    assert (await adapter.complete(call)).text


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_reply_validates(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter, stream: bool
) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    fmt = {"type": "json_schema", "name": "person", "schema": schema, "strict": True}
    call = _call(sim_settings, "A person please", response_format=fmt)
    completion, _ = await _run(make_adapter("gemini"), call, stream)
    jsonschema.validate(orjson.loads(completion.text), schema)
    config = _body(sim, call)["generationConfig"]
    assert (config["responseMimeType"], config["responseJsonSchema"]) == ("application/json", schema)


async def test_json_object_reply(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    call = _call(sim_settings, "Some JSON", response_format={"type": "json_object"})
    completion = await make_adapter("gemini").complete(call)
    assert isinstance(orjson.loads(completion.text), dict)
    config = _body(sim, call)["generationConfig"]
    assert config["responseMimeType"] == "application/json" and "responseJsonSchema" not in config


def _with(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "text", "text": "Describe"}, *parts]}]


@pytest.mark.parametrize(
    ("part", "wire"),
    [
        (
            {"type": "image", "url": "https://example.com/cat.png?size=2"},
            {"fileData": {"file_uri": "https://example.com/cat.png?size=2", "mime_type": "image/png"}},
        ),
        (
            {"type": "image", "url": f"data:image/png;base64,{PNG_B64}"},
            {"inlineData": {"data": PNG_B64, "mime_type": "image/png"}},
        ),
        (
            {"type": "image", "data": PNG_B64, "media_type": "image/webp"},
            {"inlineData": {"data": PNG_B64, "mime_type": "image/webp"}},
        ),
        (
            {"type": "document", "data": PDF_B64},
            {"inlineData": {"data": PDF_B64, "mime_type": "application/pdf"}},
        ),
    ],
)
async def test_images_and_documents(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter, part: dict[str, Any], wire: Any
) -> None:
    call = _call(sim_settings, _with(part))
    completion = await make_adapter("gemini").complete(call)
    assert completion.text
    assert completion.end.usage.prompt_tokens == 1 + MEDIA_TOKENS  # the simulator saw one medium
    [content] = _body(sim, call)["contents"]
    assert content["parts"] == [{"text": "Describe"}, wire]


@pytest.mark.parametrize(
    ("parts", "field"),
    [
        ([{"type": "image", "url": "https://example.com/image"}], "messages[0].content[1].url"),
        ([{"type": "image", "url": "data:image/png,rawbytes"}], "messages[0].content[1].url"),
        ([{"type": "image", "url": "data:image/png;base64,@@@"}], "messages[0].content[1].url"),
        (
            [
                {"type": "image", "url": "https://example.com/a.png", "detail": "low"},
                {"type": "image", "url": "https://example.com/b.png", "detail": "high"},
            ],
            "detail",
        ),
    ],
)
async def test_images_gemini_cannot_take_are_refused(
    sim_settings: Settings, make_adapter: MakeAdapter, parts: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await make_adapter("gemini").complete(_call(sim_settings, _with(*parts)))
    assert info.value.data["field"] == field
    assert field in str(info.value)


async def test_image_detail_is_the_media_resolution(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    parts = [
        {"type": "image", "url": "https://example.com/a.jpg", "detail": "high"},
        {"type": "image", "url": "https://example.com/b.gif", "detail": "auto"},
    ]
    call = _call(sim_settings, _with(*parts))
    await make_adapter("gemini").complete(call)
    body = _body(sim, call)
    assert body["generationConfig"]["mediaResolution"] == "MEDIA_RESOLUTION_HIGH"
    assert [p["fileData"]["mime_type"] for p in body["contents"][0]["parts"][1:]] == [
        "image/jpeg",
        "image/gif",
    ]


@pytest.mark.parametrize(
    ("reasoning", "thinking"),
    [
        ({"budget_tokens": 2048}, {"thinking_budget": 2048}),
        ({"effort": "low"}, {"thinking_level": "LOW"}),
        ({"effort": "minimal"}, {"thinking_level": "MINIMAL"}),
        # Gemini answers 400 to both at once: the budget, the finer control, is what goes.
        ({"effort": "high", "budget_tokens": 0}, {"thinking_budget": 0}),
    ],
)
async def test_reasoning_and_seed(
    sim: SimulatorServer,
    sim_settings: Settings,
    make_adapter: MakeAdapter,
    reasoning: dict[str, Any],
    thinking: dict[str, Any],
) -> None:
    call = _call(sim_settings, "Think", reasoning=reasoning, seed=42, temperature=0.5, max_tokens=50)
    await make_adapter("gemini").complete(call)
    config = _body(sim, call)["generationConfig"]
    assert config["thinkingConfig"] == thinking
    assert (config["seed"], config["temperature"], config["maxOutputTokens"]) == (42, 0.5, 50)


async def test_provider_options_are_merged(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    options = {"gemini": {"top_k": 7, "presencePenalty": 0.5, "response_logprobs": True}}
    call = _call(sim_settings, "hi", provider_options=options)
    await make_adapter("gemini").complete(call)
    config = _body(sim, call)["generationConfig"]
    assert (config["topK"], config["presencePenalty"], config["responseLogprobs"]) == (7, 0.5, True)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        (
            {"provider_options": {"gemini": {"max_output_tokens": 9}}},
            "provider_options.gemini.max_output_tokens",
        ),
        ({"provider_options": {"gemini": {"httpOptions": {}}}}, "provider_options.gemini.http_options"),
        ({"provider_options": {"gemini": {"candidate_count": 2}}}, "provider_options.gemini.candidate_count"),
        (
            {"temperature": 0.2, "provider_options": {"gemini": {"temperature": 0.9}}},
            "provider_options.gemini.temperature",
        ),
        (
            {"tools": TOOLS, "provider_options": {"gemini": {"tool_config": {}}}},
            "provider_options.gemini.tool_config",
        ),
        ({"provider_options": {"gemini": {"no_such_field": 1}}}, "provider_options.gemini.no_such_field"),
        ({"provider_options": {"gemini": {"top_k": "many"}}}, "provider_options.gemini.top_k"),
    ],
)
async def test_provider_options_never_override_the_adapter(
    sim_settings: Settings, make_adapter: MakeAdapter, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await make_adapter("gemini").complete(_call(sim_settings, "hi", **fields))
    assert info.value.data["field"] == field


async def test_other_providers_options_are_not_sent(
    sim: SimulatorServer, sim_settings: Settings, make_adapter: MakeAdapter
) -> None:
    call = _call(sim_settings, "hi", provider_options={"openai": {"top_k": 3}})
    await make_adapter("gemini").complete(call)
    assert "topK" not in _body(sim, call).get("generationConfig", {})


# -- what the simulator does not send -----------------------------------------------------------------


def _adapter_on(*chunks: dict[str, Any]) -> ProviderAdapter:
    body = "".join(f"data: {orjson.dumps(c).decode()}\n\n" for c in chunks).encode()

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body)

    settings = Settings(
        _env_file=None, GEMINI_API_KEY=CANARY_KEYS["gemini"], GEMINI_BASE_URL="http://127.0.0.1:9"
    )
    return GeminiAdapter(settings, http_client=httpx2.AsyncClient(transport=httpx2.MockTransport(handler)))


def _chunk(parts: list[dict[str, Any]], finish: str | None = None, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"index": 0, "content": {"role": "model", "parts": parts}}
    if finish:
        candidate["finishReason"] = finish
    return {"candidates": [candidate], "modelVersion": "gemini-3-flash", **extra}


async def _complete(adapter: ProviderAdapter) -> Completion:
    settings = Settings(_env_file=None, GEMINI_API_KEY=CANARY_KEYS["gemini"])
    try:
        return await adapter.complete(_call(settings, "hi", tools=TOOLS))
    finally:
        await adapter.aclose()


async def test_cached_and_thought_tokens_and_gemini_call_ids() -> None:
    usage = {
        "promptTokenCount": 100,
        "cachedContentTokenCount": 60,
        "candidatesTokenCount": 5,
        "thoughtsTokenCount": 7,
        "totalTokenCount": 112,
    }
    adapter = _adapter_on(
        _chunk([{"text": "let me check", "thought": True}, {"text": "Checking."}], responseId="r9"),
        _chunk(
            [
                {
                    "functionCall": {
                        "id": "fc-1",
                        "name": "get_weather",
                        "args": {"city": "Oslo", "unit": "celsius"},
                    }
                },
                {"functionCall": {"name": "get_time", "args": {"zone": "CET"}}},
            ],
            "STOP",
            usageMetadata=usage,
            responseId="r9",
        ),
    )
    completion = await _complete(adapter)
    assert completion.text == "Checking."
    assert [(c.id, c.name) for c in completion.tool_calls] == [
        ("fc-1", "get_weather"),
        ("call_r9_1", "get_time"),
    ]
    assert completion.end.finish_reason == "tool_calls"
    assert completion.end.api_model == "gemini-3-flash"
    u = completion.end.usage
    assert (u.prompt_tokens, u.completion_tokens, u.total_tokens) == (100, 12, 112)
    assert (u.cached_prompt_tokens, u.reasoning_tokens) == (60, 7)


async def test_a_malformed_function_call_is_an_error_finish() -> None:
    completion = await _complete(_adapter_on(_chunk([], "MALFORMED_FUNCTION_CALL")))
    assert completion.end.finish_reason == "error"
    assert not completion.tool_calls


async def test_calls_cut_short_of_stop_keep_their_finish_reason() -> None:
    call = {"functionCall": {"name": "get_time", "args": {"zone": "UTC"}}}
    completion = await _complete(_adapter_on(_chunk([call], "MAX_TOKENS")))
    assert completion.end.finish_reason == "length"
    assert completion.tool_calls[0].id.startswith("call_")
