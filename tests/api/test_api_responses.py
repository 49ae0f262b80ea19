"""The Responses API on the façade (``/v1/responses``), driven by the official openai SDK against a real
worker, Redis and the simulator, for a model of each provider; and the reading of its request body."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
import orjson
import pytest
import redis.asyncio as aioredis
from pydantic import BaseModel

from llmrelay.producer.api.openai_compat import ChatRequestError
from llmrelay.producer.api.responses_compat import parse_responses
from llmrelay.shared import Settings, keys
from llmrelay.shared.models import DocumentPart, ImagePart, JSONSchemaFormat, NamedToolChoice, TextPart
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL, OPENAI_REASONING_MODEL

Serve = Callable[..., Awaitable[Any]]
MODELS = [OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_REASONING_MODEL]
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    "strict": True,
}
TIME = {**WEATHER, "name": "get_time", "description": "The local time in a city"}
STREAM_ORDER = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
]
STREAM_END = [
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]


def parse(**body: Any) -> Any:
    body.setdefault("model", OPENAI_MODEL)
    body.setdefault("input", "hi")
    return parse_responses(body, {})


def refused_param(**body: Any) -> str | None:
    with pytest.raises(ChatRequestError) as info:
        parse(**body)
    return info.value.param


@pytest.fixture
async def sdk(settings: Settings, worker: Worker, serve: Serve) -> AsyncIterator[openai.AsyncOpenAI]:
    live = await serve(settings)
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


def upstream(sim: SimulatorServer) -> str:
    """The body of the last request the simulator received, as text (each provider has its own shape)."""
    return orjson.dumps(sim.requests()[-1]["body"]).decode()


# -- reading a Responses body ----------------------------------------------------------------------------


def test_input_items_become_contract_messages() -> None:
    call = parse(
        instructions="Be brief.",
        input=[
            {"role": "developer", "content": "Answer in English."},
            {
                "type": "message",
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "Hello"},
                    {"type": "input_text", "text": "world"},
                    {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "low"},
                    {"type": "input_image", "image_url": "https://example.com/a.png"},
                    {
                        "type": "input_file",
                        "filename": "a.pdf",
                        "file_data": f"data:application/pdf;base64,{PDF}",
                    },
                ],
            },
            {"type": "reasoning", "id": "rs_1", "summary": []},
            {
                "id": "msg_1",
                "type": "message",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": "Let me look.", "annotations": []}],
            },
            {
                "type": "function_call",
                "call_id": "call_a",
                "name": "get_weather",
                "arguments": '{"city": "Oslo"}',
            },
            {
                "type": "function_call",
                "call_id": "call_b",
                "name": "get_weather",
                "arguments": '{"city": "Rome"}',
            },
            {"type": "function_call_output", "call_id": "call_a", "output": "4 C"},
            {
                "type": "function_call_output",
                "call_id": "call_b",
                "output": [{"type": "input_text", "text": "19 C"}],
            },
        ],
        tools=[WEATHER],
    )
    system, developer, user, assistant, oslo, rome = call.request.messages
    assert (system.role, system.content) == ("system", "Be brief.")
    assert (developer.role, developer.content) == ("system", "Answer in English.")
    assert user.parts == [
        TextPart(text="Hello"),
        TextPart(text="world"),
        ImagePart(data=PNG, media_type="image/png", detail="low"),
        ImagePart(url="https://example.com/a.png"),
        DocumentPart(data=PDF),
    ]
    assert assistant.text == "Let me look."
    assert [(c.id, c.arguments) for c in assistant.tool_calls or []] == [
        ("call_a", {"city": "Oslo"}),
        ("call_b", {"city": "Rome"}),
    ]
    assert (oslo.role, oslo.tool_call_id, oslo.text) == ("tool", "call_a", "4 C")
    assert (rome.tool_call_id, rome.text) == ("call_b", "19 C")
    # What a stored response keeps: the conversation without its instructions.
    assert [m["role"] for m in call.conversation] == ["system", "user", "assistant", "tool", "tool"]


def test_parameters_map_onto_the_request_and_are_echoed() -> None:
    schema = {"type": "object", "properties": {"temp": {"type": "integer"}}, "required": ["temp"]}
    call = parse(
        max_output_tokens=64,
        temperature=0.3,
        top_p=0.9,
        tools=[WEATHER, TIME],
        tool_choice={"type": "function", "name": "get_time"},
        parallel_tool_calls=False,
        text={"format": {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}},
        reasoning={"effort": "low"},
        metadata={"team": "a"},
        user="user-42",
        truncation="disabled",
        service_tier="auto",
        include=["reasoning.encrypted_content"],
        store=True,
        stream=True,
        priority="batch",
        session_id="s-1",
    )
    request = call.request
    assert (request.max_tokens, request.temperature, request.top_p) == (64, 0.3, 0.9)
    assert [t.name for t in request.tools or []] == ["get_weather", "get_time"]
    assert request.tool_choice == NamedToolChoice(name="get_time")
    assert request.parallel_tool_calls is False
    assert request.response_format == JSONSchemaFormat(name="weather", schema=schema, strict=True)
    assert request.reasoning is not None and request.reasoning.effort == "low"
    assert request.metadata == {"team": "a", "user": "user-42"}
    assert (request.priority, request.session_id) == ("batch", "s-1")
    assert call.stream and call.store
    echo = call.echo
    assert echo["tools"][1] == TIME
    assert echo["text"]["format"] == {
        "type": "json_schema",
        "name": "weather",
        "schema": schema,
        "strict": True,
    }
    assert echo["reasoning"] == {"effort": "low", "summary": None}
    assert (echo["metadata"], echo["user"], echo["parallel_tool_calls"]) == ({"team": "a"}, "user-42", False)


def test_prompt_cache_options_at_their_defaults_are_accepted() -> None:
    options = {"mode": "implicit", "ttl": "30m", "prewarm": False, "comparison_response_id": "resp_1"}
    assert parse(prompt_cache_options=options).request.messages[0].text == "hi"


@pytest.mark.parametrize("context", ["auto", "current_turn", "all_turns"])
def test_a_reasoning_context_is_answered_with_the_mode_served(context: str) -> None:
    """llmrelay gives back the reasoning of the current turn's tool calls only, and says so."""
    call = parse(reasoning={"effort": "low", "context": context})
    assert call.request.reasoning is not None and call.request.reasoning.effort == "low"
    assert call.echo["reasoning"] == {"effort": "low", "summary": None, "context": "current_turn"}
    assert "context" not in parse(reasoning={"effort": "low"}).echo["reasoning"]


