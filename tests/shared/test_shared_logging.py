"""The logging pipeline: every line, structlog or standard library, goes through redaction."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from llmrelay.shared import redaction
from llmrelay.shared.logging import configure_logging, get_logger
from llmrelay.shared.redaction import MASK
from llmrelay.shared.settings import Settings

# A key in the provider's format (masked by pattern) and one in a house format (masked because configured).
CANARY = "sk-proj-" + "CanaryCanary0123456789abcdefXYZ"
HOUSE_KEY = "house-format-canary-7f3a9"


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging changes process-wide state; put it back after each test."""
    monkeypatch.setattr(redaction, "_secrets", set())
    saved_structlog = structlog.get_config()
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    yield
    structlog.configure(**saved_structlog)
    structlog.contextvars.clear_contextvars()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


def settings(**fields: Any) -> Settings:
    fields.setdefault("log_format", "json")
    return Settings(_env_file=None, anthropic_api_key=HOUSE_KEY, **fields)


def configured(**fields: Any) -> io.StringIO:
    stream = io.StringIO()
    configure_logging(settings(**fields), stream=stream)
    return stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_level_timestamp_and_bound_context() -> None:
    stream = configured()
    get_logger("llmrelay.test", request_id="r-1", provider="openai").info("job done", tokens=12)
    (line,) = json_lines(stream)
    assert line["event"] == "job done"
    assert line["level"] == "info"
    assert line["timestamp"].endswith("Z")
    assert (line["request_id"], line["provider"], line["tokens"]) == ("r-1", "openai", 12)


def test_get_logger_without_context() -> None:
    stream = configured()
    get_logger().warning("plain")
    (line,) = json_lines(stream)
    assert (line["event"], line["level"]) == ("plain", "warning")


def test_canary_key_in_a_field_is_masked() -> None:
    stream = configured()
    get_logger().info("calling provider", key=CANARY, headers={"x-api-key": HOUSE_KEY})
    text = stream.getvalue()
    assert CANARY not in text
    assert HOUSE_KEY not in text
    (line,) = json_lines(stream)
    assert line["key"] == MASK
    assert line["headers"] == {"x-api-key": MASK}


def test_canary_key_in_the_event_text_is_masked() -> None:
    stream = configured()
    get_logger().error(f"provider said: Incorrect API key provided: {CANARY}")
    assert CANARY not in stream.getvalue()
    assert json_lines(stream)[0]["event"] == f"provider said: Incorrect API key provided: {MASK}"


def test_canary_key_in_context_variables_is_masked() -> None:
    stream = configured()
    structlog.contextvars.bind_contextvars(authorization=f"Bearer {HOUSE_KEY}")
    get_logger().info("bound")
    assert HOUSE_KEY not in stream.getvalue()
    assert json_lines(stream)[0]["authorization"] == f"Bearer {MASK}"


def test_canary_key_in_a_logged_exception_message_is_masked() -> None:
    stream = configured()
    log = get_logger()
    try:
        raise RuntimeError(f"Incorrect API key provided: {CANARY} / {HOUSE_KEY}")
    except RuntimeError:
        log.exception("provider call failed")
    text = stream.getvalue()
    assert CANARY not in text
    assert HOUSE_KEY not in text
    (line,) = json_lines(stream)
    assert "RuntimeError: Incorrect API key provided: " + MASK in line["exception"]


def test_canary_key_in_an_exception_passed_as_a_field_is_masked() -> None:
    stream = configured()
    error = RuntimeError(f"Incorrect API key provided: {CANARY}")
    get_logger().error("provider call failed", error=error)
    assert CANARY not in stream.getvalue()


def test_named_tuple_field_does_not_break_logging() -> None:
    from urllib.parse import urlsplit

    stream = configured()
    get_logger().info("endpoint", url=urlsplit("https://api.example/v1"))
    assert json_lines(stream)[0]["event"] == "endpoint"


def test_redis_password_from_the_url_is_masked() -> None:
    stream = configured(redis_url="redis://:redis-pass-canary-31@cache:6379/0")
    get_logger().info("connected", password="redis-pass-canary-31")
    assert "redis-pass-canary-31" not in stream.getvalue()


def test_console_format_is_not_json_and_still_masks() -> None:
    stream = configured(log_format="console")
    get_logger().info("calling", key=CANARY)
    text = stream.getvalue()
    assert "calling" in text
    assert CANARY not in text
    assert MASK in text
    with pytest.raises(json.JSONDecodeError):
        json.loads(text.splitlines()[0])


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_console_on_a_terminal_and_json_elsewhere() -> None:
    terminal = _Terminal()
    configure_logging(settings(log_format="auto"), stream=terminal)
    get_logger().info("hello")
    assert not terminal.getvalue().lstrip().startswith("{")

    pipe = configured(log_format="auto")
    get_logger().info("hello")
    assert json_lines(pipe)[0]["event"] == "hello"


def test_level_filters_lower_levels() -> None:
    stream = configured(log_level="warning")
    log = get_logger()
    log.info("dropped")
    log.warning("kept")
    assert [line["event"] for line in json_lines(stream)] == ["kept"]


def test_unknown_level_name_means_info() -> None:
    stream = configured(log_level="chatty")
    log = get_logger()
    log.debug("dropped")
    log.info("kept")
    assert [line["event"] for line in json_lines(stream)] == ["kept"]


def test_default_stream_is_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(settings())
    get_logger().info("to stderr", key=CANARY)
    captured = capsys.readouterr()
    assert "to stderr" in captured.err
    assert CANARY not in captured.err


def test_stdlib_logging_goes_through_redaction() -> None:
    stream = configured()
    logging.getLogger("httpx2").warning("request failed: %s with %s", CANARY, HOUSE_KEY)
    text = stream.getvalue()
    assert "request failed:" in text
    assert CANARY not in text
    assert HOUSE_KEY not in text


def test_stdlib_library_info_lines_are_held_back() -> None:
    stream = configured(log_level="debug")
    logging.getLogger("redis").info("chatty library line")
    logging.getLogger("redis").warning("worth seeing")
    text = stream.getvalue()
    assert "chatty library line" not in text
    assert "worth seeing" in text


def test_stdlib_exception_tracebacks_are_masked() -> None:
    stream = configured()
    try:
        raise ConnectionError(f"auth failed for key {CANARY}")
    except ConnectionError:
        logging.getLogger("httpx2").exception("request failed")
    text = stream.getvalue()
    assert "request failed" in text
    assert CANARY not in text


def test_configuring_twice_keeps_one_stdlib_handler() -> None:
    configured()
    stream = configured()
    assert len(logging.getLogger().handlers) == 1
    logging.getLogger("x").error("once")
    assert stream.getvalue().count("once") == 1
