"""langchain-openai against ``llmrelay up --simulate``: ``ChatOpenAI(base_url=...)`` for chat, a two-turn
tool loop through ``bind_tools`` (streamed and not, parallel calls), ``with_structured_output`` (JSON
schema and function calling), an image, ``OpenAIEmbeddings``, and ``use_responses_api=True`` with a tool,
for a model of each provider."""

from __future__ import annotations

from typing import Any

import openai
import pytest

pytest.importorskip(
    "langchain_openai", reason="langchain-openai is in the compat extra: pip install -e '.[compat]'"
)

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.tools import BaseTool, tool
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

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
from tests.support import GEMINI_MODEL


def chat(stack: Stack, model: str, *, responses: bool = False) -> ChatOpenAI:
    return ChatOpenAI(
        model=model,
        base_url=stack.v1,
        api_key=API_KEY,
        max_retries=0,
        timeout=60,
        use_responses_api=responses,
    )


def ask(llm: Any, messages: list[BaseMessage], stream: bool) -> AIMessage:
    if not stream:
        reply = llm.invoke(messages)
        assert isinstance(reply, AIMessage)
        return reply
    whole: Any = None
    for chunk in llm.stream(messages):
        whole = chunk if whole is None else whole + chunk
    assert whole is not None
    return AIMessage(content=whole.content, tool_calls=whole.tool_calls, usage_metadata=whole.usage_metadata)


def tool_loop(llm: ChatOpenAI, tools: list[BaseTool], prompt: str, stream: bool) -> AIMessage:
    """The loop a langchain user writes: ask, run each tool call, send the results back, ask again."""
    bound = llm.bind_tools(tools)
    by_name = {t.name: t for t in tools}
    messages: list[BaseMessage] = [HumanMessage(prompt)]
    first = ask(bound, messages, stream)
    assert first.tool_calls
    messages.append(first)
    messages += [by_name[call["name"]].invoke(call) for call in first.tool_calls]
    second = ask(bound, messages, stream)
    assert not second.tool_calls
    return second


@by_provider()
def test_plain_chat_streamed_and_not_say_the_same(stack: Stack, model: str) -> None:
    messages: list[BaseMessage] = [SystemMessage("Be brief."), HumanMessage("Say hello")]
    whole = ask(chat(stack, model), messages, stream=False)
    assert isinstance(whole.content, str) and whole.content
    assert ask(chat(stack, model), messages, stream=True).content == whole.content


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_a_two_turn_tool_loop_with_parallel_calls(stack: Stack, model: str, stream: bool) -> None:
    tools = ToolBox()
    final = tool_loop(
        chat(stack, model), [tool(tools.get_weather), tool(tools.get_time)], PARALLEL_PROMPT, stream
    )
    assert tools.calls == ToolBox.BOTH
    assert final.content


@by_provider()
def test_with_structured_output_through_a_json_schema(stack: Stack, model: str) -> None:
    structured = chat(stack, model).with_structured_output(City, method="json_schema")
    assert structured.invoke("A city, please.") == expected_city()


@by_provider("openai", "anthropic")
def test_with_structured_output_through_function_calling(stack: Stack, model: str) -> None:
    structured = chat(stack, model).with_structured_output(City, method="function_calling")
    assert structured.invoke("A city, please.") == expected_city()


def test_function_calling_structured_output_on_gemini_needs_parallel_tool_calls_left_unset(
    stack: Stack,
) -> None:
    """langchain's function_calling method sends ``parallel_tool_calls: false`` (``with_structured_output``
    in ``langchain_openai/chat_models/base.py``, 1.7.4), which Gemini cannot honour: refused naming the
    parameter (never dropped); ``disabled_params`` leaves it out, and then it works."""
    refused = chat(stack, GEMINI_MODEL).with_structured_output(City, method="function_calling")
    with pytest.raises(openai.BadRequestError) as caught:
        refused.invoke("A city, please.")
    assert caught.value.param == "parallel_tool_calls"
    llm = chat(stack, GEMINI_MODEL)
    llm.disabled_params = {"parallel_tool_calls": None}
    structured = llm.with_structured_output(City, method="function_calling")
    assert structured.invoke("A city, please.") == expected_city()


@by_provider()
def test_an_image_reaches_the_model(stack: Stack, model: str) -> None:
    question = {"type": "text", "text": "What is in this picture?"}
    image = {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}
    llm = chat(stack, model)
    plain = ask(llm, [HumanMessage(content=[question])], stream=False)
    seen = ask(llm, [HumanMessage(content=[question, image])], stream=False)
    assert seen.content
    assert plain.usage_metadata is not None and seen.usage_metadata is not None
    # the simulator counts an image it received as MEDIA_TOKENS prompt tokens
    assert seen.usage_metadata["input_tokens"] - plain.usage_metadata["input_tokens"] == MEDIA_TOKENS


@by_embedding_model()
def test_openai_embeddings(stack: Stack, model: str) -> None:
    # check_embedding_ctx_length=False: otherwise the texts are tokenized with tiktoken first, which
    # downloads its encoding, and sent as token ids (only OpenAI's own models read those)
    embeddings = OpenAIEmbeddings(
        model=model, base_url=stack.v1, api_key=API_KEY, check_embedding_ctx_length=False, max_retries=0
    )
    vectors = embeddings.embed_documents(["alpha", "bravo", "alpha"])
    assert len(vectors) == 3 and len(vectors[0]) > 0
    assert vectors[0] == vectors[2] != vectors[1]
    assert embeddings.embed_query("alpha") == vectors[0]


@by_provider()
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
def test_the_responses_api_with_a_tool(stack: Stack, model: str, stream: bool) -> None:
    tools = ToolBox()
    final = tool_loop(
        chat(stack, model, responses=True), [tool(tools.get_weather)], "Weather in Oslo?", stream
    )
    assert tools.calls == ToolBox.WEATHER
    assert final.text
