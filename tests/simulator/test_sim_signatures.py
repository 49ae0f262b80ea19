"""The tokens the simulated providers issue and require back, through the official SDKs: Gemini thought
signatures, Anthropic thinking blocks, OpenAI encrypted reasoning items."""

from __future__ import annotations

from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import errors, types

from llmrelay.simulator import signatures
from llmrelay.simulator.providers import parse_call
from llmrelay.simulator.providers._format import WireError
from llmrelay.simulator.providers.gemini import thinking_model

THINKING = "gemini-3-flash-preview"
CITY = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


def _gemini_config() -> types.GenerateContentConfig:
    declarations = [
        types.FunctionDeclaration(name=name, parameters_json_schema=CITY) for name in ("weather", "time")
    ]
    return types.GenerateContentConfig(
        tools=[types.Tool(function_declarations=declarations)], automatic_function_calling=NO_AFC
    )


def _answers(content: types.Content) -> types.Content:
    parts = [
        types.Part(function_response=types.FunctionResponse(name=p.function_call.name, response={"ok": 1}))
        for p in content.parts or ()
        if p.function_call is not None
    ]
    return types.Content(role="user", parts=parts)


def test_gemini_3_and_later_are_the_thinking_models() -> None:
    assert thinking_model("gemini-3-flash-preview") and thinking_model("gemini-3.1-pro-preview")
    assert thinking_model("models/gemini-4-pro")
    assert not thinking_model("gemini-2.5-flash") and not thinking_model("gemini-2.0-flash")


async def test_gemini_thinking_model_signs_the_first_call_and_requires_it_back(
    genai_client: genai.Client,
) -> None:
    ask = types.Content(role="user", parts=[types.Part(text="weather and time [[sim:calls=2]]")])
    reply = await genai_client.aio.models.generate_content(
        model=THINKING, contents=[ask], config=_gemini_config()
    )
    content = reply.candidates[0].content
    assert [bool(p.thought_signature) for p in content.parts] == [True, False]

    # The whole reply sent back, as the SDK's own history does it: accepted.
    history = [ask, content, _answers(content)]
    again = await genai_client.aio.models.generate_content(
        model=THINKING, contents=history, config=_gemini_config()
    )
    assert again.text

    stripped = content.model_copy(deep=True)
    stripped.parts[0].thought_signature = None
    with pytest.raises(errors.ClientError) as caught:
        await genai_client.aio.models.generate_content(
            model=THINKING, contents=[ask, stripped, _answers(content)], config=_gemini_config()
        )
    assert caught.value.code == 400
    assert "missing a thought_signature" in str(caught.value) and "default_api:weather" in str(caught.value)


def _gemini_body(signature: Any, args: Any, *, later_user_text: bool = False) -> dict[str, Any]:
    call: dict[str, Any] = {"functionCall": {"name": "weather", "args": args}}
    if signature is not None:
        call["thoughtSignature"] = signature
    contents = [
        {"role": "user", "parts": [{"text": "weather"}]},
        {"role": "model", "parts": [call]},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"ok": 1}}}]},
    ]
    if later_user_text:
        contents += [
            {"role": "model", "parts": [{"text": "fine"}]},
            {"role": "user", "parts": [{"text": "more"}]},
        ]
    return {"contents": contents}


def test_gemini_signature_moved_to_other_arguments_is_refused() -> None:
    good = signatures.sign("gemini", "r1", ["weather", {"city": "Oslo"}])
    parse_call("gemini", _gemini_body(good, {"city": "Oslo"}), THINKING)
    with pytest.raises(WireError, match="Corrupted thought signature"):
        parse_call("gemini", _gemini_body(good, {"city": "Rome"}), THINKING)
    with pytest.raises(WireError, match="Corrupted thought signature"):
        parse_call("gemini", _gemini_body("bm90IGEgc2lnbmF0dXJl", {"city": "Oslo"}), THINKING)


def test_gemini_checks_only_the_current_turn_and_only_thinking_models() -> None:
    # A call turn before the latest user text is an earlier turn: the API does not validate it.
    parse_call("gemini", _gemini_body(None, {"city": "Oslo"}, later_user_text=True), THINKING)
    parse_call("gemini", _gemini_body(None, {"city": "Oslo"}), "gemini-2.0-flash")
    with pytest.raises(WireError, match="position 1"):
        parse_call("gemini", _gemini_body(None, {"city": "Oslo"}), THINKING)