def test_a_call_after_a_text_message_joins_it_and_a_call_after_history_starts_a_turn() -> None:
    history = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Looking."}]
    body = {
        "model": OPENAI_MODEL,
        "previous_response_id": "resp_1",
        "input": [
            {"type": "function_call", "call_id": "c1", "name": "f", "arguments": ""},
            {"type": "function_call_output", "call_id": "c1", "output": "done"},
            {"role": "assistant", "content": ""},
            {"type": "function_call", "call_id": "c2", "name": "f"},
        ],
    }
    call = parse_responses(
        body,
        {"trace_id": "t-1"},
        history,
    )
    roles = [(m.role, m.content, [c.id for c in m.tool_calls or []]) for m in call.request.messages]
    assert roles == [
        ("user", "hi", []),
        ("assistant", "Looking.", []),
        ("assistant", None, ["c1"]),
        ("tool", "done", []),
        ("assistant", None, ["c2"]),
    ]
    assert call.request.trace_id == "t-1" and call.echo["previous_response_id"] == "resp_1"


def test_defaults_are_stateless_and_echo_openais_defaults() -> None:
    call = parse()
    assert not call.store and not call.stream
    assert call.echo["tool_choice"] == "auto" and call.echo["parallel_tool_calls"] is True
    assert call.echo["text"]["format"] == {"type": "text"} and call.echo["tools"] == []
    assert call.request.parallel_tool_calls is None and call.request.request_id
    nulls = parse(tool_choice=None, parallel_tool_calls=None).echo
    assert (nulls["tool_choice"], nulls["parallel_tool_calls"]) == ("auto", True)
    assert parse(text={"format": {"type": "json_object"}}).request.response_format.type == "json_object"
    assert parse(text={"format": {"type": "text"}}).request.response_format.type == "text"
    assert parse(text={}, reasoning={"effort": None}).request.response_format is None


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{"type": "web_search"}]}, "tools.0.type"),
        ({"tools": [{"type": "file_search", "vector_store_ids": ["v"]}]}, "tools.0.type"),
        ({"tools": [{"type": "computer_use_preview"}]}, "tools.0.type"),
        ({"tool_choice": {"type": "web_search_preview"}}, "tool_choice"),
        ({"text": {"format": {"type": "text"}, "verbosity": "low"}}, "text.verbosity"),
        ({"reasoning": {"effort": "low", "summary": "auto"}}, "reasoning.summary"),
        ({"reasoning": {"effort": "xhigh"}}, "reasoning.effort"),
        ({"reasoning": {"context": "everything"}}, "reasoning.context"),
        ({"prompt_cache_options": {"mode": "explicit"}}, "prompt_cache_options.mode"),
        ({"prompt_cache_options": {"ttl": "12h"}}, "prompt_cache_options.ttl"),
        ({"prompt_cache_options": {"prewarm": True}}, "prompt_cache_options.prewarm"),
        ({"prompt_cache_options": {"breakpoints": 2}}, "prompt_cache_options.breakpoints"),
        ({"prompt_cache_options": "on"}, "prompt_cache_options"),
        ({"truncation": "auto"}, "truncation"),
        ({"include": ["message.output_text.logprobs"]}, "include"),
        ({"service_tier": "flex"}, "service_tier"),
        ({"background": True}, "background"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"conversation": "conv_1"}, "conversation"),
        ({"prompt": {"id": "pmpt_1"}}, "prompt"),
        ({"prompt_cache_key": "k"}, "prompt_cache_key"),
        ({"safety_identifier": "u"}, "safety_identifier"),
        ({"max_tool_calls": 2}, "max_tool_calls"),
        ({"stream_options": {"include_obfuscation": True}}, "stream_options.include_obfuscation"),
        ({"seed": 7}, "seed"),
        ({"not_a_parameter": 1}, "not_a_parameter"),
    ],
)
def test_parameters_that_cannot_be_honoured_are_refused_naming_them(
    extra: dict[str, Any], param: str
) -> None:
    assert refused_param(**extra) == param


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"tools": [{**WEATHER, "parameters": {"type": "string"}}]}, "tools.0.parameters"),
        ({"tools": [{**WEATHER, "parameters": ["city"]}]}, "tools.0.parameters"),
        ({"tools": [WEATHER], "tool_choice": {"type": "function", "name": "nope"}}, "tool_choice"),
        ({"tool_choice": "required"}, "tool_choice"),
        ({"input": [{"type": "function_call_output", "call_id": "call_x", "output": "4 C"}]}, "input.0.call_id"),
        ({"input": [{"type": "item_reference", "id": "msg_1"}]}, "input.0.type"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "[1]"}]}, "input.0.arguments"),
        ({"input": [{"role": "tool", "content": "x"}]}, "input.0.role"),
        ({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "input.0.content.0"),
        ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
         "input.0.content.0.image_url"),
        ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]},
         "input.0.content.0.file_data"),
        ({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "https://e.com/a.png"}]}]},
         "input.0"),
        ({"input": []}, "input"),
        ({"input": [{"role": "system", "content": "only instructions"}]}, "input"),
        ({"input": None}, "input"),
        ({"instructions": ["x"]}, "instructions"),
        ({"temperature": 9}, "temperature"),
        ({"max_output_tokens": 0}, "max_output_tokens"),
        ({"text": {"format": {"type": "json_schema", "name": "x"}}}, "text.format.schema"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": "nope"}}}}, "text.format.schema"),
        ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
        ({"stream": "yes"}, "stream"),
        ({"store": 1}, "store"),
        ({"metadata": 1}, "metadata"),
        ({"previous_response_id": 5}, "previous_response_id"),
        ({"include": "all"}, "include"),
        ({"stream_options": 1}, "stream_options"),
        ({"stream_options": {"other": False}}, "stream_options.other"),
        ({"tools": {"type": "function"}}, "tools"),
        ({"tools": [{**WEATHER, "defer_loading": True}]}, "tools.0.defer_loading"),
        ({"text": "json"}, "text"),
        ({"text": {"format": {"type": "text"}, "style": 1}}, "text.style"),
        ({"text": {"format": {"type": "json_schema", "name": "x", "schema": {}, "extra": 1}}},
         "text.format.extra"),
        ({"reasoning": "high"}, "reasoning"),
        ({"reasoning": {"budget": 5}}, "reasoning.budget"),
        ({"input": ["x"]}, "input.0"),
        ({"input": [{"role": "user", "content": "x", "name": "alice"}]}, "input.0.name"),
        ({"input": [{"role": "user", "content": 5}]}, "input.0.content"),
        ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input.0.call_id"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": "{no"}]}, "input.0.arguments"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"},
                    {"type": "function_call_output", "call_id": "c"}]}, "input.1.output"),
        ({"input": [{"type": "function_call", "call_id": "c", "name": "f"},
                    {"type": "function_call_output", "call_id": "c",
                     "output": [{"type": "input_image", "image_url": "https://e.com/a.png"}]}]}, "input.1.output.0"),
    ],
)  # fmt: skip
def test_bad_input_is_refused_naming_the_field(extra: dict[str, Any], param: str) -> None:
    assert refused_param(**extra) == param


