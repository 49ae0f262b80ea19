"""Stream events: the hand-written encoders produce JSON that parse_event reads back unchanged."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from llmrelay.shared.errors import LLMRelayError, ModelNotAllowedError, RateLimitedError
from llmrelay.shared.events import (
    TERMINAL_TYPES,
    DoneEvent,
    ErrorEvent,
    RestartEvent,
    TokenEvent,
    context_suffix,
    encode_done,
    encode_error,
    encode_restart,
    encode_token,
    parse_event,
)
from llmrelay.shared.models import LLMResponse, Usage

TEXTS = [
    "",
    "plain",
    'with "double" quotes and \\ backslash',
    "line one\nline two\r\n\ttab",
    "unicode: héllo ✓ 日本語 🚀",
    "control \x00\x1f chars",
    '}{"type":"done"}',
]
CONTEXT = {"request_id": "r-1", "trace_id": "t-1", "source_agent": "planner", "session_id": "s-1"}


@pytest.mark.parametrize("text", TEXTS)
def test_token_event_round_trips_any_text(text: str) -> None:
    event = parse_event(encode_token(7, text))
    assert isinstance(event, TokenEvent)
    assert (event.type, event.index, event.text) == ("token", 7, text)


def test_encoded_token_is_plain_json() -> None:
    assert orjson.loads(encode_token(3, "hi")) == {"type": "token", "index": 3, "text": "hi"}


def test_context_suffix_without_context_closes_the_object() -> None:
    assert context_suffix({}) == b"}"
    assert orjson.loads(encode_token(0, "x", context_suffix({}))) == {
        "type": "token",
        "index": 0,
        "text": "x",
    }


def test_context_suffix_appends_the_context_fields() -> None:
    raw = encode_token(4, "hi", context_suffix(CONTEXT))
    assert orjson.loads(raw) == {"type": "token", "index": 4, "text": "hi", **CONTEXT}
    event = parse_event(raw)
    assert (event.trace_id, event.source_agent, event.session_id) == ("t-1", "planner", "s-1")
    assert event.model_extra == {"request_id": "r-1"}


def test_context_suffix_escapes_its_values() -> None:
    context = {"trace_id": 'a"b', "session_id": "ü\n"}
    event = parse_event(encode_token(1, "x", context_suffix(context)))
    assert (event.trace_id, event.session_id) == ('a"b', "ü\n")


@pytest.mark.parametrize("reason", ["", "provider 503", 'quoted "reason"\nnext line ✓'])
@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_restart_event_round_trips(reason: str, suffix: bytes) -> None:
    event = parse_event(encode_restart(12, 2, reason, suffix))
    assert isinstance(event, RestartEvent)
    assert (event.type, event.index, event.attempt, event.reason) == ("restart", 12, 2, reason)
    assert event.trace_id == (CONTEXT["trace_id"] if suffix != b"}" else None)


def make_response() -> LLMResponse:
    return LLMResponse(
        request_id="r-1",
        model="gpt-4.1",
        provider="openai",
        content='the "answer"\nis ✓ 42',
        usage=Usage.of(10, 3),
        cost_usd=0.000044,
        latency_ms=15.0,
        ttft_ms=4.0,
        attempts=2,
        trace_id="t-1",
    )


@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_done_event_round_trips_the_response(suffix: bytes) -> None:
    original = make_response()
    event = parse_event(encode_done(30, original, suffix))
    assert isinstance(event, DoneEvent)
    assert (event.type, event.index) == ("done", 30)
    assert event.response == original


@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_error_event_round_trips_the_error(suffix: bytes) -> None:
    error = ModelNotAllowedError('model "x"\nnot allowed ✓', data={"field": "model"})
    event = parse_event(encode_error(5, error, suffix))
    assert isinstance(event, ErrorEvent)
    assert (event.type, event.index) == ("error", 5)
    assert event.error == error.to_dict()


def test_error_event_exception_rebuilds_the_class() -> None:
    event = parse_event(encode_error(1, RateLimitedError("slow down", retry_after=2.5)))
    assert isinstance(event, ErrorEvent)
    exc = event.exception()
    assert type(exc) is RateLimitedError
    assert exc.message == "slow down"
    assert exc.retry_after == 2.5


def test_error_event_of_an_unknown_type_becomes_the_base_error() -> None:
    event = ErrorEvent(index=0, error={"type": "SomethingNew", "message": "m"})
    exc = event.exception()
    assert type(exc) is LLMRelayError
    assert exc.message == "m"


@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_parse_event_accepts_bytes_str_and_dict(form: str) -> None:
    raw = encode_token(2, "x")
    source = {"bytes": raw, "str": raw.decode(), "dict": orjson.loads(raw)}[form]
    assert parse_event(source) == TokenEvent(index=2, text="x")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"telemetry","index":1}',
        b'{"index":1,"text":"x"}',
        b'{"type":"token","index":-1,"text":"x"}',
        b'{"type":"token","index":1}',
        b'{"type":"done","index":1,"response":{}}',
    ],
)
def test_parse_event_refuses_malformed_events(raw: bytes) -> None:
    with pytest.raises(ValidationError):
        parse_event(raw)


def test_parse_event_refuses_bad_json() -> None:
    with pytest.raises(orjson.JSONDecodeError):
        parse_event(b"{not json")


def test_terminal_types_are_done_and_error() -> None:
    assert frozenset({"done", "error"}) == TERMINAL_TYPES
