"""One accumulator for every adapter stream: ``complete`` and the job runner fold streams the same way,
so a stream cut before its end is the same retryable error on both paths."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterable

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, ProviderError, ProviderUnavailableError, Settings
from llmrelay.shared.events import DoneEvent, TokenEvent
from llmrelay.shared.models import Usage
from llmrelay.worker.providers import ProviderCall, StreamEnd
from llmrelay.worker.providers.base import StreamAccumulator, StreamItem, ToolCallDelta, drain
from llmrelay.worker.service import Worker
from tests.queue.scripted import ScriptedAdapter

END = StreamEnd("stop", Usage.of(3, 2), api_model="gpt-4.1-2025")


async def _items(items: Iterable[StreamItem]) -> AsyncIterator[StreamItem]:
    for item in items:
        yield item


def _req(text: str = "hello") -> LLMRequest:
    return LLMRequest(model="gpt-6.1-terra", messages=[{"role": "user", "content": text}])  # type: ignore[list-item]


def _call(settings: Settings) -> ProviderCall:
    return ProviderCall(model=settings.catalog.resolve("gpt-6.1-terra"), request=_req(), timeout=5.0)


def test_deltas_are_relayed_and_joined_then_the_end_completes() -> None:
    accumulator = StreamAccumulator("openai")
    before = time.time()
    assert accumulator.add("Hel") == "Hel"
    after_first = time.time()
    assert accumulator.add("lo") == "lo"
    assert accumulator.deltas == 2
    assert accumulator.add(END) is None
    done = accumulator.completion()
    assert (done.text, done.end) == ("Hello", END)
    assert done.first_token_at is not None and before <= done.first_token_at <= after_first


def test_a_stream_of_only_its_end_has_no_first_token() -> None:
    accumulator = StreamAccumulator("openai")
    accumulator.add(END)
    done = accumulator.completion()
    assert (done.text, done.first_token_at, accumulator.deltas) == ("", None, 0)


async def test_a_stream_without_an_end_is_a_retryable_unavailable_provider() -> None:
    with pytest.raises(ProviderUnavailableError) as info:
        await drain(_items(["Hel", "lo"]), "anthropic")
    assert info.value.retryable
    assert info.value.data == {"provider": "anthropic", "status": None}
    assert "stream ended without a final message" in info.value.message


def test_an_item_after_the_end_breaks_the_adapter_protocol() -> None:
    accumulator = StreamAccumulator("gemini")
    accumulator.add(END)
    with pytest.raises(ProviderError) as info:
        accumulator.add("late")
    assert type(info.value) is ProviderError and not info.value.retryable
    assert info.value.data["provider"] == "gemini"


async def test_complete_is_the_stream_drained(settings: Settings) -> None:
    adapter = ScriptedAdapter(["Hel", "lo", END])
    done = await adapter.complete(_call(settings))
    assert (done.text, done.end) == ("Hello", END)
    assert done.first_token_at is not None


async def test_the_runner_retries_a_stream_cut_before_its_end(
    settings: Settings, producer: LLMProducer
) -> None:
    adapter = ScriptedAdapter(["Hel"], ["Hel", "lo", END])
    worker = Worker(settings, providers=["openai"], concurrency=2, adapters={"openai": adapter})
    await worker.start()
    try:
        events = [e async for e in producer.events(_req())]
    finally:
        await worker.stop(grace=1)
    assert [e.type for e in events] == ["token", "restart", "token", "token", "done"]
    assert [e.text for e in events if isinstance(e, TokenEvent)][1:] == ["Hel", "lo"]
    assert isinstance(events[-1], DoneEvent)
    response = events[-1].response
    assert (response.content, response.attempts, response.finish_reason) == ("Hello", 2, "stop")
    assert response.usage.completion_tokens == 2 and response.ttft_ms is not None
    assert adapter.calls == 2


async def test_a_stream_that_never_ends_is_the_same_error_on_both_paths(
    settings: Settings, producer: LLMProducer
) -> None:
    strict = settings.model_copy(update={"max_retries": 1})
    adapter = ScriptedAdapter(["Hel", "lo"])
    with pytest.raises(ProviderUnavailableError) as direct:
        await adapter.complete(_call(strict))
    worker = Worker(strict, providers=["openai"], concurrency=2, adapters={"openai": adapter})
    await worker.start()
    try:
        with pytest.raises(ProviderUnavailableError) as queued:
            await producer.complete(_req())
    finally:
        await worker.stop(grace=1)
    assert queued.value.message == direct.value.message
    assert adapter.calls == 1 + 2  # the direct call, then the first attempt and its one retry


TOOLS_END = StreamEnd("tool_calls", Usage.of(3, 2))


def test_tool_call_deltas_fold_into_whole_calls_in_their_order() -> None:
    accumulator = StreamAccumulator("openai")
    items: list[StreamItem] = [
        "Let me check.",
        ToolCallDelta(1, id="call_b", name="get_time", arguments='{"tz": '),
        ToolCallDelta(0, id="call_a", name="get_weather"),
        ToolCallDelta(0, arguments='{"city": "Os'),
        ToolCallDelta(1, arguments='"UTC"}'),
        ToolCallDelta(0, arguments='lo"}'),
        TOOLS_END,
    ]
    relayed = [accumulator.add(item) for item in items]
    assert relayed[:-1] == items[:-1] and relayed[-1] is None
    done = accumulator.completion()
    assert done.text == "Let me check." and done.end.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in done.tool_calls] == [
        ("call_a", "get_weather", {"city": "Oslo"}),
        ("call_b", "get_time", {"tz": "UTC"}),
    ]


def test_a_call_without_arguments_has_an_empty_object() -> None:
    accumulator = StreamAccumulator("anthropic")
    accumulator.add(ToolCallDelta(0, id="toolu_1", name="ping"))
    accumulator.add(TOOLS_END)
    assert accumulator.completion().tool_calls[0].arguments == {}


@pytest.mark.parametrize(
    ("deltas", "says"),
    [
        ([ToolCallDelta(0, id="c", name="f", arguments='{"a": ')], "not JSON"),
        ([ToolCallDelta(0, id="c", name="f", arguments="[1, 2]")], "not a JSON object"),
        ([ToolCallDelta(0, name="f", arguments="{}")], "without its id or name"),
        ([ToolCallDelta(0, id="c", name="bad name", arguments="{}")], "malformed"),
    ],
)
def test_broken_tool_calls_are_a_provider_error(deltas: list[ToolCallDelta], says: str) -> None:
    accumulator = StreamAccumulator("gemini")
    for delta in deltas:
        accumulator.add(delta)
    accumulator.add(TOOLS_END)
    with pytest.raises(ProviderError, match=says):
        accumulator.completion()
