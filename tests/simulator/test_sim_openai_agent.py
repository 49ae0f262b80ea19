"""The official openai SDK against the simulator's agent surface: tools, tool results, JSON replies, media,
in Chat Completions and the Responses API, streamed and not."""

from __future__ import annotations

import base64
from typing import Any

import jsonschema
import openai
import orjson
import pytest

from llmrelay.simulator import SimulatorServer
from tests.support import OPENAI_MODEL

MODEL = OPENAI_MODEL
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
    "required": ["city"],
}
TIME = {"type": "object", "properties": {"zone": {"type": "string"}}}
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "get_weather", "parameters": WEATHER}},
    {"type": "function", "function": {"name": "get_time", "parameters": TIME}},
]
RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "get_weather", "parameters": WEATHER, "strict": False},
    {"type": "function", "name": "get_time", "parameters": TIME, "strict": False},
]
PIXEL = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
PDF = base64.b64encode(b"%PDF-1.4 sim").decode()


async def test_chat_calls_a_tool_then_answers_the_result(openai_client: openai.AsyncOpenAI) -> None:
    first = await openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "weather in Oslo?"}], tools=CHAT_TOOLS
    )
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    jsonschema.validate(orjson.loads(call.function.arguments), WEATHER)

    second = await openai_client.chat.completions.create(
        model=MODEL,
        tools=CHAT_TOOLS,
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": "12 degrees"},
        ],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    assert not second.choices[0].message.tool_calls


async def test_chat_streams_parallel_calls_in_fragments(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "both please [[sim:calls=2]]"}],
        tools=CHAT_TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    calls: dict[int, dict[str, Any]] = {}
    fragments: dict[int, int] = {}
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        for piece in choice.delta.tool_calls or ():
            entry = calls.setdefault(piece.index, {"id": None, "name": None, "arguments": ""})
            if piece.id:
                assert entry["id"] is None, "the id comes once, in the call's first chunk"
                entry["id"] = piece.id
            if piece.function and piece.function.name:
                entry["name"] = piece.function.name
            if piece.function and piece.function.arguments:
                entry["arguments"] += piece.function.arguments
                fragments[piece.index] = fragments.get(piece.index, 0) + 1
        finish = choice.finish_reason or finish
    assert finish == "tool_calls"
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert len({c["id"] for c in calls.values()}) == 2
    assert fragments[0] > 1, "arguments arrive in several fragments"
    jsonschema.validate(orjson.loads(calls[0]["arguments"]), WEATHER)
    jsonschema.validate(orjson.loads(calls[1]["arguments"]), TIME)


async def test_chat_tool_choice_and_parallel_flag(openai_client: openai.AsyncOpenAI) -> None:
    user: list[Any] = [{"role": "user", "content": "hi [[sim:calls=2]]"}]
    none = await openai_client.chat.completions.create(
        model=MODEL, messages=user, tools=CHAT_TOOLS, tool_choice="none"
    )
    assert none.choices[0].finish_reason == "stop" and not none.choices[0].message.tool_calls
    named = await openai_client.chat.completions.create(
        model=MODEL,
        messages=user,
        tools=CHAT_TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert [c.function.name for c in named.choices[0].message.tool_calls or []] == ["get_time"]  # type: ignore[union-attr]
    single = await openai_client.chat.completions.create(
        model=MODEL, messages=user, tools=CHAT_TOOLS, parallel_tool_calls=False
    )
    assert len(single.choices[0].message.tool_calls or []) == 1


async def test_chat_tool_result_without_its_call_is_a_400(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="preceeding message with 'tool_calls'"):
        await openai_client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "call_x", "content": "1"},
            ],
        )
    call: Any = {"id": "call_a", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    with pytest.raises(openai.BadRequestError, match="call_a"):
        await openai_client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "tool_calls": [call]},
                {"role": "user", "content": "and?"},
            ],
        )


