"""The OpenAI Agents SDK (``openai-agents``) against ``llmrelay up --simulate``, for a model of each
provider: ``OpenAIChatCompletionsModel`` for chat, a two-turn tool loop with ``@function_tool``
(streamed and not, parallel calls), a handoff, ``output_type`` and an image; and the SDK's default path,
``Agent(model=...)`` on the Responses API through ``set_default_openai_client``. Tracing is off: it
would export to OpenAI."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import openai
import pytest

pytest.importorskip("agents", reason="openai-agents is in the compat extra: pip install -e '.[compat]'")

from agents import (
    Agent,
    OpenAIChatCompletionsModel,
    Runner,
    function_tool,
    set_default_openai_api,
    set_default_openai_client,
    set_tracing_disabled,
)

from tests.compat.compat_support import (
    API_KEY,
    MEDIA_TOKENS,
    PARALLEL_PROMPT,
    PNG_DATA_URL,
    City,
    Stack,
    ToolBox,
    by_provider,
    expected_city,
)

set_tracing_disabled(True)


@pytest.fixture
def client(stack: Stack) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=stack.v1, api_key=API_KEY, max_retries=0, timeout=60)


def function_tools(tools: ToolBox) -> list[Any]:
    return [function_tool(tools.get_weather), function_tool(tools.get_time)]


async def run(agent: Agent[Any], prompt: Any, stream: bool) -> Any:
    if not stream:
        return await Runner.run(agent, prompt)
    result = Runner.run_streamed(agent, prompt)
    async for _event in result.stream_events():
        pass
    return result


@by_provider()
async def test_plain_chat_streamed_and_not_say_the_same(client: openai.AsyncOpenAI, model: str) -> None:
    agent = Agent(name="plain", instructions="Be brief.", model=OpenAIChatCompletionsModel(model, client))
    whole = await run(agent, "Say hello", stream=False)
    assert isinstance(whole.final_output, str) and whole.final_output
    assert (await run(agent, "Say hello", stream=True)).final_output == whole.final_output


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_a_two_turn_tool_loop_with_parallel_calls(
    client: openai.AsyncOpenAI, model: str, stream: bool
) -> None:
    tools = ToolBox()
    agent = Agent(
        name="tools",
        instructions="Use the tools.",
        model=OpenAIChatCompletionsModel(model, client),
        tools=function_tools(tools),
    )
    result = await run(agent, PARALLEL_PROMPT, stream)
    assert sorted(tools.calls) == sorted(ToolBox.BOTH)
    assert isinstance(result.final_output, str) and result.final_output


@by_provider()
async def test_a_handoff_reaches_the_other_agent(client: openai.AsyncOpenAI, model: str) -> None:
    # a handoff is a tool call (transfer_to_<agent>) whose result the next agent's turn follows
    specialist = Agent(
        name="specialist", instructions="Answer.", model=OpenAIChatCompletionsModel(model, client)
    )
    triage = Agent(
        name="triage",
        instructions="Hand off.",
        model=OpenAIChatCompletionsModel(model, client),
        handoffs=[specialist],
    )
    result = await Runner.run(triage, "Please help.")
    assert result.last_agent is specialist
    assert isinstance(result.final_output, str) and result.final_output


@by_provider()
async def test_output_type(client: openai.AsyncOpenAI, model: str) -> None:
    agent = Agent(name="city", model=OpenAIChatCompletionsModel(model, client), output_type=City)
    result = await Runner.run(agent, "A city, please.")
    assert result.final_output == expected_city()


@by_provider()
async def test_an_image_reaches_the_model(client: openai.AsyncOpenAI, model: str) -> None:
    agent = Agent(name="eyes", model=OpenAIChatCompletionsModel(model, client))
    question: dict[str, Any] = {"type": "input_text", "text": "What is in this picture?"}
    image: dict[str, Any] = {"type": "input_image", "image_url": PNG_DATA_URL, "detail": "auto"}
    plain = await Runner.run(agent, [{"role": "user", "content": [question]}])
    seen = await Runner.run(agent, [{"role": "user", "content": [question, image]}])
    assert seen.final_output
    tokens = [r.context_wrapper.usage.input_tokens for r in (plain, seen)]
    # the simulator counts an image it received as MEDIA_TOKENS prompt tokens
    assert tokens[1] - tokens[0] == MEDIA_TOKENS


@pytest.fixture
def default_client(client: openai.AsyncOpenAI) -> Iterator[None]:
    """The SDK's default model provider pointed at the stack, on its default API (Responses)."""
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("responses")
    yield
    set_default_openai_client(openai.AsyncOpenAI(api_key=API_KEY), use_for_tracing=False)


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.usefixtures("default_client")
async def test_the_default_agent_with_a_function_tool(model: str, stream: bool) -> None:
    tools = ToolBox()
    agent = Agent(name="default", instructions="Use the tools.", model=model, tools=function_tools(tools)[:1])
    result = await run(agent, "What is the weather in Oslo?", stream)
    assert tools.calls == ToolBox.WEATHER
    assert isinstance(result.final_output, str) and result.final_output
