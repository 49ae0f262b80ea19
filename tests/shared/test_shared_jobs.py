"""The job envelope: what a worker reads from a work stream, and how it refuses what it cannot run."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis

from llmrelay.shared import Settings, jobs, keys
from llmrelay.shared.errors import InvalidRequestError, LLMRelayError, RateLimitedError
from llmrelay.shared.jobs import ENTRY_ID, ENTRY_JOB, Job, read_entry
from llmrelay.shared.models import LLMRequest, LLMResponse
from llmrelay.shared.payloads import PayloadError
from llmrelay.shared.queue import enqueue

SECRET_PROMPT = "the prompt must not be echoed in errors"


def make_job(**fields: Any) -> Job:
    request = LLMRequest.model_validate(
        {
            "model": "gpt-6.1-terra",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": 'say "hi"\n✓'},
            ],
            "max_tokens": 64,
            "temperature": 0.2,
            "stop": "END",
            "request_id": "req-1",
            "priority": "batch",
            "fallback_models": ["gemini-2.5-flash-lite"],
            "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736",
            "source_agent": "planner",
            "session_id": "s-1",
            "metadata": {"tenant": "acme", "n": [1, 2]},
        }
    )
    base: dict[str, Any] = {
        "request_id": "req-1",
        "provider": "openai",
        "model": "gpt-6.1-terra",
        "request": request,
        "enqueued_at": 1_700_000_000.25,
        "deadline": 1_700_000_060.25,
        "stream": False,
        "lane": "batch",
        "fallbacks": ["gemini-2.5-flash-lite"],
    }
    base.update(fields)
    return Job(**base)


def valid_payload() -> dict[str, Any]:
    return {
        "id": "req-1",
        "p": "anthropic",
        "m": "claude-haiku-5-5",
        "r": {"messages": [{"role": "user", "content": SECRET_PROMPT}]},
        "t": 1.0,
        "d": 61.0,
    }


def test_job_round_trips_through_its_encoding() -> None:
    job = make_job()
    again = Job.decode(job.encode())
    assert again == job
    assert again.request == job.request


def test_job_decodes_from_str() -> None:
    job = make_job()
    assert Job.decode(job.encode().decode()) == job


def minimal_job() -> Job:
    return Job(
        request_id="r",
        provider="gemini",
        model="gemini-3.8-flash",
        request=LLMRequest.model_validate({"messages": [{"role": "user", "content": "x"}]}),
        enqueued_at=0.0,
        deadline=1.0,
    )


def test_defaults_survive_the_round_trip() -> None:
    job = minimal_job()
    again = Job.decode(job.encode())
    assert again == job
    assert (again.stream, again.lane, again.fallbacks) == (True, "interactive", [])


def test_encoding_leaves_out_request_defaults() -> None:
    job = minimal_job()
    assert orjson.loads(job.encode())["r"] == {"messages": [{"role": "user", "content": "x"}]}


async def test_an_enqueued_entry_reads_back_as_its_job(redis_url: str) -> None:
    settings = Settings(_env_file=None, REDIS_URL=redis_url)  # type: ignore[call-arg]
    job = make_job(enqueued_at=time.time(), deadline=time.time() + 60)
    client = Redis.from_url(redis_url)
    try:
        outcome, entry_id = await enqueue(client, job, settings)
        assert outcome == "queued"
        [(read_id, fields)] = await client.xrange(keys.work_stream(job.provider, job.lane))
    finally:
        await client.aclose()
    assert read_id == entry_id
    request_id, payload = read_entry(fields)
    assert request_id == job.request_id
    assert Job.decode(payload) == job


def test_an_entry_without_its_fields_reads_as_empty() -> None:
    assert read_entry({}) == ("", b"")
    assert read_entry({ENTRY_ID.encode(): b"req-1"}) == ("req-1", b"")
    assert read_entry({ENTRY_JOB.encode(): b"{}"}) == ("", b"{}")


def test_missing_optional_keys_take_defaults() -> None:
    job = Job.decode(orjson.dumps(valid_payload()))
    assert (job.provider, job.model, job.stream, job.lane, job.fallbacks) == (
        "anthropic",
        "claude-haiku-5-5",
        True,
        "interactive",
        [],
    )
    assert (job.enqueued_at, job.deadline) == (1.0, 61.0)


GARBAGE = [
    b"",
    b"\xff\xfe\x00garbage",
    b"not json",
    b"{",
    b"[]",
    b"null",
    b"42",
    b'"a string"',
    b"[1, 2, 3]",
    b"{}",
]


@pytest.mark.parametrize("raw", GARBAGE)
def test_garbage_is_an_invalid_request(raw: bytes) -> None:
    with pytest.raises(InvalidRequestError):
        Job.decode(raw)


@pytest.mark.parametrize("key", ["id", "p", "m", "r", "t", "d"])
def test_missing_key_is_an_invalid_request(key: str) -> None:
    payload = valid_payload()
    del payload[key]
    with pytest.raises(InvalidRequestError):
        Job.decode(orjson.dumps(payload))


@pytest.mark.parametrize("provider", ["mistral", "", None, 1, ["openai"], {"openai": 1}])
def test_unknown_provider_is_an_invalid_request(provider: Any) -> None:
    payload = {**valid_payload(), "p": provider}
    with pytest.raises(InvalidRequestError) as info:
        Job.decode(orjson.dumps(payload))
    assert "provider" in info.value.message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("t", "yesterday"),
        ("t", None),
        ("d", [1]),
        ("d", {"at": 1}),
        ("f", 5),
        ("r", "a request"),
        ("r", None),
    ],
)
def test_wrongly_typed_value_is_an_invalid_request(key: str, value: Any) -> None:
    payload = {**valid_payload(), key: value}
    with pytest.raises(InvalidRequestError):
        Job.decode(orjson.dumps(payload))


@pytest.mark.parametrize(
    "request_payload",
    [
        {"messages": []},
        {"messages": [{"role": "system", "content": SECRET_PROMPT}]},
        {"messages": [{"role": "user", "content": SECRET_PROMPT}], "bogus": 1},
        {"messages": [{"role": "user", "content": SECRET_PROMPT}], "max_tokens": 0},
    ],
)
def test_invalid_request_inside_a_job_is_an_invalid_request(request_payload: dict[str, Any]) -> None:
    payload = {**valid_payload(), "r": request_payload}
    with pytest.raises(InvalidRequestError) as info:
        Job.decode(orjson.dumps(payload))
    assert type(info.value) is InvalidRequestError
    assert info.value.data["errors"]
    assert SECRET_PROMPT not in orjson.dumps(info.value.to_dict(), default=str).decode()


def test_validation_details_name_the_field() -> None:
    payload = {**valid_payload(), "r": {"messages": [{"role": "user", "content": "x"}], "top_p": 5}}
    with pytest.raises(InvalidRequestError) as info:
        Job.decode(orjson.dumps(payload))
    assert [tuple(e["loc"]) for e in info.value.data["errors"]] == [("top_p",)]


def test_unknown_lane_is_an_invalid_request() -> None:
    payload = {**valid_payload(), "l": "express"}
    with pytest.raises(InvalidRequestError):
        Job.decode(orjson.dumps(payload))


@pytest.mark.parametrize(
    "request_id",
    ["", "a b", "line\nbreak", "x" * 129, None],
    ids=["empty", "space", "newline", "too-long", "null"],
)
def test_job_id_outside_the_request_id_alphabet_is_an_invalid_request(request_id: Any) -> None:
    # The id becomes part of Redis key names, as LLMRequest.request_id does.
    payload = {**valid_payload(), "id": request_id}
    with pytest.raises(InvalidRequestError):
        Job.decode(orjson.dumps(payload))


def test_a_stored_result_reads_back_as_the_response() -> None:
    response = LLMResponse(
        request_id="req-1", model="gpt-6.1-terra", provider="openai", content="hi ✓", ttft_ms=12.5, trace_id="t"
    )
    assert jobs.decode_result(jobs.encode_result(response)) == response


def test_a_stored_error_reads_back_as_the_error() -> None:
    error = RateLimitedError("slow down", data={"retry_after": 2.5})
    stored = jobs.decode_error(jobs.encode_error(error))
    assert stored == error.to_dict()
    again = LLMRelayError.from_dict(stored)
    assert (type(again), again.message, again.data) == (RateLimitedError, "slow down", {"retry_after": 2.5})


@pytest.mark.parametrize("raw", [b"not json", b"[]", b'"cancelled"', b"null"])
def test_a_stored_error_that_is_not_an_object_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="a stored error is a JSON object"):
        jobs.decode_error(raw)


def test_content_parts_and_a_response_format_survive_the_compact_payload() -> None:
    from llmrelay.shared.batch import decode_request, encode_request
    from llmrelay.shared.jobs import request_payload
    from llmrelay.shared.models import TextFormat, TextPart

    request = LLMRequest.model_validate(
        {
            "model": "gpt-6.1-terra",
            "messages": [{"role": "user", "content": [TextPart(text="a"), {"type": "text", "text": "b"}]}],
            "response_format": TextFormat(),
        }
    )
    payload = request_payload(request)
    assert payload["messages"][0]["content"] == [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    assert payload["response_format"] == {"type": "text"}
    assert LLMRequest.model_validate(payload) == request
    assert decode_request(encode_request(request)) == request
