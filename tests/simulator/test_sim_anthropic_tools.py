"""The official anthropic SDK against the simulator's tool use, tool results, JSON outputs and media."""

from __future__ import annotations

import base64
from typing import Any

import anthropic
import jsonschema
import orjson
import pytest

from llmrelay.simulator import SimulatorServer, reply_for
from llmrelay.simulator.providers import MEDIA_TOKENS
from tests.support import ANTHROPIC_MODEL

MODEL = ANTHROPIC_MODEL
WEATHER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
    "required": ["city", "days"],
}
TIME_SCHEMA: dict[str, Any] = {"type": "object", "properties": {"zone": {"type": "string"}}}
TOOLS: list[Any] = [
    {"name": "get_weather", "description": "Weather for a city", "input_schema": WEATHER_SCHEMA},
    {"name": "get_time", "input_schema": TIME_SCHEMA},
]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%%EOF\n").decode()


def _user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


async def test_auto_choice_calls_the_first_tool_with_schema_valid_input(
    sim: SimulatorServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    message = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("weather in oslo?"), tools=TOOLS
    )
    assert message.stop_reason == "tool_use"
    [block] = message.content
    assert block.type == "tool_use" and block.name == "get_weather"
    assert block.id.startswith("toolu_")
    jsonschema.validate(block.input, WEATHER_SCHEMA)
    assert message.usage.output_tokens > 0
    [record] = sim.requests(provider="anthropic")
    assert record["body"]["tools"][0]["input_schema"] == WEATHER_SCHEMA


async def test_streamed_tool_use_arrives_as_input_json_delta_fragments(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("weather?"), tools=TOOLS, stream=True
    )
    events = [event async for event in stream]
    starts = [e for e in events if e.type == "content_block_start"]
    assert [s.content_block.type for s in starts] == ["tool_use"]
    fragments = [
        e.delta.partial_json
        for e in events
        if e.type == "content_block_delta" and e.delta.type == "input_json_delta"
    ]
    assert len(fragments) > 1
    jsonschema.validate(orjson.loads("".join(fragments)), WEATHER_SCHEMA)
    delta = next(e for e in events if e.type == "message_delta")
    assert delta.delta.stop_reason == "tool_use"
    assert [e.type for e in events][-2:] == ["message_delta", "message_stop"]

    # The SDK's own accumulator joins the fragments into the block's input.
    async with anthropic_client.messages.stream(
        model=MODEL, max_tokens=200, messages=_user("weather? [[sim:calls=2]]"), tools=TOOLS
    ) as helper:
        final = await helper.get_final_message()
    assert [b.type for b in final.content] == ["tool_use", "tool_use"]
    assert [b.name for b in final.content if b.type == "tool_use"] == ["get_weather", "get_time"]
    assert final.stop_reason == "tool_use"
    ids = {b.id for b in final.content if b.type == "tool_use"}
    assert len(ids) == 2


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_calls_unless_disabled(
    anthropic_client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    async def names(**extra: Any) -> list[str]:
        async with (
            anthropic_client.messages.stream(
                model=MODEL, max_tokens=200, messages=_user("both [[sim:calls=2]]"), tools=TOOLS, **extra
            )
            if stream
            else _Plain(anthropic_client, messages=_user("both [[sim:calls=2]]"), tools=TOOLS, **extra) as m
        ):
            final = await m.get_final_message()
        return [b.name for b in final.content if b.type == "tool_use"]

    assert await names() == ["get_weather", "get_time"]
    assert await names(tool_choice={"type": "auto", "disable_parallel_tool_use": True}) == ["get_weather"]


class _Plain:
    """A non-streaming call behind the stream helper's shape, so one test body covers both."""

    def __init__(self, client: anthropic.AsyncAnthropic, **kwargs: Any) -> None:
        self._client, self._kwargs = client, kwargs

    async def __aenter__(self) -> _Plain:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def get_final_message(self) -> anthropic.types.Message:
        return await self._client.messages.create(model=MODEL, max_tokens=200, **self._kwargs)


async def test_tool_result_turn_gets_a_text_answer(anthropic_client: anthropic.AsyncAnthropic) -> None:
    first = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("weather in oslo?"), tools=TOOLS
    )
    [use] = first.content
    assert use.type == "tool_use"
    conversation: list[Any] = [
        *_user("weather in oslo?"),
        {"role": "assistant", "content": [use.model_dump(exclude_none=True)]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny 20C"}]},
    ]
    second = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=conversation, tools=TOOLS
    )
    assert second.stop_reason == "end_turn"
    assert second.content[0].type == "text" and second.content[0].text == "".join(reply_for("", 20))
    forced = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=conversation, tools=TOOLS, tool_choice={"type": "any"}
    )
    assert forced.stop_reason == "tool_use"


