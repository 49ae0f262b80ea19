"""Secret redaction: provider keys, tokens and passwords are masked wherever they appear."""

from __future__ import annotations

from collections import namedtuple
from typing import Any

import pytest

from llmrelay.shared import redaction
from llmrelay.shared.redaction import MASK, redact, redact_value, redaction_processor, register_secrets

OPENAI_KEY = "sk-" + "Ab3dEf6hIj9kLm2nOp5qRs8t"
OPENAI_PROJECT_KEY = "sk-proj-" + "Xy_9-Zw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0FeDcBa"
OPENAI_SERVICE_KEY = "sk-svcacct-" + "Q1w2E3r4T5y6U7i8O9p0"
ANTHROPIC_KEY = "sk-ant-api03-" + "aB1cD2eF3gH4iJ5kL6mN7oP8qR9sT0uV-wX_yZ"
GOOGLE_KEY = "AIza" + "SyD-1234567890abcdefghijklmnopqrs"


@pytest.fixture(autouse=True)
def isolated_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """Secrets registered by one test must not mask text in another."""
    monkeypatch.setattr(redaction, "_secrets", set())


@pytest.mark.parametrize(
    "key", [OPENAI_KEY, OPENAI_PROJECT_KEY, OPENAI_SERVICE_KEY, ANTHROPIC_KEY, GOOGLE_KEY]
)
@pytest.mark.parametrize(
    "template",
    [
        "{}",
        "Incorrect API key provided: {}. You can find your API key at ...",
        'headers={{"authorization": "{}"}}',
        "key={} and more",
        "(\n{}\n)",
    ],
)
def test_provider_keys_are_masked(key: str, template: str) -> None:
    out = redact(template.format(key))
    assert key not in out
    assert key[-8:] not in out
    assert MASK in out


def test_google_key_in_a_query_string_is_masked() -> None:
    url = (
        f"https://generativelanguage.googleapis.com/v1beta/models/x:generateContent?key={GOOGLE_KEY}&alt=sse"
    )
    out = redact(url)
    assert GOOGLE_KEY not in out
    assert out.endswith("&alt=sse")


@pytest.mark.parametrize(
    "text",
    [
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
        "authorization: bearer opaque-token_123~+/==",
        "BEARER abc.def.ghi",
    ],
)
def test_bearer_tokens_are_masked(text: str) -> None:
    token = text.split()[-1]
    assert redact(text) == text[: text.rindex(token)] + MASK


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("api_key=hunter2-secret-value", "hunter2-secret-value"),
        ("apikey: plain-secret", "plain-secret"),
        ("API-KEY = spaced-secret", "spaced-secret"),
        ('{"api_key": "json-secret", "model": "gpt-6.1-terra"}', "json-secret"),
        ("x-api-key: anthropic-style-secret", "anthropic-style-secret"),
        ("{'x-api-key': 'dict-repr-secret'}", "dict-repr-secret"),
        ("X-Goog-Api-Key: goog-secret", "goog-secret"),
        ("OPENAI_API_KEY=env-style-secret ./run", "env-style-secret"),
    ],
)
def test_key_assignments_and_headers_are_masked(text: str, secret: str) -> None:
    out = redact(text)
    assert secret not in out
    assert MASK in out


def test_key_assignment_keeps_the_surrounding_text() -> None:
    assert (
        redact('{"api_key": "s3cr3t", "model": "gpt-6.1-terra"}') == '{"api_key": "[REDACTED]", "model": "gpt-6.1-terra"}'
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:p4ssw0rd@cache:6379/0", "redis://:[REDACTED]@cache:6379/0"),
        ("rediss://default:p4ssw0rd@cache:6380", "rediss://default:[REDACTED]@cache:6380"),
        ("https://user:pa55@proxy.internal/v1", "https://user:[REDACTED]@proxy.internal/v1"),
    ],
)
def test_url_passwords_are_masked(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_registered_secrets_are_masked_wherever_they_appear() -> None:
    register_secrets(["plain-house-token", "pw$with.regex*chars"])
    out = redact("token plain-house-token in text, glued:plain-house-tokenX and pw$with.regex*chars")
    assert "plain-house-token" not in out
    assert "pw$with.regex*chars" not in out
    assert out.count(MASK) == 3


def test_short_and_empty_secrets_are_not_registered() -> None:
    register_secrets(["", "abc"])
    assert redact("abc and a b c") == "abc and a b c"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "hello world",
        "model gpt-6.1-terra answered in 12 ms",
        "claude-sonnet-5-5 via anthropic",
        "request_id=req-01J9Z8 trace_id=4bf92f3577b34da6a3ce929d0e0e4736",
        "sk-learn is a library",
        "connecting to redis://127.0.0.1:6379/0",
        "http://127.0.0.1:8900/v1 is the simulator",
        "mail me at someone@example.com",
        "api_key is required",
        "set OPENAI_API_KEY in your shell",
        '{"type": "token", "index": 3, "text": "über ✓"}',
    ],
)
def test_innocent_text_is_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "source_agent=risk-assessment-agent",
        "request_id=desk-booking-2024-11-25-0001",
        "task-0123456789abcdefghij finished",
    ],
)
def test_words_merely_containing_sk_dash_are_unchanged(text: str) -> None:
    # Agent names and request ids appear on every log line; masking them breaks correlation.
    assert redact(text) == text


def test_redact_value_walks_nested_structures() -> None:
    value: dict[str, Any] = {
        "headers": {"authorization": f"Bearer {OPENAI_KEY}", "x-request-id": "r1"},
        "attempts": [1, f"failed: {ANTHROPIC_KEY}", ("tuple", GOOGLE_KEY)],
        "count": 3,
        "ratio": 0.5,
        "ok": True,
        "none": None,
    }
    out: Any = redact_value(value)
    assert out["headers"] == {"authorization": f"Bearer {MASK}", "x-request-id": "r1"}
    assert out["attempts"][0] == 1
    assert out["attempts"][1] == f"failed: {MASK}"
    assert out["attempts"][2] == ("tuple", MASK)
    assert isinstance(out["attempts"][2], tuple)
    assert (out["count"], out["ratio"], out["ok"], out["none"]) == (3, 0.5, True, None)
    assert OPENAI_KEY in value["headers"]["authorization"]  # the input is not modified


def test_redact_value_passes_other_values_through() -> None:
    marker = object()
    assert redact_value(marker) is marker
    assert redact_value(b"bytes") == b"bytes"


def test_redact_value_keeps_named_tuples_working() -> None:
    Endpoint = namedtuple("Endpoint", "url key")
    out: Any = redact_value(Endpoint("https://api.example", OPENAI_KEY))
    assert OPENAI_KEY not in repr(out)


def test_processor_masks_every_field() -> None:
    register_secrets(["house-secret-1"])
    event = {"event": f"call failed with {OPENAI_KEY}", "detail": {"token": "house-secret-1"}, "n": 1}
    assert redaction_processor(None, "info", event) == {
        "event": f"call failed with {MASK}",
        "detail": {"token": MASK},
        "n": 1,
    }
