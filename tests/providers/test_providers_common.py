"""The shared helpers of the adapters: header parsing, the status table, text cleaning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from provider_test_support import CANARY_KEYS

from llmrelay.shared.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ProviderError,
    RateLimitedError,
)
from llmrelay.shared.redaction import MASK, register_secrets
from llmrelay.worker.providers import _common

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("59.2s", 59.2),
        ("0s", 0.0),
        ("250us", 0.00025),
        ("7", 7.0),
        ("0.5", 0.5),
        (" 2s ", 2.0),
    ],
)
def test_openai_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert _common.parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "1x", "s", "1s2", "-1", "nan", "inf", "1s junk"])
def test_unreadable_durations_are_none(text: str | None) -> None:
    assert _common.parse_duration(text) is None


def test_retry_after_ms_wins_over_retry_after() -> None:
    assert _common.parse_retry_after({"retry-after": "2", "retry-after-ms": "1500"}) == 1.5


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert _common.parse_retry_after({"retry-after": "3"}) == 3.0
    when = datetime.fromtimestamp(NOW + 30, tz=UTC)
    headers = {"retry-after": format_datetime(when, usegmt=True)}
    assert _common.parse_retry_after(headers, now=NOW) == pytest.approx(30.0)
    past = {"retry-after": format_datetime(datetime.fromtimestamp(NOW - 30, tz=UTC), usegmt=True)}
    assert _common.parse_retry_after(past, now=NOW) == 0.0


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"retry-after": "later"},
        {"retry-after": "-4"},
        {"retry-after-ms": "x"},
        {"retry-after": "Mon, 01 Jan 2024 00:00:00"},  # a date without a zone is ambiguous
    ],
)
def test_unreadable_retry_after_is_none(headers: dict[str, str]) -> None:
    assert _common.parse_retry_after(headers, now=NOW) is None


def test_bad_retry_after_ms_falls_back_to_retry_after() -> None:
    assert _common.parse_retry_after({"retry-after-ms": "-5", "retry-after": "4"}) == 4.0


def test_rfc3339_reset_is_seconds_from_now() -> None:
    reset = datetime.fromtimestamp(NOW, tz=UTC) + timedelta(seconds=12.5)
    assert _common.seconds_until(reset.isoformat().replace("+00:00", "Z"), now=NOW) == pytest.approx(12.5)
    assert _common.seconds_until("2020-01-01T00:00:00Z", now=NOW) == 0.0
    for bad in (None, "", "tomorrow", "2026-01-01T00:00:00"):
        assert _common.seconds_until(bad, now=NOW) is None


def test_header_int_ignores_what_is_not_a_number() -> None:
    assert _common.header_int({"a": "12"}, "a") == 12
    assert _common.header_int({"a": "12.0"}, "a") == 12
    assert _common.header_int({"a": "many"}, "a") is None
    assert _common.header_int({}, "a") is None


@pytest.mark.parametrize(
    "text",
    [
        "This model's maximum context length is 8192 tokens",
        "prompt is too long: 210000 tokens > 200000 maximum",
        "The input token count (2000000) exceeds the maximum number of tokens allowed (1048576).",
    ],
)
def test_context_length_messages_are_recognised(text: str) -> None:
    assert type(_common.status_error("openai", 400, text)) is ContextLengthExceededError


def test_context_length_code_is_recognised() -> None:
    error = _common.status_error("openai", 400, "too big", code="context_length_exceeded")
    assert type(error) is ContextLengthExceededError
    assert type(_common.status_error("openai", 400, "bad field")) is InvalidRequestError


def test_rate_limit_keeps_retry_after_on_the_error_and_in_its_data() -> None:
    error = _common.status_error("anthropic", 429, "slow down", retry_after=2.0)
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.0
    assert error.to_dict()["data"] == {"provider": "anthropic", "status": 429, "retry_after": 2.0}


def test_unknown_client_status_is_a_provider_error() -> None:
    assert type(_common.status_error("gemini", 409, "conflict")) is ProviderError


def test_clean_text_masks_keys_flattens_and_bounds() -> None:
    key = CANARY_KEYS["openai"]
    register_secrets([key])
    cleaned = _common.clean_text(f"bad\nkey:\t{key}")
    assert cleaned == f"bad key: {MASK}"
    # A key that straddles the cut is masked before the cut, never left half visible.
    padded = "x" * (_common.MAX_MESSAGE_CHARS - 10) + " " + key + " tail"
    cleaned = _common.clean_text(padded)
    assert key[:10] not in cleaned
    assert len(cleaned) <= _common.MAX_MESSAGE_CHARS + 1


def test_clean_text_survives_an_object_whose_str_fails() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert _common.clean_text(Broken()) == ""


def test_finish_reason_table_lookup() -> None:
    table = {"stop": "stop"}
    assert _common.finish_reason("stop", table) == "stop"  # type: ignore[arg-type]
    assert _common.finish_reason("tool_calls", table) == "other"  # type: ignore[arg-type]
    assert _common.finish_reason(None, table) == "other"  # type: ignore[arg-type]
