"""The official anthropic SDK (AsyncAnthropic) against the simulator: Messages API, streams, faults."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx2
import pytest

from llmrelay.simulator import SimulatorServer, reply_for
from tests.support import ANTHROPIC_MODEL

MODEL = ANTHROPIC_MODEL


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def _collect_deltas(stream: AsyncIterator[Any], into: list[str]) -> None:
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            into.append(event.delta.text)


async def test_non_stream_content_usage_and_headers(
    sim: SimulatorServer, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    raw = await anthropic_client.messages.with_raw_response.create(
        model=MODEL,
        max_tokens=256,
        system="you are terse",
        messages=[
            *_user("earlier question"),
            {"role": "assistant", "content": "ok"},
            *_user("Why is the sky blue?"),
        ],
        extra_headers={
            "X-Trace-Id": "trace-anthropic-1",
            "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01",
        },
    )
    message = await raw.parse()
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(reply_for("Why is the sky blue?", 20))
    assert message.stop_reason == "end_turn"
    assert message.model == MODEL
    assert (message.usage.input_tokens, message.usage.output_tokens) == (3 + 2 + 1 + 5, 20)
    for header in (
        "anthropic-ratelimit-requests-limit",
        "anthropic-ratelimit-requests-remaining",
        "anthropic-ratelimit-tokens-remaining",
        "anthropic-ratelimit-requests-reset",
        "request-id",
    ):
        assert raw.headers.get(header), header
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", raw.headers["anthropic-ratelimit-requests-reset"])

    [record] = sim.requests(provider="anthropic")
    assert record["path"] == "/v1/messages"
    assert record["model"] == MODEL and record["stream"] is False
    assert record["body"]["system"] == "you are terse"
    assert record["headers"]["x-trace-id"] == "trace-anthropic-1"
    assert record["headers"]["traceparent"].startswith("00-aaaa")
    assert "anthropic-version" in record["headers"]


async def test_create_stream_events(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=_user("stream it [[sim:tokens=6]]"), stream=True
    )
    events = [event async for event in stream]
    types = [event.type for event in events]
    assert types[:2] == ["message_start", "content_block_start"]
    assert types[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    deltas = [
        e.delta.text for e in events if e.type == "content_block_delta" and e.delta.type == "text_delta"
    ]
    assert deltas == reply_for("stream it", 6)
    start = events[0]
    assert start.type == "message_start" and start.message.usage.input_tokens == 2
    delta = events[-2]
    assert delta.type == "message_delta"
    assert delta.delta.stop_reason == "end_turn"
    assert delta.usage.output_tokens == 6


async def test_stream_helper_and_truncation(anthropic_client: anthropic.AsyncAnthropic) -> None:
    async with anthropic_client.messages.stream(
        model=MODEL, max_tokens=3, messages=_user("a longer reply please")
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == "".join(reply_for("a longer reply please", 3))
    assert final.content[0].type == "text" and final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (4, 3)

    message = await anthropic_client.messages.create(
        model=MODEL, max_tokens=3, messages=_user("a longer reply please")
    )
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "text" and message.content[0].text == text


async def test_list_models(anthropic_client: anthropic.AsyncAnthropic) -> None:
    page = await anthropic_client.models.list()
    assert MODEL in [m.id for m in page.data]


async def test_rate_limit_error_with_retry_after(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.RateLimitError) as info:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user("[[sim:fault=429 retry_after=3]] x")
        )
    assert info.value.response.headers["retry-after"] == "3"
    assert info.value.response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert info.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]


@pytest.mark.parametrize(
    ("fault", "exc", "status"),
    [
        ("500", anthropic.InternalServerError, 500),
        ("503", anthropic.ServiceUnavailableError, 503),
        ("529", anthropic.OverloadedError, 529),
        ("400", anthropic.BadRequestError, 400),
        ("401", anthropic.AuthenticationError, 401),
        ("403", anthropic.PermissionDeniedError, 403),
        ("404", anthropic.NotFoundError, 404),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_faults(
    anthropic_client: anthropic.AsyncAnthropic,
    fault: str,
    exc: type[anthropic.APIStatusError],
    status: int,
    stream: bool,
) -> None:
    with pytest.raises(exc) as info:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user(f"[[sim:fault={fault}]] boom"), stream=stream
        )
    assert info.value.status_code == status
    assert type(info.value) is exc


async def test_overloaded_error_body(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.OverloadedError) as info:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user("[[sim:fault=529]] o")
        )
    assert info.value.body["error"] == {"type": "overloaded_error", "message": "Overloaded"}  # type: ignore[index]


async def test_auth_error_quotes_the_key(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as info:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user("[[sim:fault=401]] k")
        )
    assert anthropic_client.api_key and anthropic_client.api_key in str(info.value)


async def test_overloaded_in_stream(anthropic_client: anthropic.AsyncAnthropic) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=_user("[[sim:fault=overloaded_in_stream after=3]] go"),
        stream=True,
    )
    deltas: list[str] = []
    with pytest.raises(anthropic.APIStatusError) as info:
        await _collect_deltas(stream, deltas)
    assert type(info.value) is anthropic.APIStatusError
    assert info.value.status_code == 200
    assert info.value.body["error"]["type"] == "overloaded_error"  # type: ignore[index]
    assert deltas == reply_for("go", 3)

    async def use_helper() -> None:
        async with anthropic_client.messages.stream(
            model=MODEL, max_tokens=100, messages=_user("[[sim:fault=overloaded_in_stream after=1]] go")
        ) as helper:
            async for _ in helper.text_stream:
                pass

    with pytest.raises(anthropic.APIStatusError) as helper_info:
        await use_helper()
    assert helper_info.value.status_code == 200


async def test_overloaded_in_stream_without_stream_is_529(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.OverloadedError):
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user("[[sim:fault=overloaded_in_stream]] plain")
        )


async def test_stream_cut_raises_raw_remote_protocol_error(
    anthropic_client: anthropic.AsyncAnthropic,
) -> None:
    stream = await anthropic_client.messages.create(
        model=MODEL, max_tokens=100, messages=_user("[[sim:fault=cut after=4]] cut"), stream=True
    )
    deltas: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        await _collect_deltas(stream, deltas)
    assert deltas == reply_for("cut", 4)


async def test_non_stream_cut_raises_connection_error(anthropic_client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.APIConnectionError) as info:
        await anthropic_client.messages.create(
            model=MODEL, max_tokens=10, messages=_user("[[sim:fault=cut]] x")
        )
    assert isinstance(info.value.__cause__, httpx2.RemoteProtocolError)
