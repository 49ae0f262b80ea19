"""litellm as a client of ``llmrelay up --simulate`` (``model="openai/<name>"``, ``api_base=`` the façade),
for a model of each provider: chat, a two-turn tool loop (streamed and not, parallel calls), a pydantic
``response_format``, an image, ``embedding``, and ``responses`` with a tool. The conftest makes litellm use
the model cost map it ships instead of fetching one at import."""

from __future__ import annotations

import json
from typing import Any

import pytest

litellm = pytest.importorskip("litellm", reason="litellm is in the compat extra: pip install -e '.[compat]'")

from tests.compat.compat_support import (  # noqa: E402
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

# litellm's TypedDicts use ReadOnly, which pydantic warns about each time it builds their schemas.
pytestmark = pytest.mark.filterwarnings("ignore:.*using the `ReadOnly` qualifier:UserWarning")


def complete(stack: Stack, model: str, messages: list[Any], **params: Any) -> Any:
    return litellm.completion(
        model=f"openai/{model}",
        messages=messages,
        api_base=stack.v1,
        api_key=API_KEY,
        num_retries=0,
        **params,
    )


def complete_streamed(stack: Stack, model: str, messages: list[Any], **params: Any) -> Any:
    """A streamed completion, put back together by litellm's own chunk builder."""
    chunks = list(complete(stack, model, messages, stream=True, **params))
    return litellm.stream_chunk_builder(chunks, messages=messages)


@by_provider()
def test_plain_chat_streamed_and_not_say_the_same(stack: Stack, model: str) -> None:
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]
    whole = complete(stack, model, messages)
    text = whole.choices[0].message.content
    assert text
    assert whole.usage.completion_tokens > 0
    assert complete_streamed(stack, model, messages).choices[0].message.content == text


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_two_turn_tool_loop_with_parallel_calls(stack: Stack, model: str, stream: bool) -> None:
    tools = ToolBox()
    ask = complete_streamed if stream else complete
    messages: list[Any] = [{"role": "user", "content": PARALLEL_PROMPT}]
    first = ask(stack, model, messages, tools=ToolBox.schemas())
    assert first.choices[0].finish_reason == "tool_calls"
    message = first.choices[0].message
    assert len(message.tool_calls) == 2
    messages.append(message.model_dump(exclude_none=True))
    for call in message.tool_calls:
        result = tools.run(call.function.name, json.loads(call.function.arguments))
        messages.append({"role": "tool", "tool_call_id": call.id, "content": result})
    assert tools.calls == ToolBox.BOTH

    second = ask(stack, model, messages, tools=ToolBox.schemas())
    assert second.choices[0].message.content
    assert not second.choices[0].message.tool_calls


@by_provider()
def test_a_pydantic_response_format(stack: Stack, model: str) -> None:
    reply = complete(stack, model, [{"role": "user", "content": "A city, please."}], response_format=City)
    assert City.model_validate_json(reply.choices[0].message.content) == expected_city()


@by_provider()
def test_an_image_reaches_the_model(stack: Stack, model: str) -> None:
    question = {"type": "text", "text": "What is in this picture?"}
    image = {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}
    plain = complete(stack, model, [{"role": "user", "content": [question]}])
    seen = complete(stack, model, [{"role": "user", "content": [question, image]}])
    assert seen.choices[0].message.content
    # the simulator counts an image it received as MEDIA_TOKENS prompt tokens
    assert seen.usage.prompt_tokens - plain.usage.prompt_tokens == MEDIA_TOKENS


@by_embedding_model()
def test_embedding(stack: Stack, model: str) -> None:
    reply = litellm.embedding(
        model=f"openai/{model}", input=["alpha", "bravo", "alpha"], api_base=stack.v1, api_key=API_KEY
    )
    vectors = [item["embedding"] for item in reply.data]
    assert len(vectors) == 3 and len(vectors[0]) > 0
    assert vectors[0] == vectors[2] != vectors[1]


@by_provider()
def test_the_responses_api_with_a_tool(stack: Stack, model: str) -> None:
    tools = ToolBox()
    tool: dict[str, Any] = {"type": "function", **ToolBox.schemas()[0]["function"]}
    items: list[Any] = [{"role": "user", "content": "What is the weather in Oslo?"}]

    def ask() -> Any:
        return litellm.responses(
            model=f"openai/{model}", input=items, tools=[tool], api_base=stack.v1, api_key=API_KEY
        )

    first = ask()
    calls = [item for item in first.output if getattr(item, "type", None) == "function_call"]
    assert [call.name for call in calls] == ["get_weather"]
    for call in calls:
        items.append(
            {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}
        )
        result = tools.run(call.name, json.loads(call.arguments))
        items.append({"type": "function_call_output", "call_id": call.call_id, "output": result})
    assert tools.calls == ToolBox.WEATHER
    second = ask()
    assert not [item for item in second.output if getattr(item, "type", None) == "function_call"]
    assert second.output_text
