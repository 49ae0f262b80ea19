"""The agent's whole request in the contract: content parts, tools and their results, structured output,
reasoning, provider options; each bad input refused with the field named, before anything is queued."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pydantic import ValidationError

from llmrelay.shared.models import (
    MAX_INLINE_BYTES,
    ImagePart,
    JSONSchemaFormat,
    LLMRequest,
    LLMResponse,
    Message,
    NamedToolChoice,
    TextPart,
    ToolCall,
)

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16).decode()
PDF = base64.b64encode(b"%PDF-1.4\n%%EOF").decode()
WEATHER = {"name": "get_weather", "description": "Weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip


def make(**fields: Any) -> LLMRequest:
    fields.setdefault("messages", [{"role": "user", "content": "hi"}])
    return LLMRequest.model_validate({"model": "gpt-6.1-terra", **fields})


def refused(**fields: Any) -> str:
    with pytest.raises(ValidationError) as info:
        make(**fields)
    return str(info.value)


def test_a_two_turn_tool_loop_is_one_valid_request() -> None:
    request = make(
        tools=[WEATHER],
        tool_choice="auto",
        parallel_tool_calls=True,
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "name": "get_weather",
                                                   "arguments": {"city": "Oslo"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": '{"temp": 3}'},
        ],
    )
    assert request.messages[2].tool_calls == [ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})]
    assert request.messages[3].text == '{"temp": 3}'
    assert request.tools is not None and request.tools[0].parameters["required"] == ["city"]


def test_content_parts_carry_text_images_and_documents() -> None:
    request = make(messages=[{"role": "user", "content": [
        {"type": "text", "text": "Hello"},
        {"type": "text", "text": "world"},
        {"type": "image", "url": "https://example.com/cat.png", "detail": "low"},
        {"type": "image", "data": PNG, "media_type": "image/png"},
        {"type": "document", "data": PDF, "media_type": "application/pdf"},
    ]}])  # fmt: skip
    message = request.messages[0]
    assert message.text == "Hello\nworld"  # text parts keep their separation
    assert [p.type for p in message.parts] == ["text", "text", "image", "image", "document"]
    assert Message(role="user", content="plain").parts == [TextPart(text="plain")]


@pytest.mark.parametrize(
    ("part", "says"),
    [
        ({"type": "image", "data": PNG, "media_type": "image/tiff"}, "media_type"),
        ({"type": "image", "data": "not base64!", "media_type": "image/png"}, "base64"),
        ({"type": "image"}, "either 'url' or 'data'"),
        ({"type": "image", "url": "ftp://example.com/x.png"}, "http(s)"),
        ({"type": "image", "data": "A" * (MAX_INLINE_BYTES + 4), "media_type": "image/png"}, "at most"),
        ({"type": "document", "data": PDF, "media_type": "text/html"}, "media_type"),
        ({"type": "audio", "data": PNG}, "audio"),
    ],
)
def test_bad_parts_are_refused_with_the_reason(part: dict[str, Any], says: str) -> None:
    assert says in refused(messages=[{"role": "user", "content": [part]}])


def test_only_a_user_turn_carries_images() -> None:
    message = {"role": "assistant", "content": [{"type": "image", "data": PNG, "media_type": "image/png"}]}
    assert "only a user message" in refused(messages=[{"role": "user", "content": "x"}, message])


@pytest.mark.parametrize(
    ("messages", "says"),
    [
        ([{"role": "user", "content": "x"}, {"role": "tool", "tool_call_id": "call_9", "content": "r"}],
         "which no earlier assistant message made"),
        ([{"role": "user", "content": "x"}, {"role": "tool", "content": "r"}], "tool_call_id"),
        ([{"role": "user", "content": "x", "tool_call_id": "c"}], "only a tool message"),
        ([{"role": "user", "tool_calls": [{"id": "c", "name": "f"}]}], "only an assistant message"),
        ([{"role": "assistant"}, {"role": "user", "content": "x"}], "needs content"),
        ([{"role": "assistant", "tool_calls": [{"id": "c", "name": "bad name!"}]}], "tool_calls"),
    ],
)  # fmt: skip
def test_tool_turns_must_link_up(messages: list[dict[str, Any]], says: str) -> None:
    assert says in refused(messages=messages)


@pytest.mark.parametrize(
    ("fields", "says"),
    [
        ({"tools": [{**WEATHER, "parameters": {"type": "string"}}]}, "type 'object'"),
        ({"tools": [{**WEATHER, "parameters": {"type": "object", "properties": {"a": {"type": "strin"}}}}]},
         "not a valid JSON Schema"),
        ({"tools": [WEATHER, WEATHER]}, "a name of its own"),
        ({"tools": [WEATHER], "tool_choice": {"name": "get_time"}}, "not among the tools"),
        ({"tool_choice": "required"}, "needs tools"),
        ({"tools": [{**WEATHER, "name": "has space"}]}, "name"),
        ({"response_format": {"type": "json_schema", "name": "r", "schema": {"type": 12}}}, "not a valid JSON Schema"),
        ({"response_format": {"type": "xml"}}, "response_format"),
        ({"reasoning": {"effort": "extreme"}}, "effort"),
        ({"provider_options": {"mistral": {}}}, "provider_options"),
        ({"provider_options": {"openai": {"x": "y" * 20000}}}, "over"),
    ],
)  # fmt: skip
def test_bad_tools_and_formats_are_refused_with_the_field(fields: dict[str, Any], says: str) -> None:
    assert says in refused(**fields)


def test_structured_output_reasoning_seed_and_options_are_carried() -> None:
    request = make(
        tools=[WEATHER],
        tool_choice={"name": "get_weather"},
        response_format={"type": "json_schema", "name": "answer", "strict": True,
                         "schema": {"type": "object", "properties": {"ok": {"type": "boolean"}}}},
        reasoning={"effort": "low", "budget_tokens": 2048},
        seed=7,
        provider_options={"anthropic": {"top_k": 5}},
    )
    assert request.tool_choice == NamedToolChoice(name="get_weather")
    assert isinstance(request.response_format, JSONSchemaFormat)
    assert request.response_format.schema_["type"] == "object"
    assert request.model_dump(mode="json")["response_format"]["schema"] == request.response_format.schema_
    assert (request.reasoning and request.reasoning.effort, request.seed) == ("low", 7)
    again = LLMRequest.model_validate_json(request.model_dump_json())
    assert again == request


def test_the_response_carries_tool_calls_parsed_json_and_usage_details() -> None:
    response = LLMResponse(
        request_id="r", model="gpt-6.1-terra", provider="openai", content="",
        tool_calls=[ToolCall(id="call_1", name="get_weather", arguments={"city": "Oslo"})],
        finish_reason="tool_calls", parsed=None,
        usage={"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15,
               "cached_prompt_tokens": 8, "reasoning_tokens": 2},
    )  # fmt: skip
    again = LLMResponse.model_validate_json(response.model_dump_json())
    assert again == response and again.usage.cached_prompt_tokens == 8


def test_an_image_part_needs_one_source() -> None:
    with pytest.raises(ValidationError):
        ImagePart(url="https://example.com/a.png", data=PNG, media_type="image/png")
