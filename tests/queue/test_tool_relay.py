"""Tool-call deltas on the return leg (in order with text, coalesced, replayed across retries) and JSON
replies parsed and validated before they are handed over; the provider is a scripted adapter."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, ProviderUnavailableError, Settings, keys
from llmrelay.shared.errors import InvalidRequestError, OutputValidationError, StreamRestartedError
from llmrelay.shared.events import DoneEvent, RestartEvent, TokenEvent, ToolCallEvent
from llmrelay.shared.models import Usage
from llmrelay.worker.providers import StreamEnd
from llmrelay.worker.providers.base import StreamItem, ToolCallDelta
from llmrelay.worker.relay import coalesce
from llmrelay.worker.service import Worker
from tests.queue.scripted import ScriptedAdapter

TOOLS_END = StreamEnd("tool_calls", Usage.of(7, 5))
END = StreamEnd("stop", Usage.of(7, 5))
TOOLS = [
    {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
]
SCRIPT: list[StreamItem] = [
    "Checking",
    " now.",
    ToolCallDelta(0, id="call_a", name="get_weather"),
    ToolCallDelta(0, arguments='{"city": '),
    ToolCallDelta(0, arguments='"Oslo"}'),
    ToolCallDelta(1, id="call_b", name="get_weather", arguments='{"city": "Rome"}'),
    TOOLS_END,
]


def _req(**fields: Any) -> LLMRequest:
    values: dict[str, Any] = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "weather?"}]}
    values.update(fields)
    return LLMRequest.model_validate(values)


@pytest.fixture
async def run(settings: Settings) -> AsyncIterator[Any]:
    workers: list[Worker] = []

    async def start(*scripts: Any, **overrides: Any) -> ScriptedAdapter:
        adapter = ScriptedAdapter(*scripts)
        worker_settings = settings.model_copy(update=overrides)
        worker = Worker(worker_settings, providers=["openai"], concurrency=2, adapters={"openai": adapter})
        await worker.start()
        workers.append(worker)
        return adapter

    yield start
    for worker in workers:
        await worker.stop(grace=1)


def _joined(events: list[Any]) -> tuple[str, dict[int, dict[str, Any]]]:
    """The text and the calls the events add up to (what a client assembles)."""
    text = "".join(e.text for e in events if isinstance(e, TokenEvent))
    calls: dict[int, dict[str, Any]] = {}
    for e in events:
        if isinstance(e, ToolCallEvent):
            call = calls.setdefault(e.call_index, {"id": None, "name": None, "arguments": ""})
            call["id"] = call["id"] or e.id
            call["name"] = call["name"] or e.name
            call["arguments"] += e.arguments
    return text, calls


def test_coalescing_joins_runs_and_keeps_the_order() -> None:
    deltas: list[str | ToolCallDelta] = [
        "a",
        "b",
        ToolCallDelta(0, id="c0", name="f", arguments="{"),
        ToolCallDelta(0, arguments='"x": 1'),
        ToolCallDelta(0, arguments="}"),
        ToolCallDelta(1, id="c1", name="g"),
        ToolCallDelta(1, arguments="{}"),
        "c",
        ToolCallDelta(1, arguments=""),
    ]
    assert coalesce(deltas) == [
        "ab",
        ToolCallDelta(0, id="c0", name="f", arguments='{"x": 1}'),
        ToolCallDelta(1, id="c1", name="g", arguments="{}"),
        "c",
        ToolCallDelta(1, arguments=""),
    ]
    # A fragment that names a call is never folded into the one before it.
    named = [ToolCallDelta(0, arguments="x"), ToolCallDelta(0, id="late", name="f")]
    assert coalesce(list(named)) == named


async def test_tool_call_deltas_are_relayed_in_order_with_the_text(run: Any, producer: LLMProducer) -> None:
    await run(SCRIPT)
    events = [e async for e in producer.events(_req(tools=TOOLS))]
    kinds = [e.type for e in events]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token", "tool_call"}
    # No text after the first tool call, as the provider sent it; indices strictly increase.
    first_call = kinds.index("tool_call")
    assert "token" not in kinds[first_call:]
    assert [e.index for e in events] == sorted({e.index for e in events})
    text, calls = _joined(events)
    assert text == "Checking now."
    assert calls == {
        0: {"id": "call_a", "name": "get_weather", "arguments": '{"city": "Oslo"}'},
        1: {"id": "call_b", "name": "get_weather", "arguments": '{"city": "Rome"}'},
    }
    # Each call's first event names it; the relay never costs more events than the deltas it had.
    firsts = {}
    for e in events:
        if isinstance(e, ToolCallEvent):
            firsts.setdefault(e.call_index, e)
    assert all(e.id is not None and e.name is not None for e in firsts.values())
    assert len([e for e in events if isinstance(e, ToolCallEvent)]) <= 4
    done = events[-1]
    assert isinstance(done, DoneEvent)
    assert done.response.finish_reason == "tool_calls"
    assert [(c.id, c.arguments) for c in done.response.tool_calls] == [
        ("call_a", {"city": "Oslo"}),
        ("call_b", {"city": "Rome"}),
    ]


async def test_the_sdk_stream_is_text_only_and_complete_returns_the_calls(
    run: Any, producer: LLMProducer
) -> None:
    adapter = await run(SCRIPT)
    texts = [t async for t in producer.stream(_req(tools=TOOLS))]
    assert "".join(texts) == "Checking now."
    response = await producer.complete(_req(tools=TOOLS, tool_choice="required", parallel_tool_calls=True))
    assert [c.name for c in response.tool_calls] == ["get_weather", "get_weather"]
    assert response.finish_reason == "tool_calls" and response.parsed is None
    seen = adapter.requests[-1]
    assert seen.tool_choice == "required" and seen.parallel_tool_calls is True
    assert seen.tools is not None and seen.tools[0].name == "get_weather"


async def test_tool_call_events_are_resumable_from_the_log(run: Any, producer: LLMProducer) -> None:
    await run(SCRIPT)
    request = _req(tools=TOOLS, request_id="tools-resume-1")
    events = [e async for e in producer.events(request)]
    middle = next(e for e in events if isinstance(e, ToolCallEvent)).index
    again = [e async for e in producer.resume("tools-resume-1", middle)]
    assert [e.wire() for e in again] == [e.wire() for e in events if e.index > middle]


async def test_a_retried_attempt_repeats_its_tool_calls_and_the_reader_gets_them_once(
    run: Any, producer: LLMProducer
) -> None:
    cut: list[Any] = [*SCRIPT[:4], ProviderUnavailableError("cut")]
    await run(cut, SCRIPT, max_retries=1, backoff_base=0.001, backoff_max=0.002)
    events = [e async for e in producer.events(_req(tools=TOOLS))]
    assert any(isinstance(e, RestartEvent) for e in events)
    restart = max(i for i, e in enumerate(events) if isinstance(e, RestartEvent))
    assert _joined(events[restart:])[1][0]["arguments"] == '{"city": "Oslo"}'
    # What a text-and-calls reader passes on: each piece once, as if there had been no retry.
    from llmrelay.producer.follower import ReplayFilter

    replay = ReplayFilter()
    passed: list[Any] = []
    for e in events:
        if isinstance(e, TokenEvent) and (text := replay.token(e.text)):
            passed.append(TokenEvent(e.index, text))
        elif isinstance(e, ToolCallEvent) and (delta := replay.tool_call(e)) is not None:
            passed.append(delta)
        elif isinstance(e, RestartEvent):
            replay.restart()
    assert _joined(passed) == _joined(events[restart:])


async def test_json_replies_are_parsed_into_parsed(run: Any, producer: LLMProducer) -> None:
    await run(['{"city": ', '"Oslo", "temp": 4}', END])
    response = await producer.complete(_req(response_format={"type": "json_object"}))
    assert response.parsed == {"city": "Oslo", "temp": 4}
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}},
        "required": ["city", "temp"],
    }
    fmt = {"type": "json_schema", "name": "weather", "schema": schema, "strict": True}
    response = await producer.complete(_req(response_format=fmt))
    assert response.parsed == {"city": "Oslo", "temp": 4}
    assert response.content == '{"city": "Oslo", "temp": 4}'
    plain = await producer.complete(_req())
    assert plain.parsed is None


@pytest.mark.parametrize(
    ("reply", "fmt", "says"),
    [
        ("not json at all", {"type": "json_object"}, "not JSON"),
        ("[1, 2]", {"type": "json_object"}, "not a JSON object"),
        (
            '{"city": 5}',
            {
                "type": "json_schema",
                "name": "w",
                "schema": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
            "does not match schema 'w' at city",
        ),
    ],
)
async def test_a_reply_that_does_not_parse_or_validate_is_an_error_with_the_raw_text(
    run: Any, producer: LLMProducer, reply: str, fmt: dict[str, Any], says: str
) -> None:
    adapter = await run([reply, END], max_retries=3)
    with pytest.raises(OutputValidationError, match=says) as info:
        await producer.complete(_req(response_format=fmt))
    assert info.value.data["raw"] == reply
    assert info.value.data["field"] == "response_format"
    assert adapter.calls == 1  # not retried: the model answered


async def test_the_raw_text_of_a_refused_reply_is_redacted(run: Any, producer: LLMProducer) -> None:
    secret = "sk-" + "a1B2" * 10
    await run([f"here is {secret}", END])
    with pytest.raises(OutputValidationError) as info:
        await producer.complete(_req(response_format={"type": "json_object"}))
    assert secret not in info.value.data["raw"] and secret not in info.value.message


async def test_a_reply_that_only_calls_tools_is_not_checked_as_json(run: Any, producer: LLMProducer) -> None:
    await run(SCRIPT[2:])
    response = await producer.complete(_req(tools=TOOLS, response_format={"type": "json_object"}))
    assert response.parsed is None and len(response.tool_calls) == 2


async def test_a_streamed_reader_sees_the_validation_error_after_the_text(
    run: Any, producer: LLMProducer
) -> None:
    await run(["{broken", END])
    seen: list[str] = []

    async def read() -> None:
        async for text in producer.stream(_req(response_format={"type": "json_object"})):
            seen.append(text)

    with pytest.raises(OutputValidationError):
        await read()
    assert "".join(seen) == "{broken"


async def test_provider_parameter_bounds_are_refused_before_enqueue(producer: LLMProducer) -> None:
    # No worker runs: a refusal has to come before anything is queued.
    with pytest.raises(InvalidRequestError) as hot:
        await producer.submit(_req(model="claude-haiku-5-5", temperature=1.5))
    assert hot.value.data["field"] == "temperature"
    with pytest.raises(InvalidRequestError) as seeded:
        await producer.submit(_req(model="claude-haiku-5-5", seed=7))
    assert seeded.value.data["field"] == "seed"
    assert await producer.redis.xlen(keys.work_stream("anthropic", "interactive")) == 0


def test_stream_restarted_error_is_what_a_diverging_call_raises() -> None:
    from llmrelay.producer.follower import ReplayFilter

    replay = ReplayFilter()
    replay.tool_call(ToolCallEvent(1, 0, "call_a", "f", '{"a"'))
    replay.restart()
    with pytest.raises(StreamRestartedError):
        replay.tool_call(ToolCallEvent(3, 0, "call_OTHER", "f", '{"a"'))
