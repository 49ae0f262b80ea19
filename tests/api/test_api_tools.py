"""Agents' requests through the façade: tools, tool results, content parts, structured output and the
parameters OpenAI defines, over /v1/chat/completions (the official openai SDK) and JSON-RPC. The provider
is a scripted adapter, so what is tested is the façade and the relay."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
from api_support import rpc, sse_events

from llmrelay.producer.api.openai_compat import ChatRequestError, parse_chat
from llmrelay.producer.follower import ReplayFilter
from llmrelay.shared import Settings
from llmrelay.shared.errors import StreamRestartedError
from llmrelay.shared.events import ToolCallEvent
from llmrelay.shared.models import DocumentPart, ImagePart, JSONSchemaFormat, NamedToolChoice, TextPart, Usage
from llmrelay.worker.providers import StreamEnd
from llmrelay.worker.providers.base import StreamItem, ToolCallDelta
from llmrelay.worker.service import Worker
from tests.queue.scripted import ScriptedAdapter

Serve = Callable[..., Awaitable[Any]]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
        "strict": True,
    },
}
CALLS: list[StreamItem] = [
    "Let me look.",
    ToolCallDelta(0, id="call_a", name="get_weather"),
    ToolCallDelta(0, arguments='{"city":'),
    ToolCallDelta(0, arguments=' "Oslo"}'),
    ToolCallDelta(1, id="call_b", name="get_weather", arguments='{"city": "Rome"}'),
    StreamEnd("tool_calls", Usage.of(20, 9, cached=8, reasoning=3)),
]


def parse(**body: Any) -> Any:
    body.setdefault("model", "gpt-6.1-terra")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return parse_chat(body, {}).request


# -- reading a chat body ---------------------------------------------------------------------------------


def test_tools_tool_choice_and_parallel_calls_map_onto_the_contract() -> None:
    request = parse(
        tools=[WEATHER],
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
    )
    assert request.tools[0].name == "get_weather" and request.tools[0].strict is True
    assert request.tools[0].description == "The weather in a city"
    assert request.tools[0].parameters["required"] == ["city"]
    assert request.tool_choice == NamedToolChoice(name="get_weather")
    assert request.parallel_tool_calls is False
    for choice in ("auto", "none", "required"):
        assert parse(tools=[WEATHER], tool_choice=choice).tool_choice == choice


def test_a_tool_loop_history_is_read_with_its_arguments_parsed() -> None:
    request = parse(
        tools=[WEATHER],
        messages=[
            {"role": "user", "content": "weather in Oslo?", "name": "alice"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_a",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": [{"type": "text", "text": "4 C"}]},
        ],
    )
    user, assistant, tool = request.messages
    assert user.name == "alice"
    assert assistant.content is None and assistant.tool_calls is not None
    assert (assistant.tool_calls[0].id, assistant.tool_calls[0].arguments) == ("call_a", {"city": "Oslo"})
    assert (tool.role, tool.tool_call_id, tool.text) == ("tool", "call_a", "4 C")


@pytest.mark.parametrize("arguments", ['"just a string"', "[1]", "{not json", 5])
def test_tool_call_arguments_that_are_not_a_json_object_string_are_refused_naming_them(
    arguments: Any,
) -> None:
    call = {"id": "c", "type": "function", "function": {"name": "f", "arguments": arguments}}
    with pytest.raises(ChatRequestError) as info:
        parse(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}])
    assert info.value.param == "messages.1.tool_calls.0.function.arguments"


def test_content_parts_keep_their_separation_images_and_documents() -> None:
    request = parse(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Hello"},
                    {"type": "text", "text": "world"},
                    {
                        "type": "image_url",
                        "image_url": {"url": f"data:image/png;base64,{PNG}", "detail": "low"},
                    },
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                    {
                        "type": "file",
                        "file": {"file_data": f"data:application/pdf;base64,{PDF}", "filename": "a.pdf"},
                    },
                ],
            }
        ]
    )
    parts = request.messages[0].content
    assert parts[:2] == [TextPart(text="Hello"), TextPart(text="world")]
    assert request.messages[0].text == "Hello\nworld"
    assert parts[2] == ImagePart(data=PNG, media_type="image/png", detail="low")
    assert parts[3] == ImagePart(url="https://example.com/cat.jpg")
    assert parts[4] == DocumentPart(data=PDF, media_type="application/pdf")


@pytest.mark.parametrize(
    ("part", "param"),
    [
        ({"type": "file", "file": {"file_id": "file-123"}}, "messages.0.content.0.file.file_data"),
        ({"type": "image_url", "image_url": {"detail": "low"}}, "messages.0.content.0.image_url.url"),
        ({"type": "input_audio", "input_audio": {"data": "x", "format": "wav"}}, "messages.0.content.0"),
        ({"type": "image_url", "image_url": {"url": "data:image/tiff;base64,AAAA"}}, "messages.0.content"),
    ],
)
def test_content_parts_we_cannot_carry_are_refused_naming_them(part: dict[str, Any], param: str) -> None:
    with pytest.raises(ChatRequestError) as info:
        parse(messages=[{"role": "user", "content": [part]}])
    assert info.value.param is not None and info.value.param.startswith(param)


def test_a_json_schema_format_with_an_unknown_field_is_refused_naming_it() -> None:
    spec = {"name": "x", "schema": {"type": "object"}, "description": "kept out", "examples": []}
    with pytest.raises(ChatRequestError) as info:
        parse(response_format={"type": "json_schema", "json_schema": spec})
    assert info.value.param == "response_format.json_schema.examples"


def test_response_format_reasoning_effort_and_seed_are_honoured() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = parse(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "thing", "schema": schema, "strict": True},
        },
        reasoning_effort="low",
        seed=11,
        store=False,
        service_tier="auto",
    )
    assert request.response_format == JSONSchemaFormat(name="thing", schema=schema, strict=True)
    assert request.reasoning is not None and request.reasoning.effort == "low"
    assert request.seed == 11
    assert parse(response_format={"type": "json_object"}).response_format.type == "json_object"
    assert parse(response_format={"type": "text"}).response_format.type == "text"


def test_provider_options_pass_through_extra_body() -> None:
    request = parse(provider_options={"openai": {"verbosity": "low"}})
    assert request.provider_options == {"openai": {"verbosity": "low"}}


# -- served: the openai SDK against the façade, a scripted provider behind it ------------------------------


@pytest.fixture
async def scripted(settings: Settings, serve: Serve) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    workers: list[Worker] = []

    async def start(*scripts: Any) -> tuple[ScriptedAdapter, Any]:
        adapter = ScriptedAdapter(*scripts)
        worker = Worker(settings, providers=["openai"], concurrency=2, adapters={"openai": adapter})
        await worker.start()
        workers.append(worker)
        return adapter, await serve(settings)

    yield start
    for worker in workers:
        await worker.stop(grace=1)


def sdk_for(live: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


async def test_the_openai_sdk_gets_tool_calls_and_usage_details(scripted: Any) -> None:
    adapter, live = await scripted(CALLS)
    async with sdk_for(live) as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-6.1-terra",
            messages=[{"role": "user", "content": "weather?"}],
            tools=[WEATHER],  # type: ignore[list-item]
            tool_choice="required",
            parallel_tool_calls=True,
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Let me look."
    calls = choice.message.tool_calls or []
    assert [(c.id, c.type, c.function.name) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", "function", "get_weather"),
        ("call_b", "function", "get_weather"),
    ]
    assert [orjson.loads(c.function.arguments) for c in calls] == [{"city": "Oslo"}, {"city": "Rome"}]  # type: ignore[union-attr]
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 8
    assert (
        usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 3
    )
    seen = adapter.requests[-1]
    assert seen.tool_choice == "required" and seen.parallel_tool_calls is True


async def test_a_two_turn_tool_loop_reaches_the_provider_as_the_contract(scripted: Any) -> None:
    adapter, live = await scripted(CALLS, ["It is 4 C in Oslo.", StreamEnd("stop", Usage.of(30, 6))])
    async with sdk_for(live) as sdk:
        messages: list[Any] = [{"role": "user", "content": "weather in Oslo?"}]
        first = await sdk.chat.completions.create(model="gpt-6.1-terra", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
        message = first.choices[0].message
        messages.append(message.model_dump())  # as agents append it: with its null fields
        for call in message.tool_calls or []:
            messages.append({"role": "tool", "tool_call_id": call.id, "content": "4 C"})
        second = await sdk.chat.completions.create(model="gpt-6.1-terra", messages=messages, tools=[WEATHER])  # type: ignore[list-item]
    assert second.choices[0].message.content == "It is 4 C in Oslo."
    assert second.choices[0].message.tool_calls is None
    seen = adapter.requests[-1].messages
    assert [m.role for m in seen] == ["user", "assistant", "tool", "tool"]
    assert seen[1].tool_calls is not None and seen[1].tool_calls[0].arguments == {"city": "Oslo"}
    assert [m.tool_call_id for m in seen[2:]] == ["call_a", "call_b"]


async def test_streamed_tool_calls_come_in_openais_chunk_shape(scripted: Any) -> None:
    _adapter, live = await scripted(CALLS)
    body = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "w?"}], "tools": [WEATHER],
            "stream": True, "stream_options": {"include_usage": True}}  # fmt: skip
    async with live.client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    frames = [e["data"] for e in sse_events(response.text) if e["data"] != "[DONE]"]
    deltas = [
        f["choices"][0]["delta"]["tool_calls"][0]
        for f in frames
        if f["choices"] and "tool_calls" in f["choices"][0]["delta"]
    ]
    firsts = [d for d in deltas if "id" in d]
    assert [(d["index"], d["id"], d["type"], d["function"]["name"]) for d in firsts] == [
        (0, "call_a", "function", "get_weather"),
        (1, "call_b", "function", "get_weather"),
    ]
    for d in deltas:
        if "id" not in d:
            assert set(d) == {"index", "function"} and set(d["function"]) == {"arguments"}
    joined: dict[int, str] = {}
    for d in deltas:
        joined[d["index"]] = joined.get(d["index"], "") + d["function"]["arguments"]
    assert joined == {0: '{"city": "Oslo"}', 1: '{"city": "Rome"}'}
    finishes = [
        f["choices"][0]["finish_reason"] for f in frames if f["choices"] and f["choices"][0]["finish_reason"]
    ]
    assert finishes == ["tool_calls"]
    assert frames[-1]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 3}


async def test_the_openai_sdk_assembles_a_streamed_tool_call(scripted: Any) -> None:
    _adapter, live = await scripted(CALLS)
    async with (
        sdk_for(live) as sdk,
        sdk.chat.completions.stream(
            model="gpt-6.1-terra",
            messages=[{"role": "user", "content": "w?"}],
            tools=[WEATHER],  # type: ignore[list-item]
        ) as stream,
    ):
        final = await stream.get_final_completion()
    calls = final.choices[0].message.tool_calls or []
    assert [(c.id, c.function.arguments) for c in calls] == [  # type: ignore[union-attr]
        ("call_a", '{"city": "Oslo"}'),
        ("call_b", '{"city": "Rome"}'),
    ]
    assert final.choices[0].finish_reason == "tool_calls"


async def test_structured_output_parses_with_the_openai_sdk(scripted: Any) -> None:
    _adapter, live = await scripted(['{"city": "Oslo", "temp": 4}', StreamEnd("stop", Usage.of(5, 5))])
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
              "required": ["city", "temp"], "additionalProperties": False}  # fmt: skip
    async with sdk_for(live) as sdk:
        completion = await sdk.chat.completions.create(
            model="gpt-6.1-terra",
            messages=[{"role": "user", "content": "weather as JSON"}],
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "weather", "schema": schema, "strict": True},
            },
        )
    assert orjson.loads(completion.choices[0].message.content or "") == {"city": "Oslo", "temp": 4}


async def test_a_reply_that_fails_its_schema_is_a_502_carrying_the_raw_text(scripted: Any) -> None:
    _adapter, live = await scripted(["no JSON here", StreamEnd("stop", Usage.of(5, 3))])
    async with sdk_for(live) as sdk:
        with pytest.raises(openai.APIStatusError) as info:
            await sdk.chat.completions.create(
                model="gpt-6.1-terra",
                messages=[{"role": "user", "content": "JSON please"}],
                response_format={"type": "json_object"},
            )
    assert info.value.status_code == 502
    assert info.value.code == "output_validation"
    assert info.value.param == "response_format"


async def test_anthropic_parameter_bounds_are_refused_by_the_facade(scripted: Any) -> None:
    _adapter, live = await scripted(CALLS)
    async with sdk_for(live) as sdk:
        for extra, param in (({"temperature": 1.8}, "temperature"), ({"seed": 4}, "seed")):
            with pytest.raises(openai.BadRequestError) as info:
                await sdk.chat.completions.create(
                    model="claude-haiku-5-5", messages=[{"role": "user", "content": "x"}], **extra
                )
            assert info.value.param == param
    async with live.client() as client:
        response = await client.post("/jsonrpc", json=rpc("llm.complete", {
            "model": "claude-haiku-5-5", "messages": [{"role": "user", "content": "x"}], "temperature": 1.8}))  # fmt: skip
    error = response.json()["error"]
    assert error["code"] == -32001 and error["data"]["data"]["field"] == "temperature"


# -- JSON-RPC ----------------------------------------------------------------------------------------------


async def test_jsonrpc_stream_carries_tool_call_events_and_complete_the_calls(scripted: Any) -> None:
    adapter, live = await scripted(CALLS)
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "w?"}],
              "tools": [WEATHER["function"]], "tool_choice": {"name": "get_weather"}, "seed": 3,
              "reasoning": {"effort": "low"}, "provider_options": {"openai": {"verbosity": "low"}}}  # fmt: skip
    async with live.client() as client:
        streamed = await client.post("/jsonrpc", json=rpc("llm.stream", params, "t-1"))
        completed = await client.post("/jsonrpc", json=rpc("llm.complete", params))
    events = sse_events(streamed.text)
    results = [e["data"]["result"] for e in events]
    kinds = [r["type"] for r in results]
    assert kinds[0] == "token" and kinds[-1] == "done" and "tool_call" in kinds
    calls = [r for r in results if r["type"] == "tool_call"]
    assert calls[0] | {"index": 0} == {"type": "tool_call", "index": 0, "call_index": 0, "id": "call_a",
                                       "name": "get_weather", "arguments": calls[0]["arguments"]}  # fmt: skip
    rid, index = events[1]["id"].rsplit(":", 1)
    assert int(index) == results[1]["index"]
    async with live.client() as client:
        resumed = await client.post(
            "/jsonrpc",
            json=rpc("llm.stream", params | {"request_id": rid}, "t-1"),
            headers={"Last-Event-ID": f"{rid}:{index}"},
        )
    assert [e["data"]["result"] for e in sse_events(resumed.text)] == results[2:]
    result = completed.json()["result"]
    assert [c["id"] for c in result["tool_calls"]] == ["call_a", "call_b"]
    assert result["finish_reason"] == "tool_calls" and result["usage"]["cached_prompt_tokens"] == 8
    seen = adapter.requests[-1]
    assert seen.seed == 3 and seen.reasoning is not None and seen.reasoning.effort == "low"
    assert seen.provider_options == {"openai": {"verbosity": "low"}}


async def test_jsonrpc_complete_carries_parsed(scripted: Any) -> None:
    _adapter, live = await scripted(['{"ok": true}', StreamEnd("stop", Usage.of(5, 3))])
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "j"}],
              "response_format": {"type": "json_schema", "name": "r", "schema": {"type": "object"}}}  # fmt: skip
    async with live.client() as client:
        response = await client.post("/jsonrpc", json=rpc("llm.complete", params))
    assert response.json()["result"]["parsed"] == {"ok": True}


# -- the replay filter with tool calls ----------------------------------------------------------------------


def test_replay_passes_only_what_a_retried_attempt_adds_to_its_calls() -> None:
    replay = ReplayFilter()
    assert replay.token("Hi") == "Hi"
    assert replay.tool_call(ToolCallEvent(2, 0, "c0", "f", '{"a"')) is not None
    replay.restart()
    assert replay.token("H") == "" and replay.token("i") == ""
    # The retried attempt sends the call whole: only what goes beyond the sent fragment passes, unnamed.
    rest = replay.tool_call(ToolCallEvent(6, 0, "c0", "f", '{"a": 1}'))
    assert rest is not None and (rest.id, rest.name, rest.arguments, rest.index) == (None, None, ": 1}", 6)
    assert replay.tool_call(ToolCallEvent(7, 1, "c1", "g", "{}")) is not None
    assert replay.token(" done") == " done"


@pytest.mark.parametrize(
    "again",
    [
        [ToolCallEvent(3, 0, "c0", "f", '{"b"')],  # other arguments
        [ToolCallEvent(3, 1, "c0", "f", '{"a"')],  # another position
        [ToolCallEvent(3, 0, "c9", "f", '{"a"')],  # another id
        [ToolCallEvent(3, 0, None, None, '{"a"')],  # not named where the call began
        ["Hi", "!"],  # text where the call was
    ],
)
def test_replay_refuses_a_retried_attempt_that_diverges_in_its_calls(again: list[Any]) -> None:
    replay = ReplayFilter()
    replay.token("Hi")
    replay.tool_call(ToolCallEvent(2, 0, "c0", "f", '{"a"'))
    replay.restart()

    def feed() -> None:
        for item in again:
            if isinstance(item, str):
                replay.token(item)
            else:
                replay.tool_call(item)

    with pytest.raises(StreamRestartedError):
        feed()


def test_replay_of_a_call_covered_exactly_passes_nothing() -> None:
    replay = ReplayFilter()
    replay.tool_call(ToolCallEvent(1, 0, "c0", "f", ""))
    replay.tool_call(ToolCallEvent(2, 0, None, None, "{}"))
    replay.restart()
    assert replay.tool_call(ToolCallEvent(4, 0, "c0", "f", "{")) is None
    assert replay.tool_call(ToolCallEvent(5, 0, None, None, "}")) is None
    assert replay.token("after") == "after"


async def test_raw_http_stays_in_openai_error_shape_for_a_bad_tool(client: httpx2.AsyncClient) -> None:
    body = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}]}  # fmt: skip
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"].startswith("tools.0")