async def test_tool_choice_none_and_named(anthropic_client: anthropic.AsyncAnthropic) -> None:
    plain = await anthropic_client.messages.create(
        model=MODEL, max_tokens=200, messages=_user("hi"), tools=TOOLS, tool_choice={"type": "none"}
    )
    assert plain.stop_reason == "end_turn" and plain.content[0].type == "text"
    named = await anthropic_client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=_user("hi [[sim:calls=2]]"),
        tools=TOOLS,
        tool_choice={"type": "tool", "name": "get_time"},
    )
    assert [b.name for b in named.content if b.type == "tool_use"] == ["get_time"]


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        (
            [
                *_user("q"),
                {
                    "role": "user",
                    "content": [{"type": "tool_result", "tool_use_id": "toolu_nope", "content": "x"}],
                },
            ],
            "unexpected `tool_use_id`",
        ),
        (
            [
                *_user("q"),
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}],
                },
                *_user("never answered"),
            ],
            "without `tool_result` blocks",
        ),
        (
            [
                *_user("q"),
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}],
                },
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "here"},
                        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x"},
                    ],
                },
            ],
            "must come first",
        ),
        (
            [
                *_user("q"),
                {
                    "role": "assistant",
                    "content": [{"type": "tool_use", "id": "toolu_1", "name": "get_time", "input": {}}],
                },
                {"role": "assistant", "content": "again"},
            ],
            "without `tool_result` blocks",
        ),
    ],
)
async def test_broken_tool_result_linkage_is_a_400(
    anthropic_client: anthropic.AsyncAnthropic, messages: list[Any], message: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await anthropic_client.messages.create(model=MODEL, max_tokens=50, messages=messages, tools=TOOLS)
    assert message in str(info.value)
    assert info.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]


@pytest.mark.parametrize("stream", [False, True])
async def test_output_config_json_schema_reply_validates(
    anthropic_client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "string"}, "n": {"type": "integer"}}}
    fmt: Any = {"format": {"type": "json_schema", "schema": schema}}
    if stream:
        async with anthropic_client.messages.stream(
            model=MODEL, max_tokens=200, messages=_user("json please"), output_config=fmt
        ) as helper:
            final = await helper.get_final_message()
    else:
        final = await anthropic_client.messages.create(
            model=MODEL, max_tokens=200, messages=_user("json please"), output_config=fmt
        )
    assert final.stop_reason == "end_turn"
    assert final.content[0].type == "text"
    jsonschema.validate(orjson.loads(final.content[0].text), schema)


async def test_images_and_documents_count_in_the_prompt(
    sim: SimulatorServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    content: list[Any] = [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.png"}},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}},
        {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": PDF}},
        {"type": "text", "text": "describe these"},
    ]
    message = await anthropic_client.messages.create(
        model=MODEL, max_tokens=50, messages=[{"role": "user", "content": content}]
    )
    assert message.usage.input_tokens == 2 + 3 * MEDIA_TOKENS
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(reply_for("describe these", 20))
    [record] = sim.requests(provider="anthropic")
    assert [b["type"] for b in record["body"]["messages"][0]["content"]] == [
        "image",
        "image",
        "document",
        "text",
    ]
    with pytest.raises(anthropic.BadRequestError):
        await anthropic_client.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}],
        )


async def test_overloaded_inside_a_tool_stream(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL,
        max_tokens=200,
        messages=_user("[[sim:fault=overloaded_in_stream after=1]] weather"),
        tools=TOOLS,
        stream=True,
    )
    seen: list[str] = []

    async def read_all() -> None:
        async for event in stream:
            seen.append(event.type)

    with pytest.raises(anthropic.APIStatusError) as info:
        await read_all()
    assert info.value.status_code == 200
    assert seen[:3] == ["message_start", "content_block_start", "content_block_delta"]
