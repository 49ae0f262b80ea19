"""pydantic-ai against ``llmrelay up --simulate``: ``OpenAIChatModel`` through ``OpenAIProvider(base_url=...)``
for chat, a two-turn tool loop (streamed and not, parallel calls), ``output_type`` (its default tool
output and ``NativeOutput``, which is a ``json_schema`` response format), an image, the ``Embedder``, and
``OpenAIResponsesModel`` with a tool, for a model of each provider."""

from __future__ import annotations

from typing import Any

import pytest

pytest.importorskip("pydantic_ai", reason="pydantic-ai is in the compat extra: pip install -e '.[compat]'")

from pydantic_ai import Agent, BinaryContent, Embedder, NativeOutput
from pydantic_ai.embeddings.openai import OpenAIEmbeddingModel
from pydantic_ai.models.openai import OpenAIChatModel, OpenAIResponsesModel
from pydantic_ai.providers.openai import OpenAIProvider

from tests.compat.compat_support import (
    API_KEY,
    MEDIA_TOKENS,
    PARALLEL_PROMPT,
    PNG_BYTES,
    City,
    Stack,
    ToolBox,
    by_embedding_model,
    by_provider,
    expected_city,
)


def chat_model(stack: Stack, model: str) -> OpenAIChatModel:
    return OpenAIChatModel(model, provider=OpenAIProvider(base_url=stack.v1, api_key=API_KEY))


def agent_with_tools(model: Any, tools: ToolBox) -> Agent[None, str]:
    agent: Agent[None, str] = Agent(model, instructions="Use the tools.", retries=0)
    agent.tool_plain(tools.get_weather)
    agent.tool_plain(tools.get_time)
    return agent


@by_provider()
async def test_plain_chat_streamed_and_not_say_the_same(stack: Stack, model: str) -> None:
    agent: Agent[None, str] = Agent(chat_model(stack, model), instructions="Be brief.")
    whole = await agent.run("Say hello")
    assert whole.output
    assert whole.usage.output_tokens > 0
    async with agent.run_stream("Say hello") as streamed:
        assert await streamed.get_output() == whole.output


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_two_turn_tool_loop_with_parallel_calls(stack: Stack, model: str, stream: bool) -> None:
    tools = ToolBox()
    agent = agent_with_tools(chat_model(stack, model), tools)
    if stream:
        async with agent.run_stream(PARALLEL_PROMPT) as streamed:
            output = await streamed.get_output()
    else:
        output = (await agent.run(PARALLEL_PROMPT)).output
    assert sorted(tools.calls) == sorted(ToolBox.BOTH)
    assert output


@by_provider()
async def test_output_type_through_the_default_output_tool(stack: Stack, model: str) -> None:
    agent = Agent(chat_model(stack, model), output_type=City, retries=0)
    assert (await agent.run("A city, please.")).output == expected_city()


@by_provider()
async def test_native_output_through_a_json_schema_response_format(stack: Stack, model: str) -> None:
    agent = Agent(chat_model(stack, model), output_type=NativeOutput(City), retries=0)
    assert (await agent.run("A city, please.")).output == expected_city()


@by_provider()
async def test_an_image_reaches_the_model(stack: Stack, model: str) -> None:
    agent: Agent[None, str] = Agent(chat_model(stack, model))
    plain = await agent.run(["What is in this picture?"])
    seen = await agent.run(["What is in this picture?", BinaryContent(PNG_BYTES, media_type="image/png")])
    assert seen.output
    # the simulator counts an image it received as MEDIA_TOKENS prompt tokens
    assert seen.usage.input_tokens - plain.usage.input_tokens == MEDIA_TOKENS


@by_embedding_model()
async def test_the_embedder(stack: Stack, model: str) -> None:
    embedder = Embedder(
        OpenAIEmbeddingModel(model, provider=OpenAIProvider(base_url=stack.v1, api_key=API_KEY))
    )
    result = await embedder.embed_documents(["alpha", "bravo", "alpha"])
    vectors = [list(v) for v in result.embeddings]
    assert len(vectors) == 3 and len(vectors[0]) > 0
    assert vectors[0] == vectors[2] != vectors[1]


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_responses_model_with_a_tool(stack: Stack, model: str, stream: bool) -> None:
    tools = ToolBox()
    responses = OpenAIResponsesModel(model, provider=OpenAIProvider(base_url=stack.v1, api_key=API_KEY))
    agent = agent_with_tools(responses, tools)
    if stream:
        async with agent.run_stream("What is the weather in Oslo?") as streamed:
            output = await streamed.get_output()
    else:
        output = (await agent.run("What is the weather in Oslo?")).output
    assert tools.calls == ToolBox.WEATHER
    assert output