# -- through the SDK, for every provider ----------------------------------------------------------------


@pytest.mark.parametrize("model", MODELS)
async def test_the_sdk_creates_a_response_with_each_provider(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer, model: str
) -> None:
    prompt = f"Say something about {model} [[sim:tokens=9]]"
    response = await sdk.responses.create(
        model=model, instructions="Be brief and kind.", input=prompt, metadata={"team": "a"}
    )
    assert response.object == "response" and response.id.startswith("resp_")
    assert response.status == "completed" and response.model == model
    assert response.output_text == "".join(reply_for(prompt, 9))
    [item] = response.output
    assert item.type == "message" and item.role == "assistant" and item.id.startswith("msg_")
    assert response.usage is not None and response.usage.output_tokens == 9
    assert response.usage.total_tokens == response.usage.input_tokens + 9
    assert response.usage.output_tokens_details.reasoning_tokens == 0
    assert (response.instructions, response.metadata, response.store) == (
        "Be brief and kind.",
        {"team": "a"},
        False,
    )
    assert "Be brief and kind." in upstream(sim)


@pytest.mark.parametrize("model", MODELS)
async def test_the_sdk_streams_a_response_with_each_provider(sdk: openai.AsyncOpenAI, model: str) -> None:
    prompt = f"Stream about {model} [[sim:tokens=15 tps=500]]"
    async with sdk.responses.stream(model=model, input=prompt) as stream:
        events = [event async for event in stream]
        final = await stream.get_final_response()
    kinds = [e.type for e in events]
    deltas = [e for e in events if e.type == "response.output_text.delta"]
    assert kinds == [*STREAM_ORDER, *["response.output_text.delta"] * len(deltas), *STREAM_END]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(d.delta for d in deltas) == "".join(reply_for(prompt, 15)) == final.output_text
    assert {(d.item_id, d.output_index, d.content_index) for d in deltas} == {(final.output[0].id, 0, 0)}
    assert events[0].response.id == final.id and events[0].response.status == "in_progress"
    assert final.status == "completed" and final.usage is not None and final.usage.output_tokens == 15


