"""The official openai SDK (AsyncOpenAI) against the simulator: Chat Completions, Responses, faults."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import openai
import pytest

from llmrelay.simulator import SimulatorServer, reply_for

MODEL = "gpt-6.1-terra"


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def _collect(stream: AsyncIterator[Any], into: list[str]) -> None:
    """Collect the text of chat chunks or of Responses API text deltas."""
    async for item in stream:
        if getattr(item, "type", None) == "response.output_text.delta":
            into.append(item.delta)
        elif getattr(item, "choices", None):
            into.append(item.choices[0].delta.content or "")


async def test_chat_non_stream_content_usage_and_headers(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    raw = await openai_client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "system", "content": "be brief"}, *_user("What is the answer?")],
        extra_headers={"X-Trace-Id": "trace-openai-1", "X-Source-Agent": "agent-a", "X-Session-Id": "s-1"},
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "".join(reply_for("What is the answer?", 20))
    assert completion.choices[0].finish_reason == "stop"
    assert completion.model == MODEL
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (6, 20)
    assert completion.usage.total_tokens == 26
    for header in (
        "x-ratelimit-limit-requests",
        "x-ratelimit-remaining-requests",
        "x-ratelimit-remaining-tokens",
        "x-ratelimit-reset-requests",
        "x-ratelimit-reset-tokens",
        "x-request-id",
    ):
        assert raw.headers.get(header), header
    assert raw.headers["x-ratelimit-reset-requests"].endswith("s")

    [record] = sim.requests()
    assert record["provider"] == "openai"
    assert record["path"] == "/v1/chat/completions"
    assert record["model"] == MODEL
    assert record["stream"] is False
    assert record["body"]["messages"][1]["content"] == "What is the answer?"
    assert record["headers"]["x-trace-id"] == "trace-openai-1"
    assert record["headers"]["x-source-agent"] == "agent-a"
    assert record["headers"]["x-session-id"] == "s-1"
    assert record["headers"]["authorization"] == f"Bearer {openai_client.api_key}"


async def test_chat_stream_with_usage_chunk(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL,
        messages=_user("stream me [[sim:tokens=7]]"),
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish = None
    usage = None
    async for chunk in stream:
        if chunk.choices:
            delta = chunk.choices[0].delta.content
            if delta:
                pieces.append(delta)
            finish = chunk.choices[0].finish_reason or finish
        if chunk.usage is not None:
            assert chunk.choices == []
            usage = chunk.usage
    assert pieces == reply_for("stream me", 7)  # one chunk per token
    assert finish == "stop"
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (2, 7, 9)


async def test_chat_stream_without_include_usage_has_no_usage(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.chat.completions.create(model=MODEL, messages=_user("no usage"), stream=True)
    chunks = [chunk async for chunk in stream]
    assert all(chunk.usage is None for chunk in chunks)
    assert all(chunk.choices for chunk in chunks)
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(reply_for("no usage", 20))


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
async def test_chat_truncated_by_max_tokens(openai_client: openai.AsyncOpenAI, param: str) -> None:
    completion = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("long answer please"), **{param: 4}
    )
    assert completion.choices[0].message.content == "".join(reply_for("long answer please", 4))
    assert completion.choices[0].finish_reason == "length"
    assert completion.usage is not None and completion.usage.completion_tokens == 4

    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("long answer please"), stream=True, **{param: 4}
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "".join(
        reply_for("long answer please", 4)
    )
    assert chunks[-1].choices[0].finish_reason == "length"


async def test_responses_api_non_stream(openai_client: openai.AsyncOpenAI) -> None:
    response = await openai_client.responses.create(
        model=MODEL, input="Tell me a story", instructions="be kind"
    )
    assert response.output_text == "".join(reply_for("Tell me a story", 20))
    assert response.status == "completed"
    assert response.usage is not None
    assert (response.usage.input_tokens, response.usage.output_tokens, response.usage.total_tokens) == (
        6,
        20,
        26,
    )

    short = await openai_client.responses.create(model=MODEL, input="Tell me a story", max_output_tokens=3)
    assert short.output_text == "".join(reply_for("Tell me a story", 3))
    assert short.status == "incomplete"
    assert short.incomplete_details is not None and short.incomplete_details.reason == "max_output_tokens"


async def test_responses_api_stream_events(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(
        model=MODEL, input=[{"role": "user", "content": "streamed story [[sim:tokens=5]]"}], stream=True
    )
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert types[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == reply_for("streamed story", 5)
    assert [e.sequence_number for e in events] == list(range(len(events)))
    completed = events[-1]
    assert completed.type == "response.completed"
    assert completed.response.output_text == "".join(deltas)
    assert completed.response.usage is not None
    assert (completed.response.usage.input_tokens, completed.response.usage.output_tokens) == (2, 5)


async def test_responses_stream_helper(openai_client: openai.AsyncOpenAI) -> None:
    async with openai_client.responses.stream(model=MODEL, input="helper [[sim:tokens=6]]") as stream:
        text = "".join([event.delta async for event in stream if event.type == "response.output_text.delta"])
        final = await stream.get_final_response()
    assert text == final.output_text == "".join(reply_for("helper", 6))


async def test_responses_stream_truncated_ends_incomplete(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(
        model=MODEL, input="cut short", max_output_tokens=2, stream=True
    )
    events = [event async for event in stream]
    assert events[-1].type == "response.incomplete"
    assert events[-1].response.status == "incomplete"
    assert events[-1].response.output_text == "".join(reply_for("cut short", 2))


async def test_models_list(openai_client: openai.AsyncOpenAI) -> None:
    models = await openai_client.models.list()
    assert "gpt-6.1-terra" in [m.id for m in models.data]


async def test_rate_limit_error_with_retry_after(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as info:
        await openai_client.chat.completions.create(
            model=MODEL, messages=_user("x [[sim:fault=429 retry_after=2]]")
        )
    headers = info.value.response.headers
    assert headers["retry-after"] == "2"
    assert headers["retry-after-ms"] == "2000"
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert info.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("fault", "exc", "status"),
    [
        ("500", openai.InternalServerError, 500),
        ("503", openai.InternalServerError, 503),
        ("529", openai.InternalServerError, 503),
        ("400", openai.BadRequestError, 400),
        ("401", openai.AuthenticationError, 401),
        ("403", openai.PermissionDeniedError, 403),
        ("404", openai.NotFoundError, 404),
        ("422", openai.UnprocessableEntityError, 422),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_faults(
    openai_client: openai.AsyncOpenAI, fault: str, exc: type[openai.APIStatusError], status: int, stream: bool
) -> None:
    with pytest.raises(exc) as info:
        await openai_client.chat.completions.create(
            model=MODEL, messages=_user(f"boom [[sim:fault={fault}]]"), stream=stream
        )
    assert info.value.status_code == status
    assert type(info.value) is exc


async def test_auth_error_quotes_the_key(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.AuthenticationError) as info:
        await openai_client.chat.completions.create(model=MODEL, messages=_user("[[sim:fault=401]] hi"))
    assert f"Incorrect API key provided: {openai_client.api_key}" in str(info.value)


@pytest.mark.parametrize("fault", ["cut after=5", "overloaded_in_stream after=5"])
async def test_stream_cut_raises_connection_error(openai_client: openai.AsyncOpenAI, fault: str) -> None:
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user(f"cut me [[sim:fault={fault}]]"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError) as info:
        await _collect(stream, received)
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
    assert "".join(received) == "".join(reply_for("cut me", 5))


async def test_non_stream_cut_raises_connection_error(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APIConnectionError) as info:
        await openai_client.chat.completions.create(model=MODEL, messages=_user("[[sim:fault=cut]] whole"))
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)


async def test_responses_stream_cut(openai_client: openai.AsyncOpenAI) -> None:
    stream = await openai_client.responses.create(
        model=MODEL, input="[[sim:fault=cut after=2]] r", stream=True
    )
    deltas: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await _collect(stream, deltas)
    assert deltas == reply_for("r", 2)


async def test_hang_fault_times_out(openai_client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.APITimeoutError):
        await openai_client.with_options(timeout=0.3).chat.completions.create(
            model=MODEL, messages=_user("[[sim:fault=hang]] wait")
        )
