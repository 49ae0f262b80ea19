"""The official ``openai`` SDK against ``llmrelay up --simulate``: chat, a two-turn tool loop (streamed and
not, parallel calls), ``chat.completions.parse`` with a pydantic schema, an image, embeddings and the
Responses API with a tool, for a model of each provider."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.compat.compat_support import (
    API_KEY,
    MEDIA_TOKENS,
    PARALLEL_PROMPT,
    PNG_DATA_URL,
    City,
    Stack,
    ToolBox,
    by_embedding_model,
    by_provider,
    expected_city,
)


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=stack.v1, api_key=API_KEY, max_retries=0, timeout=60) as c:
        yield c


@by_provider()
def test_plain_chat_streamed_and_not_say_the_same(client: openai.OpenAI, model: str) -> None:
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    whole = client.chat.completions.create(model=model, messages=messages)
    text = whole.choices[0].message.content
    assert text
    assert whole.choices[0].finish_reason == "stop"
    assert whole.usage is not None and whole.usage.completion_tokens > 0
    chunks = client.chat.completions.create(model=model, messages=messages, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_two_turn_tool_loop_with_parallel_calls(client: openai.OpenAI, model: str, stream: bool) -> None:
    tools = ToolBox()
    messages: list[Any] = [{"role": "user", "content": PARALLEL_PROMPT}]
    if stream:
        with client.chat.completions.stream(model=model, messages=messages, tools=ToolBox.schemas()) as s:
            first = s.get_final_completion()
    else:
        first = client.chat.completions.create(model=model, messages=messages, tools=ToolBox.schemas())
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls or []
    assert len({call.id for call in calls}) == 2
    messages.append(choice.message.model_dump(exclude_none=True))
    for call in calls:
        assert call.type == "function"
        result = tools.run(call.function.name, json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert tools.calls == ToolBox.BOTH

    second = client.chat.completions.create(model=model, messages=messages, tools=ToolBox.schemas())
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content
    assert not second.choices[0].message.tool_calls


@by_provider()
def test_structured_output_is_parsed_into_the_pydantic_model(client: openai.OpenAI, model: str) -> None:
    reply = client.chat.completions.parse(
        model=model, messages=[{"role": "user", "content": "A city, please."}], response_format=City
    )
    assert reply.choices[0].message.parsed == expected_city()


@by_provider()
def test_an_image_reaches_the_model(client: openai.OpenAI, model: str) -> None:
    question = {"type": "text", "text": "What is in this picture?"}
    image = {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}
    plain = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [question]}])
    seen = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": [question, image]}]
    )
    assert seen.choices[0].message.content
    assert plain.usage is not None and seen.usage is not None
    # the simulator counts an image it received as MEDIA_TOKENS prompt tokens
    assert seen.usage.prompt_tokens - plain.usage.prompt_tokens == MEDIA_TOKENS


@by_embedding_model()
def test_embeddings(client: openai.OpenAI, model: str) -> None:
    reply = client.embeddings.create(model=model, input=["alpha", "bravo", "alpha"])
    vectors = [item.embedding for item in sorted(reply.data, key=lambda item: item.index)]
    assert len(vectors) == 3
    assert len({len(v) for v in vectors}) == 1 and len(vectors[0]) > 0
    assert vectors[0] == vectors[2] != vectors[1]
    assert reply.usage.prompt_tokens > 0


RESPONSES_TOOL: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
    "strict": True,
}


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_responses_api_with_a_tool(client: openai.OpenAI, model: str, stream: bool) -> None:
    tools = ToolBox()
    items: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]
    if stream:
        with client.responses.stream(model=model, input=items, tools=[RESPONSES_TOOL]) as s:
            first = s.get_final_response()
    else:
        first = client.responses.create(model=model, input=items, tools=[RESPONSES_TOOL])
    calls = [item for item in first.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["get_weather"]
    items += [item.model_dump(exclude_none=True) for item in first.output]
    for call in calls:
        result = tools.run(call.name, json.loads(call.arguments))
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": result})
    assert tools.calls == ToolBox.WEATHER

    second = client.responses.create(model=model, input=items, tools=[RESPONSES_TOOL])
    assert second.output_text
    assert not [item for item in second.output if item.type == "function_call"]
