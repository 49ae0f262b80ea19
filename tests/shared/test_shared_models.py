"""LLMRequest, A2AContext, Usage and LLMResponse: what the contract accepts and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llmrelay.shared.models import (
    MAX_CONTENT_CHARS,
    MAX_METADATA_BYTES,
    MAX_TOKENS_LIMIT,
    MAX_TOTAL_CHARS,
    A2AContext,
    LLMRequest,
    LLMResponse,
    Usage,
)

USER = [{"role": "user", "content": "hello"}]


def make(**fields: Any) -> LLMRequest:
    fields.setdefault("messages", USER)
    return LLMRequest.model_validate(fields)


def refused_fields(**fields: Any) -> list[tuple[Any, ...]]:
    """The error locations of a request that must not validate."""
    with pytest.raises(ValidationError) as info:
        make(**fields)
    return [tuple(err["loc"]) for err in info.value.errors()]


def test_minimal_request_takes_documented_defaults() -> None:
    request = make()
    assert request.model is None
    assert request.tier is None
    assert request.priority == "interactive"
    assert request.fallback_models == []
    assert request.metadata == {}
    assert request.stop is None


def test_full_request_is_accepted() -> None:
    request = make(
        model="gpt-6.1-terra",
        tier="premium",
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "again"},
        ],
        max_tokens=MAX_TOKENS_LIMIT,
        temperature=2.0,
        top_p=1.0,
        stop=["a", "b", "c", "d"],
        timeout=3600.0,
        request_id="req_1.a:b-c",
        priority="batch",
        fallback_models=["gemini-2.5-flash-lite"],
        trace_id="t",
        source_agent="agent",
        session_id="s",
        metadata={"k": [1, 2, {"x": None}]},
    )
    assert request.max_tokens == MAX_TOKENS_LIMIT
    assert len(request.messages) == 4


def test_unknown_fields_are_refused() -> None:
    assert refused_fields(bogus=1) == [("bogus",)]


def test_unknown_fields_inside_a_message_are_refused() -> None:
    locs = refused_fields(messages=[{"role": "user", "content": "x", "nickname": "bob"}])
    assert locs == [("messages", 0, "nickname")]


def test_empty_messages_are_refused() -> None:
    assert refused_fields(messages=[]) == [("messages",)]


def test_missing_messages_are_refused() -> None:
    with pytest.raises(ValidationError) as info:
        LLMRequest.model_validate({"model": "gpt-6.1-terra"})
    assert [tuple(e["loc"]) for e in info.value.errors()] == [("messages",)]


ONLY_SYSTEM = [{"role": "system", "content": "you are terse"}]


def oversized_conversation() -> list[dict[str, str]]:
    chunk = "x" * MAX_CONTENT_CHARS
    return [{"role": "user", "content": chunk}] * (MAX_TOTAL_CHARS // MAX_CONTENT_CHARS + 1)


def test_only_system_messages_are_refused() -> None:
    with pytest.raises(ValidationError, match="at least one user or assistant message"):
        make(messages=ONLY_SYSTEM)


def test_only_system_messages_are_refused_naming_messages() -> None:
    # The error's loc is what a JSON-RPC caller reads to find the offending field.
    assert refused_fields(messages=ONLY_SYSTEM) == [("messages",)]


@pytest.mark.parametrize("role", ["function", "developer", "USER", "", None])
def test_unknown_role_is_refused(role: Any) -> None:
    locs = refused_fields(messages=[{"role": role, "content": "x"}])
    assert locs == [("messages", 0, "role")]


def test_content_that_is_neither_a_string_nor_parts_is_refused() -> None:
    for content in (["part"], [{"type": "audio", "data": "AAAA"}], 42):
        locs = refused_fields(messages=[{"role": "user", "content": content}])
        assert locs and all(loc[:3] == ("messages", 0, "content") for loc in locs), content


def test_content_at_the_limit_is_accepted() -> None:
    request = make(messages=[{"role": "user", "content": "x" * MAX_CONTENT_CHARS}])
    assert len(request.messages[0].content) == MAX_CONTENT_CHARS


def test_oversized_content_is_refused() -> None:
    locs = refused_fields(messages=[{"role": "user", "content": "x" * (MAX_CONTENT_CHARS + 1)}])
    assert locs == [("messages", 0, "content")]


def test_oversized_total_is_refused() -> None:
    with pytest.raises(ValidationError, match=f"at most {MAX_TOTAL_CHARS} are accepted"):
        make(messages=oversized_conversation())


def test_oversized_total_is_refused_naming_messages() -> None:
    assert refused_fields(messages=oversized_conversation()) == [("messages",)]


@pytest.mark.parametrize("value", [0, -1, MAX_TOKENS_LIMIT + 1, 10**12, 1.5, "100", True])
def test_bad_max_tokens_is_refused(value: Any) -> None:
    assert refused_fields(max_tokens=value) == [("max_tokens",)]


@pytest.mark.parametrize("value", [-0.1, 2.01, float("nan"), "0.5"])
def test_temperature_out_of_range_is_refused(value: Any) -> None:
    assert refused_fields(temperature=value) == [("temperature",)]


@pytest.mark.parametrize("value", [0, 0.0, -0.5, 1.01])
def test_top_p_out_of_range_is_refused(value: Any) -> None:
    assert refused_fields(top_p=value) == [("top_p",)]


@pytest.mark.parametrize("value", [0, -1, 3601])
def test_timeout_out_of_range_is_refused(value: Any) -> None:
    assert refused_fields(timeout=value) == [("timeout",)]


def test_ints_are_accepted_for_float_fields() -> None:
    request = make(temperature=1, top_p=1, timeout=30)
    assert (request.temperature, request.top_p, request.timeout) == (1.0, 1.0, 30.0)
    assert all(type(v) is float for v in (request.temperature, request.top_p, request.timeout))


@pytest.mark.parametrize("field", ["temperature", "top_p", "timeout"])
def test_bool_is_not_accepted_as_float(field: str) -> None:
    assert refused_fields(**{field: True}) == [(field,)]


def test_stop_string_becomes_a_list() -> None:
    assert make(stop="END").stop == ["END"]


def test_more_than_four_stops_are_refused() -> None:
    assert refused_fields(stop=["a", "b", "c", "d", "e"]) == [("stop",)]


@pytest.mark.parametrize("stop", ["", [""], ["x" * 257]])
def test_empty_or_long_stop_is_refused(stop: Any) -> None:
    assert all(loc[0] == "stop" for loc in refused_fields(stop=stop))


@pytest.mark.parametrize(
    "request_id", ["", "a b", "a/b", "a\nb", "abc\n", "é", "{tag}", "x" * 129, "a*", "a?b"]
)
def test_bad_request_id_is_refused(request_id: str) -> None:
    assert refused_fields(request_id=request_id) == [("request_id",)]


@pytest.mark.parametrize("request_id", ["a", "x" * 128, "A-z_0.9:1", "01J9Z8"])
def test_request_id_of_the_safe_alphabet_is_accepted(request_id: str) -> None:
    assert make(request_id=request_id).request_id == request_id


def test_unknown_priority_and_tier_are_refused() -> None:
    assert refused_fields(priority="urgent") == [("priority",)]
    assert refused_fields(tier="cheap") == [("tier",)]


def test_empty_or_long_model_name_is_refused() -> None:
    assert refused_fields(model="") == [("model",)]
    assert refused_fields(model="m" * 129) == [("model",)]


def test_more_than_five_fallback_models_are_refused() -> None:
    assert refused_fields(fallback_models=["gpt-6.1-terra"] * 6) == [("fallback_models",)]


def test_empty_fallback_model_name_is_refused() -> None:
    assert refused_fields(fallback_models=[""]) == [("fallback_models", 0)]


def test_metadata_at_the_limit_is_accepted() -> None:
    # {"k":"..."} is 8 bytes of framing around the value.
    metadata = {"k": "x" * (MAX_METADATA_BYTES - 8)}
    assert make(metadata=metadata).metadata == metadata


def test_too_big_metadata_is_refused() -> None:
    locs = refused_fields(metadata={"k": "x" * MAX_METADATA_BYTES})
    assert locs == [("metadata",)]


@pytest.mark.parametrize(
    "metadata", [{"k": object()}, {"k": {1, 2}}, {"k": {1: "non-string key"}}, {"k": b"bytes"}]
)
def test_metadata_that_is_not_json_is_refused(metadata: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as info:
        make(metadata=metadata)
    (error,) = info.value.errors()
    assert error["loc"] == ("metadata",)
    assert "JSON" in error["msg"]


@pytest.mark.parametrize("field", ["trace_id", "source_agent", "session_id"])
@pytest.mark.parametrize("value", ["a\r\nX-Injected: 1", "tab\there", "é", "x" * 257])
def test_context_fields_refuse_header_unsafe_text(field: str, value: str) -> None:
    assert refused_fields(**{field: value}) == [(field,)]


def test_request_context_carries_the_a2a_fields() -> None:
    request = make(trace_id="t1", source_agent="planner", session_id="s1")
    assert request.context == A2AContext(trace_id="t1", source_agent="planner", session_id="s1")


def test_log_context_holds_only_the_fields_that_are_set() -> None:
    assert make().log_context() == {}
    request = make(request_id="r1", trace_id="t1", source_agent="planner", session_id="s1")
    assert request.log_context() == {
        "request_id": "r1",
        "trace_id": "t1",
        "source_agent": "planner",
        "session_id": "s1",
    }
    assert make(trace_id="t1").log_context() == {"trace_id": "t1"}


def test_request_round_trips_through_json() -> None:
    request = make(model="gpt-6.1-terra", stop="x", temperature=1, metadata={"a": [1, "b"]}, trace_id="t")
    again = LLMRequest.model_validate_json(request.model_dump_json())
    assert again == request


# A2A context headers


def test_empty_context_has_no_headers() -> None:
    assert A2AContext().headers() == {}


def test_context_headers_carry_each_field() -> None:
    headers = A2AContext(trace_id="trace-1", source_agent="planner", session_id="s-9").headers()
    assert headers == {"X-Trace-Id": "trace-1", "X-Source-Agent": "planner", "X-Session-Id": "s-9"}


def test_traceparent_is_added_for_a_32_hex_trace_id() -> None:
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = A2AContext(trace_id=trace_id).headers()
    assert headers["X-Trace-Id"] == trace_id
    version, tid, parent, flags = headers["traceparent"].split("-")
    assert (version, tid, flags) == ("00", trace_id, "01")
    assert len(parent) == 16
    assert int(parent, 16) != 0


def test_traceparent_is_lower_case_for_an_upper_case_trace_id() -> None:
    headers = A2AContext(trace_id="4BF92F3577B34DA6A3CE929D0E0E4736").headers()
    assert headers["X-Trace-Id"] == "4BF92F3577B34DA6A3CE929D0E0E4736"
    assert headers["traceparent"].startswith("00-4bf92f3577b34da6a3ce929d0e0e4736-")


def test_traceparent_is_stable_across_calls() -> None:
    context = A2AContext(trace_id="4bf92f3577b34da6a3ce929d0e0e4736")
    assert context.headers() == context.headers()


@pytest.mark.parametrize(
    "trace_id",
    [
        "0" * 32,
        "4bf92f3577b34da6a3ce929d0e0e473",  # 31 digits
        "4bf92f3577b34da6a3ce929d0e0e47360",  # 33 digits
        "4bf92f3577b34da6a3ce929d0e0e473g",  # not hex
        "4bf92f35-77b3-4da6-a3ce-929d0e0e4736",  # a UUID with dashes
    ],
)
def test_no_traceparent_for_other_trace_ids(trace_id: str) -> None:
    headers = A2AContext(trace_id=trace_id).headers()
    assert headers == {"X-Trace-Id": trace_id}


def test_traceparent_parent_id_is_never_all_zeros() -> None:
    # W3C Trace Context: a parent-id of sixteen zeros is invalid and receivers discard the header.
    headers = A2AContext(trace_id="0000000000000000a3ce929d0e0e4736").headers()
    _, tid, parent, _ = headers["traceparent"].split("-")
    assert tid == "0000000000000000a3ce929d0e0e4736"
    assert parent != "0" * 16


def test_context_refuses_unknown_fields() -> None:
    with pytest.raises(ValidationError):
        A2AContext.model_validate({"trace_id": "t", "user": "x"})


# Usage and LLMResponse


def test_usage_of_adds_up_the_total() -> None:
    assert Usage.of(12, 30) == Usage(prompt_tokens=12, completion_tokens=30, total_tokens=42)


def test_usage_refuses_negative_counts() -> None:
    with pytest.raises(ValidationError):
        Usage(prompt_tokens=-1)


def response(**fields: Any) -> LLMResponse:
    base: dict[str, Any] = {
        "request_id": "r1",
        "model": "gpt-6.1-terra",
        "provider": "openai",
        "content": 'He said "hi"\nthen ✓ left',
        "finish_reason": "length",
        "usage": Usage.of(10, 5),
        "cost_usd": 0.00006,
        "latency_ms": 12.5,
        "ttft_ms": 3.25,
        "attempts": 2,
        "trace_id": "t",
        "source_agent": "a",
        "session_id": "s",
    }
    base.update(fields)
    return LLMResponse(**base)


def test_response_round_trips_through_json() -> None:
    original = response()
    assert LLMResponse.model_validate_json(original.model_dump_json()) == original


def test_response_round_trips_through_a_dict() -> None:
    original = response(ttft_ms=None, trace_id=None)
    assert LLMResponse.model_validate(original.model_dump(mode="json")) == original


def test_response_defaults() -> None:
    minimal = LLMResponse(request_id="r", model="m", provider="gemini", content="")
    assert minimal.finish_reason == "stop"
    assert minimal.usage == Usage()
    assert minimal.attempts == 1
    assert minimal.ttft_ms is None


def test_response_refuses_unknown_fields_provider_and_finish_reason() -> None:
    with pytest.raises(ValidationError):
        response(extra=1)
    with pytest.raises(ValidationError):
        response(provider="mistral")
    with pytest.raises(ValidationError):
        response(finish_reason="exploded")