ANTHROPIC_MODEL = "claude-sonnet-4-5"
WEATHER_TOOL = {"name": "weather", "input_schema": CITY}
THINK = {"type": "enabled", "budget_tokens": 1024}


async def test_anthropic_streams_a_signed_thinking_block_and_requires_it_back(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    ask = {"role": "user", "content": "weather?"}
    kinds: list[str] = []
    async with anthropic_client.messages.stream(
        model=ANTHROPIC_MODEL, max_tokens=4096, thinking=THINK, tools=[WEATHER_TOOL], messages=[ask]
    ) as stream:
        async for event in stream:
            if event.type == "content_block_delta":
                kinds.append(event.delta.type)
        message = await stream.get_final_message()
    assert kinds[:2] == ["thinking_delta", "signature_delta"]
    assert [b.type for b in message.content] == ["thinking", "tool_use"]
    thinking, use = message.content
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny"}]}

    whole = [ask, {"role": "assistant", "content": [b.model_dump() for b in message.content]}, result]
    again = await anthropic_client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=4096, thinking=THINK, tools=[WEATHER_TOOL], messages=whole
    )
    assert again.content[0].type == "thinking" and again.content[-1].type == "text"

    without = [ask, {"role": "assistant", "content": [use.model_dump()]}, result]
    with pytest.raises(anthropic.BadRequestError, match="must start with a thinking block"):
        await anthropic_client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=4096, thinking=THINK, tools=[WEATHER_TOOL], messages=without
        )
    edited = {**thinking.model_dump(), "thinking": thinking.thinking + " (edited)"}
    tampered = [ask, {"role": "assistant", "content": [edited, use.model_dump()]}, result]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        await anthropic_client.messages.create(
            model=ANTHROPIC_MODEL, max_tokens=4096, thinking=THINK, tools=[WEATHER_TOOL], messages=tampered
        )
    # Without thinking on, a tool turn without thinking blocks is what it always was.
    plain = await anthropic_client.messages.create(
        model=ANTHROPIC_MODEL, max_tokens=4096, tools=[WEATHER_TOOL], messages=without
    )
    assert [b.type for b in plain.content] == ["text"]


OPENAI_TOOL = {"type": "function", "name": "weather", "parameters": CITY, "strict": False}


async def test_openai_responses_returns_encrypted_reasoning_and_verifies_it(
    openai_client: openai.AsyncOpenAI,
) -> None:
    include: Any = ["reasoning.encrypted_content"]
    first = await openai_client.responses.create(
        model="gpt-5", input="weather?", tools=[OPENAI_TOOL], store=False, include=include
    )
    reasoning, call = first.output
    assert reasoning.type == "reasoning" and reasoning.encrypted_content
    assert call.type == "function_call"

    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    kept = {
        "type": "reasoning",
        "id": reasoning.id,
        "encrypted_content": reasoning.encrypted_content,
        "summary": [],
    }
    fc = {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments}
    ask = {"role": "user", "content": "weather?"}
    again = await openai_client.responses.create(
        model="gpt-5", input=[ask, kept, fc, result], tools=[OPENAI_TOOL], store=False, include=include
    )
    assert again.output[-1].type == "message"
    # Without its reasoning item the call's output is still accepted, as by the real API.
    await openai_client.responses.create(
        model="gpt-5", input=[ask, fc, result], tools=[OPENAI_TOOL], store=False
    )

    forged = {**kept, "encrypted_content": "Zm9yZ2Vk"}
    with pytest.raises(openai.BadRequestError, match="could not be verified"):
        await openai_client.responses.create(
            model="gpt-5", input=[ask, forged, fc, result], tools=[OPENAI_TOOL], store=False
        )


async def test_openai_responses_streams_the_reasoning_item_whole_in_its_done_event(
    openai_client: openai.AsyncOpenAI,
) -> None:
    include: Any = ["reasoning.encrypted_content"]
    done: list[Any] = []
    stream = await openai_client.responses.create(
        model="gpt-5", input="weather?", tools=[OPENAI_TOOL], store=False, include=include, stream=True
    )
    async for event in stream:
        if event.type == "response.output_item.done":
            done.append(event)
        if event.type == "response.completed":
            completed = event.response
    assert [(e.output_index, e.item.type) for e in done] == [(0, "reasoning"), (1, "function_call")]
    assert done[0].item.encrypted_content
    assert [item.type for item in completed.output] == ["reasoning", "function_call"]
