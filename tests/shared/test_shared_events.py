"""Stream events: the one encoder produces JSON that the one decoder reads back unchanged."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
import pytest

from llmrelay.shared.embeddings import EmbeddingResponse
from llmrelay.shared.errors import LLMRelayError, ModelNotAllowedError, RateLimitedError
from llmrelay.shared.events import (
    EVENT_TYPES,
    TERMINAL_TYPES,
    DoneEvent,
    EmbeddingDoneEvent,
    ErrorEvent,
    Event,
    MalformedEventError,
    RestartEvent,
    TokenEvent,
    ToolCallEvent,
    context_suffix,
    decode,
    encode,
    split,
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


def encode_token(index: int, text: str, suffix: bytes = b"}") -> bytes:
    return encode(TokenEvent(index, text), suffix)


@pytest.mark.parametrize("text", TEXTS)
def test_token_event_round_trips_any_text(text: str) -> None:
    event = decode(encode_token(7, text))
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
    event = decode(raw)
    assert (event.trace_id, event.source_agent, event.session_id) == ("t-1", "planner", "s-1")
    assert event.context == CONTEXT


def test_context_suffix_escapes_its_values() -> None:
    context = {"trace_id": 'a"b', "session_id": "ü\n"}
    event = decode(encode_token(1, "x", context_suffix(context)))
    assert (event.trace_id, event.session_id) == ('a"b', "ü\n")


@pytest.mark.parametrize("reason", ["", "provider 503", 'quoted "reason"\nnext line ✓'])
@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_restart_event_round_trips(reason: str, suffix: bytes) -> None:
    event = decode(encode(RestartEvent(12, 2, reason), suffix))
    assert isinstance(event, RestartEvent)
    assert (event.type, event.index, event.attempt, event.reason) == ("restart", 12, 2, reason)
    assert event.trace_id == (CONTEXT["trace_id"] if suffix != b"}" else None)


def make_response() -> LLMResponse:
    return LLMResponse(
        request_id="r-1",
        model="gpt-6.1-terra",
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
    event = decode(encode(DoneEvent(30, original), suffix))
    assert isinstance(event, DoneEvent)
    assert (event.type, event.index) == ("done", 30)
    assert event.response == original


@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_error_event_round_trips_the_error(suffix: bytes) -> None:
    error = ModelNotAllowedError('model "x"\nnot allowed ✓', data={"field": "model"})
    event = decode(encode(ErrorEvent.of(5, error), suffix))
    assert isinstance(event, ErrorEvent)
    assert (event.type, event.index) == ("error", 5)
    assert event.error == error.to_dict()


def test_error_event_exception_rebuilds_the_class() -> None:
    event = decode(encode(ErrorEvent.of(1, RateLimitedError("slow down", retry_after=2.5))))
    assert isinstance(event, ErrorEvent)
    exc = event.exception()
    assert type(exc) is RateLimitedError
    assert exc.message == "slow down"
    assert exc.retry_after == 2.5
    assert exc.event_index == 1


def test_error_event_of_an_unknown_type_becomes_the_base_error() -> None:
    event = ErrorEvent(index=0, error={"type": "SomethingNew", "message": "m"})
    exc = event.exception()
    assert type(exc) is LLMRelayError
    assert exc.message == "m"


@pytest.mark.parametrize("form", ["bytes", "str", "dict"])
def test_decode_accepts_bytes_str_and_dict(form: str) -> None:
    raw = encode_token(2, "x")
    source = {"bytes": raw, "str": raw.decode(), "dict": orjson.loads(raw)}[form]
    event = decode(source)
    assert event == TokenEvent(index=2, text="x")
    assert event.wire() == raw


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type":"telemetry","index":1}',
        b'{"index":1,"text":"x"}',
        b'{"type":"token","index":-1,"text":"x"}',
        b'{"type":"token","index":1}',
        b'{"type":"done","index":1,"response":{}}',
        b'{"type":"token","index":true,"text":"x"}',
        b'{"type":"token","index":1,"text":7}',
        b'{"type":"restart","index":1,"attempt":"2"}',
        b'{"type":"error","index":1,"error":"boom"}',
        b'{"type":"tool_call","index":1,"call_index":0,"id":3}',
        b'{"type":"tool_call","index":1}',
        b"[1, 2]",
    ],
)
def test_decode_refuses_malformed_events(raw: bytes) -> None:
    with pytest.raises(MalformedEventError):
        decode(raw)


def test_decode_refuses_bad_json() -> None:
    with pytest.raises(MalformedEventError, match="not valid JSON"):
        decode(b"{not json")


def test_terminal_types_are_done_embedding_done_and_error() -> None:
    assert frozenset({"done", "embedding_done", "error"}) == TERMINAL_TYPES


@pytest.mark.parametrize(
    ("fragment", "call_id", "name"), [('{"city": "Par', "call-1", "weather"), ('is"}', None, None)]
)
@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_tool_call_event_round_trips(
    fragment: str, call_id: str | None, name: str | None, suffix: bytes
) -> None:
    raw = encode(ToolCallEvent(9, 1, call_id, name, fragment), suffix)
    event = decode(raw)
    assert isinstance(event, ToolCallEvent)
    assert (event.type, event.index, event.call_index, event.id, event.name, event.arguments) == (
        "tool_call",
        9,
        1,
        call_id,
        name,
        fragment,
    )
    assert orjson.loads(raw)["type"] == "tool_call"


def every_event() -> list[Event]:
    return [
        TokenEvent(1, "hi"),
        ToolCallEvent(2, 0, "c", "f", "{}"),
        RestartEvent(3, 2, "503"),
        DoneEvent(4, make_response()),
        EmbeddingDoneEvent(5, EmbeddingResponse(request_id="r", model="m", provider="openai", vectors=[[0.5]])),
        ErrorEvent.of(6, ModelNotAllowedError("no")),
    ]


def test_every_event_type_has_an_example_here() -> None:
    assert {type(e) for e in every_event()} == set(EVENT_TYPES)


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.type)
@pytest.mark.parametrize("suffix", [b"}", context_suffix(CONTEXT)])
def test_head_index_and_tail_join_into_the_encoding(event: Event, suffix: bytes) -> None:
    head, tail = split(event, suffix)
    assert head == b'{"type":"%b","index":' % event.type.encode()
    assert head + b"%d" % event.index + tail == encode(event, suffix)
    bare_head, bare_tail = split(event, b"")
    assert bare_head + b"%d" % event.index + bare_tail + suffix == encode(event, suffix)


@pytest.mark.parametrize("event", every_event(), ids=lambda e: e.type)
def test_a_decoded_event_keeps_the_bytes_it_was_read_from(event: Event) -> None:
    raw = encode(event, context_suffix(CONTEXT))
    decoded = decode(raw)
    assert decoded.raw is raw and decoded.wire() is raw
    assert decoded == dataclasses.replace(event, context=CONTEXT)


def test_an_event_built_here_is_encoded_with_its_own_context() -> None:
    event = TokenEvent(3, "x", context={"trace_id": "t"})
    assert orjson.loads(event.wire()) == {"type": "token", "index": 3, "text": "x", "trace_id": "t"}


def test_decoding_a_dict_leaves_it_untouched() -> None:
    data: dict[str, Any] = {"type": "token", "index": 1, "text": "x", "trace_id": "t"}
    decode(data)
    assert data == {"type": "token", "index": 1, "text": "x", "trace_id": "t"}