@pytest.mark.parametrize("stream", [False, True])
async def test_chat_json_schema_reply_validates(openai_client: openai.AsyncOpenAI, stream: bool) -> None:
    fmt: Any = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER, "strict": False}}
    messages: Any = [{"role": "user", "content": "weather as JSON"}]
    if stream:
        chunks = await openai_client.chat.completions.create(
            model=MODEL, messages=messages, response_format=fmt, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    else:
        reply = await openai_client.chat.completions.create(
            model=MODEL, messages=messages, response_format=fmt
        )
        text = reply.choices[0].message.content or ""
    jsonschema.validate(orjson.loads(text), WEATHER)


async def test_chat_images_and_files_count_in_the_prompt(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    plain = await openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "look"}]
    )
    parts: Any = [
        {"type": "text", "text": "look"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"}},
        {"type": "file", "file": {"filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"}},
    ]
    rich = await openai_client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": parts}]
    )
    assert plain.usage is not None and rich.usage is not None
    assert rich.usage.prompt_tokens - plain.usage.prompt_tokens == 3 * 85


async def test_responses_calls_a_tool_then_answers_the_result(openai_client: openai.AsyncOpenAI) -> None:
    first = await openai_client.responses.create(
        model=MODEL, input="weather in Oslo?", tools=RESPONSES_TOOLS, store=False
    )
    [item] = first.output
    assert item.type == "function_call"
    assert item.name == "get_weather" and item.call_id.startswith("call_")
    jsonschema.validate(orjson.loads(item.arguments), WEATHER)

    second = await openai_client.responses.create(
        model=MODEL,
        tools=RESPONSES_TOOLS,
        store=False,
        input=[
            {"role": "user", "content": "weather in Oslo?"},
            {
                "type": "function_call",
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            },
            {"type": "function_call_output", "call_id": item.call_id, "output": "12 degrees"},
        ],
    )
    assert [o.type for o in second.output] == ["message"]
    assert second.output_text


async def test_responses_streams_parallel_calls(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(
        model=MODEL, input="both [[sim:calls=2]]", tools=RESPONSES_TOOLS, stream=True
    )
    added: dict[int, Any] = {}
    arguments: dict[int, str] = {}
    final = None
    async for event in stream:
        if event.type == "response.output_item.added" and event.item.type == "function_call":
            added[event.output_index] = event.item
        elif event.type == "response.function_call_arguments.delta":
            arguments[event.output_index] = arguments.get(event.output_index, "") + event.delta
        elif event.type == "response.completed":
            final = event.response
    assert [added[i].name for i in sorted(added)] == ["get_weather", "get_time"]
    jsonschema.validate(orjson.loads(arguments[0]), WEATHER)
    jsonschema.validate(orjson.loads(arguments[1]), TIME)
    assert final is not None and [o.type for o in final.output] == ["function_call", "function_call"]


async def test_responses_tool_choice_and_orphan_output(openai_client: openai.AsyncOpenAI) -> None:
    none = await openai_client.responses.create(
        model=MODEL, input="hi", tools=RESPONSES_TOOLS, tool_choice="none"
    )
    assert [o.type for o in none.output] == ["message"]
    named = await openai_client.responses.create(
        model=MODEL, input="hi", tools=RESPONSES_TOOLS, tool_choice={"type": "function", "name": "get_time"}
    )
    assert [getattr(o, "name", None) for o in named.output] == ["get_time"]
    with pytest.raises(openai.BadRequestError, match="No tool call found"):
        await openai_client.responses.create(
            model=MODEL,
            store=False,
            input=[
                {"role": "user", "content": "hi"},
                {"type": "function_call_output", "call_id": "call_x", "output": "1"},
            ],
        )


async def test_responses_json_schema_and_media(openai_client: openai.AsyncOpenAI) -> None:
    reply = await openai_client.responses.create(
        model=MODEL,
        input="weather as JSON",
        text={"format": {"type": "json_schema", "name": "weather", "schema": WEATHER, "strict": False}},
    )
    jsonschema.validate(orjson.loads(reply.output_text), WEATHER)
    plain = await openai_client.responses.create(model=MODEL, input=[{"role": "user", "content": "look"}])
    parts: Any = [
        {"type": "input_text", "text": "look"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PIXEL}", "detail": "auto"},
        {"type": "input_file", "filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    ]
    rich = await openai_client.responses.create(model=MODEL, input=[{"role": "user", "content": parts}])
    assert plain.usage is not None and rich.usage is not None
    assert rich.usage.input_tokens - plain.usage.input_tokens == 2 * 85