@pytest.mark.parametrize("model", MODELS)
async def test_a_stateless_tool_loop_with_each_provider(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer, model: str
) -> None:
    ask = [{"role": "user", "content": "What is the weather in Oslo?"}]
    first = await sdk.responses.create(model=model, input=ask, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    calls = [item for item in first.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_weather"]
    assert orjson.loads(calls[0].arguments) == {"city": instance_city()}
    assert calls[0].id and calls[0].id != calls[0].call_id
    # As agents send the turn back: the output items as they came, then each call's output.
    turn = [*ask, *[item.model_dump(exclude_none=True) for item in first.output]]
    turn += [{"type": "function_call_output", "call_id": c.call_id, "output": "4 C and sunny"} for c in calls]
    second = await sdk.responses.create(model=model, input=turn, tools=[WEATHER])  # type: ignore[arg-type,list-item]
    assert second.output_text and [item.type for item in second.output] == ["message"]
    assert "4 C and sunny" in upstream(sim)


@pytest.mark.parametrize("model", MODELS)
async def test_a_stored_response_is_continued_by_previous_response_id(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer, settings: Settings, redis_url: str, model: str
) -> None:
    question = "What is the weather in Bergen?"
    first = await sdk.responses.create(model=model, input=question, tools=[WEATHER], store=True)
    assert first.store is True
    [call] = [item for item in first.output if item.type == "function_call"]
    again = await sdk.responses.retrieve(first.id)
    assert again.id == first.id and again.output == first.output
    second = await sdk.responses.create(
        model=model,
        previous_response_id=first.id,
        input=[{"type": "function_call_output", "call_id": call.call_id, "output": "rain, 7 C"}],
        tools=[WEATHER],  # type: ignore[list-item]
        store=True,
    )
    assert second.previous_response_id == first.id and second.output_text
    sent = upstream(sim)
    assert question in sent and "rain, 7 C" in sent and call.call_id in sent
    # The chain goes on from the second response, which holds the whole conversation.
    third = await sdk.responses.create(model=model, previous_response_id=second.id, input="And tomorrow?")
    assert third.previous_response_id == second.id and third.output_text
    sent = upstream(sim)
    assert question in sent and "rain, 7 C" in sent and "And tomorrow?" in sent
    async with aioredis.from_url(redis_url) as r:
        ttl = await r.ttl(keys.stored_response(second.id))
    assert 0 < ttl <= settings.result_ttl


def instance_city() -> str:
    """The string the simulator builds for a ``{"type": "string"}`` property."""
    from llmrelay.simulator.tools import instance_of

    return str(instance_of({"type": "string"}))


@pytest.mark.parametrize("model", MODELS)
async def test_parallel_calls_stream_as_one_item_each(sdk: openai.AsyncOpenAI, model: str) -> None:
    stream = await sdk.responses.create(
        model=model,
        input="Weather and time in Oslo [[sim:calls=2]]",
        tools=[WEATHER, TIME],
        stream=True,  # type: ignore[list-item]
    )
    events = [event async for event in stream]
    added = [e.item for e in events if e.type == "response.output_item.added"]
    assert [(item.type, item.name) for item in added] == [  # type: ignore[union-attr]
        ("function_call", "get_weather"),
        ("function_call", "get_time"),
    ]
    joined: dict[int, str] = {}
    for e in events:
        if e.type == "response.function_call_arguments.delta":
            joined[e.output_index] = joined.get(e.output_index, "") + e.delta
    done = {e.output_index: e.arguments for e in events if e.type == "response.function_call_arguments.done"}
    assert joined == done and all(orjson.loads(text) for text in done.values())
    final = events[-1]
    assert final.type == "response.completed"
    assert [(o.type, o.call_id) for o in final.response.output] == [  # type: ignore[union-attr]
        ("function_call", added[0].call_id),  # type: ignore[union-attr]
        ("function_call", added[1].call_id),  # type: ignore[union-attr]
    ]
    assert added[0].call_id != added[1].call_id  # type: ignore[union-attr]
    one_at_a_time = {
        "input": "Weather and time [[sim:calls=2]]",
        "tools": [WEATHER, TIME],
        "parallel_tool_calls": False,
    }
    if model == GEMINI_MODEL:  # Gemini has no switch for it: refused before any call, never dropped
        with pytest.raises(openai.BadRequestError) as refused:
            await sdk.responses.create(model=model, **one_at_a_time)  # type: ignore[arg-type]
        assert refused.value.param == "parallel_tool_calls"
        return
    single = await sdk.responses.create(model=model, **one_at_a_time)  # type: ignore[arg-type]
    assert [item.type for item in single.output] == ["function_call"]


class Forecast(BaseModel):
    city: str
    temp_c: int


@pytest.mark.parametrize("model", MODELS)
async def test_structured_output_parses_with_the_sdk(sdk: openai.AsyncOpenAI, model: str) -> None:
    response = await sdk.responses.parse(model=model, input="Forecast for Oslo as JSON", text_format=Forecast)
    assert isinstance(response.output_parsed, Forecast)
    assert orjson.loads(response.output_text) == response.output_parsed.model_dump()
    assert response.text is not None and response.text.format.type == "json_schema"  # type: ignore[union-attr]


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL])
async def test_an_image_and_a_pdf_reach_each_provider(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer, model: str
) -> None:
    content = [
        {"type": "input_text", "text": "What is in these?"},
        {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}"},
        {"type": "input_file", "filename": "a.pdf", "file_data": f"data:application/pdf;base64,{PDF}"},
    ]
    response = await sdk.responses.create(model=model, input=[{"role": "user", "content": content}])  # type: ignore[list-item]
    assert response.status == "completed" and response.output_text
    sent = upstream(sim)
    assert PNG in sent and PDF in sent


