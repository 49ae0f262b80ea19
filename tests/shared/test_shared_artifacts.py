"""The tool-call artifact record: one encoder, one decoder, and the scope its key is made from."""

from __future__ import annotations

import pytest

from llmrelay.shared import keys
from llmrelay.shared.artifacts import (
    CallArtifacts,
    artifact_key,
    conversation_digest,
    decode_artifacts,
    encode_artifacts,
    turn_scopes,
)
from llmrelay.shared.models import LLMRequest, Message
from llmrelay.shared.payloads import PayloadError

THOUGHT = {"type": "thinking", "thinking": "I will call it.", "signature": "c2ln"}


def _request(**fields: object) -> LLMRequest:
    messages = [
        Message(role="user", content="hi"),
        Message(role="assistant", tool_calls=[{"id": "a", "name": "f"}, {"id": "b", "name": "f"}]),
        Message(role="tool", tool_call_id="a", content="1"),
        Message(role="tool", tool_call_id="b", content="2"),
        Message(role="assistant", tool_calls=[{"id": "c", "name": "f", "arguments": {"x": 1}}]),
        Message(role="tool", tool_call_id="c", content="3"),
    ]
    return LLMRequest(model="m", messages=messages, **fields)


@pytest.mark.parametrize(
    "artifacts",
    [
        CallArtifacts(signature="c2lnbmF0dXJl"),
        CallArtifacts(blocks=(THOUGHT,)),
        CallArtifacts("YQ==", (THOUGHT,)),
    ],
)
def test_records_round_trip(artifacts: CallArtifacts) -> None:
    assert decode_artifacts(encode_artifacts(artifacts)) == artifacts
    assert artifacts


def test_an_empty_record_is_falsy() -> None:
    assert not CallArtifacts()


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"[]", b'{"v": 2, "sig": "YQ=="}', b'{"v": 1, "sig": "not base64!"}', b'{"v": 1, "sig": 5}',
     b'{"v": 1, "pre": {"type": "thinking"}}', b'{"v": 1, "pre": ["text"]}'],
)  # fmt: skip
def test_what_is_not_a_record_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError):
        decode_artifacts(raw)


def test_the_scope_is_caller_model_and_conversation() -> None:
    request = _request(source_agent="a", session_id="s")
    base = conversation_digest(request, "gemini", "m", request.messages[:1])
    assert base == conversation_digest(
        _request(source_agent="a", session_id="s"), "gemini", "m", request.messages[:1]
    )
    others = {
        conversation_digest(_request(source_agent="b", session_id="s"), "gemini", "m", request.messages[:1]),
        conversation_digest(_request(source_agent="a", session_id="t"), "gemini", "m", request.messages[:1]),
        conversation_digest(request, "anthropic", "m", request.messages[:1]),
        conversation_digest(request, "gemini", "n", request.messages[:1]),
        conversation_digest(request, "gemini", "m", request.messages[:2]),
    }
    assert base not in others and len(others) == 5


def test_each_call_is_scoped_by_the_conversation_before_its_turn() -> None:
    request = _request()
    scopes = turn_scopes(request, "openai", "m")
    assert scopes["a"] == scopes["b"] == conversation_digest(request, "openai", "m", request.messages[:1])
    assert scopes["c"] == conversation_digest(request, "openai", "m", request.messages[:4])
    assert (
        turn_scopes(LLMRequest(model="m", messages=[Message(role="user", content="x")]), "openai", "m") == {}
    )


def test_the_key_hashes_the_call_id_under_the_providers_tag() -> None:
    key = artifact_key("gemini", "scope", "call/../*")
    assert key.startswith(keys.tag("gemini") + ":art:") and "*" not in key
    assert key != artifact_key("gemini", "scope2", "call/../*")


def test_system_messages_are_not_part_of_the_scope() -> None:
    """A handoff brings the next agent's instructions: the calls made before it are still found."""
    request = _request()
    with_system = LLMRequest(
        model="m", messages=[Message(role="system", content="You are the specialist."), *request.messages]
    )
    assert turn_scopes(with_system, "gemini", "m") == turn_scopes(request, "gemini", "m")
    edited = LLMRequest(model="m", messages=[Message(role="user", content="bye"), *request.messages[1:]])
    assert turn_scopes(edited, "gemini", "m")["a"] != turn_scopes(request, "gemini", "m")["a"]
