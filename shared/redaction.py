"""Secret redaction for every text that leaves a process: log lines, error messages, Redis payloads."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

MASK = "[REDACTED]"

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(?<![A-Za-z0-9])sk-ant-[A-Za-z0-9_\-]{8,}"), MASK),  # Anthropic
    (re.compile(r"(?<![A-Za-z0-9])sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"), MASK),  # OpenAI
    (re.compile(r"AIza[0-9A-Za-z_\-]{30,}"), MASK),  # Google
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/\-]+=*"), r"\1" + MASK),
    (
        re.compile(r"(?i)((?:x-api-key|x-goog-api-key|api[_-]?key)[\"']?\s*[:=]\s*[\"']?)[^\s\"',}]+"),
        r"\1" + MASK,
    ),
    (re.compile(r"(://[^:/@\s]*:)[^@/\s]+(@)"), r"\1" + MASK + r"\2"),  # password in a URL
]

_secrets: set[str] = set()


def register_secrets(values: Iterable[str]) -> None:
    """Add exact values (configured keys, tokens, passwords) that must be masked wherever they appear."""
    _secrets.update(v for v in values if v and len(v) >= 4)


def redact(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def redact_value(value: Any) -> Any:
    """Redact strings inside nested dicts, lists and tuples (other values pass through)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(redact_value(v) for v in value))
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value


def redaction_processor(_logger: Any, _method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask secrets in every field of every log line."""
    return {k: redact_value(v) for k, v in event_dict.items()}