async def test_reasoning_effort_reaches_the_reasoning_model(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    response = await sdk.responses.create(
        model=OPENAI_REASONING_MODEL, input="Think", reasoning={"effort": "low"}
    )
    assert response.reasoning is not None and response.reasoning.effort == "low"
    body = sim.requests("openai")[-1]["body"]
    assert body["reasoning"]["effort"] == "low"


@pytest.mark.parametrize("model", [OPENAI_MODEL, ANTHROPIC_MODEL])
async def test_a_reply_cut_by_max_output_tokens_is_incomplete(sdk: openai.AsyncOpenAI, model: str) -> None:
    prompt = "Go on [[sim:tokens=30]]"
    response = await sdk.responses.create(model=model, input=prompt, max_output_tokens=16)
    assert response.status == "incomplete"
    assert (
        response.incomplete_details is not None and response.incomplete_details.reason == "max_output_tokens"
    )
    assert response.output_text == "".join(reply_for(prompt, 30)[:16])
    stream = await sdk.responses.create(model=model, input=prompt, max_output_tokens=16, stream=True)
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"  # type: ignore[union-attr]


async def test_an_unknown_or_unstored_previous_response_is_refused_naming_it(sdk: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as unknown:
        await sdk.responses.create(model=OPENAI_MODEL, input="hi", previous_response_id="resp_nope")
    assert unknown.value.param == "previous_response_id"
    assert unknown.value.code == "previous_response_not_found"
    unstored = await sdk.responses.create(model=OPENAI_MODEL, input="hi")  # stateless by default
    with pytest.raises(openai.BadRequestError) as stateless:
        await sdk.responses.create(model=OPENAI_MODEL, input="again", previous_response_id=unstored.id)
    assert stateless.value.param == "previous_response_id"
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(unstored.id)


async def test_a_stored_response_can_be_deleted(sdk: openai.AsyncOpenAI) -> None:
    stored = await sdk.responses.create(model=GEMINI_MODEL, input="keep this", store=True)
    assert (await sdk.responses.retrieve(stored.id)).id == stored.id
    await sdk.responses.delete(stored.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.retrieve(stored.id)
    with pytest.raises(openai.NotFoundError):
        await sdk.responses.delete(stored.id)


async def test_a_streamed_stored_response_is_kept_before_it_completes(sdk: openai.AsyncOpenAI) -> None:
    kept = None
    async with sdk.responses.stream(
        model=ANTHROPIC_MODEL, input="remember [[sim:tokens=6]]", store=True
    ) as stream:
        async for event in stream:
            if event.type == "response.completed":  # the stream is still open: named at once
                kept = await sdk.responses.retrieve(event.response.id)
        final = await stream.get_final_response()
    assert kept is not None and kept.id == final.id and kept.store is True  # type: ignore[attr-defined]
    assert kept.output_text == final.output_text and kept.created_at == final.created_at


async def test_a_failure_mid_stream_is_a_response_failed_event(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(
        model=OPENAI_MODEL, input="cut me [[sim:fault=cut after=3 tokens=20 tps=200]]", stream=True
    )
    events = [event async for event in stream]
    assert any(e.type == "response.output_text.delta" for e in events)  # the text before the cut arrived
    last = events[-1]
    assert last.type == "response.failed"
    assert last.response.status == "failed" and last.response.error is not None  # type: ignore[union-attr]
    assert last.response.error.code and last.response.error.message  # type: ignore[union-attr]
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_an_early_refusal_keeps_its_http_status(sdk: openai.AsyncOpenAI) -> None:
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as info:
            await sdk.responses.create(model="gpt-0", input="x", stream=stream)
        assert info.value.code == "model_not_found"
    with pytest.raises(openai.InternalServerError):
        await sdk.responses.create(model=OPENAI_MODEL, input="boom [[sim:fault=500]]", stream=True)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"not json", None),
        (b"[1]", None),
        (b'{"model": "gpt-6.1-terra", "input": "x", "tools": [{"type": "web_search"}]}', "tools.0.type"),
        (b'{"model": "gpt-6.1-terra", "input": [{"type": "function_call_output", "call_id": "c", "output": "x"}]}',
         "input.0.call_id"),
        (b'{"model": "gpt-6.1-terra", "input": "x", "previous_response_id": "resp_unknown"}', "previous_response_id"),
    ],
)  # fmt: skip
async def test_raw_refusals_are_400_in_openai_shape(
    client: httpx2.AsyncClient, body: bytes, param: str
) -> None:
    response = await client.post("/v1/responses", content=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_an_unknown_response_is_404_in_openai_shape(client: httpx2.AsyncClient) -> None:
    for method in ("GET", "DELETE"):
        response = await client.request(method, "/v1/responses/resp_unknown")
        assert response.status_code == 404
        assert response.json()["error"]["type"] == "invalid_request_error"
    assert (await client.get("/v1/responses/bad id!")).status_code == 404


async def test_a_garbled_stored_response_is_treated_as_missing(
    client: httpx2.AsyncClient, redis_url: str
) -> None:
    async with aioredis.from_url(redis_url) as r:
        await r.set(keys.stored_response("resp_garbled"), b'{"response": 1}', ex=60)
    assert (await client.get("/v1/responses/resp_garbled")).status_code == 404
    body = {"model": OPENAI_MODEL, "input": "x", "previous_response_id": "resp_garbled"}
    response = await client.post("/v1/responses", json=body)
    assert response.status_code == 400 and response.json()["error"]["param"] == "previous_response_id"


def frames_of(chunks: list[bytes]) -> list[dict[str, Any]]:
    events = []
    for chunk in chunks:
        kind, data = chunk.decode().strip().split("\n")
        event = orjson.loads(data.removeprefix("data: "))
        assert kind == f"event: {event['type']}"
        events.append(event)
    return events


def test_text_after_a_call_and_an_empty_reply_each_get_items_of_their_own() -> None:
    from openai.types.responses import Response, ResponseStreamEvent
    from pydantic import TypeAdapter

    from llmrelay.producer.api.responses_reply import ResponseEventWriter, finished_body
    from llmrelay.shared.events import ToolCallEvent
    from llmrelay.shared.models import LLMResponse

    echo = parse().echo
    writer = ResponseEventWriter(echo, "r1", OPENAI_MODEL, 1)
    done = LLMResponse(request_id="r1", model=OPENAI_MODEL, provider="openai", content="Looking.Done.",
                       tool_calls=[{"id": "call_a", "name": "f", "arguments": {"x": 1}}], finish_reason="tool_calls")  # fmt: skip
    chunks = [
        *writer.opening(),
        *writer.text("Looking."),
        *writer.tool_call(ToolCallEvent(3, 0, "call_a", "f", '{"x":')),
        *writer.tool_call(ToolCallEvent(4, 0, None, None, " 1}")),
        *writer.text("Done."),
        *writer.finish(done.model_dump(mode="json")),
    ]
    events = frames_of(chunks)
    adapter: TypeAdapter[Any] = TypeAdapter(ResponseStreamEvent)
    for event in events:
        adapter.validate_python(event)
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    added = [(e["output_index"], e["item"]["type"], e["item"]["id"]) for e in events if e["type"].endswith("added")
             and "item" in e]  # fmt: skip
    assert added == [(0, "message", "msg_r1"), (1, "function_call", "fc_r1_0"), (2, "message", "msg_r1_1")]
    final = Response.model_validate(events[-1]["response"])
    assert final.output_text == "Looking.Done."
    assert [item.type for item in final.output] == ["message", "function_call", "message"]
    assert final.output[1].arguments == '{"x": 1}'  # type: ignore[union-attr]
    whole = Response.model_validate(finished_body(echo, done.model_dump(mode="json"), 1))  # not streamed
    assert [item.type for item in whole.output] == ["message", "function_call"]
    assert whole.output_text == "Looking.Done." and whole.output[1].arguments == '{"x":1}'  # type: ignore[union-attr]

    empty = ResponseEventWriter(echo, "r2", OPENAI_MODEL, 1)
    nothing = LLMResponse(request_id="r2", model=OPENAI_MODEL, provider="openai", content="")
    events = frames_of([*empty.opening(), *empty.finish(nothing.model_dump(mode="json"))])
    assert [e["type"] for e in events] == [*STREAM_ORDER, *STREAM_END]


async def test_a_retried_stream_does_not_repeat_text_or_items(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    settings = make_settings(LLM_MAX_RETRIES=2, LLMRELAY_BACKOFF_BASE=0.01, LLMRELAY_BACKOFF_MAX=0.02)
    live = await serve(settings)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    prompt = "Once only [[sim:fault=cut after=4 times=1 tokens=14 tps=300]]"
    try:
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="x", max_retries=0) as sdk:
            stream = await sdk.responses.create(model=OPENAI_MODEL, input=prompt, stream=True)
            events = [event async for event in stream]
    finally:
        await worker.stop(grace=2)
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text == "".join(reply_for(prompt, 14))
    assert [e.type for e in events].count("response.output_item.added") == 1
    assert events[-1].type == "response.completed" and events[-1].response.output_text == text


async def test_a_provider_range_is_refused_before_any_call(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    sim.clear()
    for stream in (False, True):
        with pytest.raises(openai.BadRequestError) as info:
            await sdk.responses.create(model=ANTHROPIC_MODEL, input="x", temperature=1.8, stream=stream)
        assert info.value.param == "temperature"
    assert sim.requests() == []
