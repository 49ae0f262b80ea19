"""What the provider adapters share: the HTTP pool, header parsing and the status → error table."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypedDict

import httpx2

from llmrelay.shared.catalog import Provider
from llmrelay.shared.embeddings import estimate_input_tokens
from llmrelay.shared.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    InvalidRequestError,
    LLMRelayError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestTimeoutError,
    UnknownModelError,
)
from llmrelay.shared.models import FinishReason
from llmrelay.shared.redaction import redact, register_secrets
from llmrelay.shared.settings import Settings

#: Where each SDK goes when no base URL is configured (given explicitly so no SDK reads the environment).
DEFAULT_BASE_URLS: dict[Provider, str] = {
    "openai": "https://api.openai.com/v1",
    "anthropic": "https://api.anthropic.com",
    "gemini": "https://generativelanguage.googleapis.com",
}

#: Stands in for a missing key where an SDK refuses to be built without one; never sent.
PLACEHOLDER_KEY = "missing"

#: Provider error text is cut to this length before it becomes part of a shared error.
MAX_MESSAGE_CHARS = 400

_CONTEXT_LENGTH = re.compile(
    r"context[ _-]?length|context window|prompt is too long|maximum number of tokens|"
    r"input token count|too many (?:input )?tokens|maximum context",
    re.IGNORECASE,
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|h|m|s)")
_DURATION_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def read_key(settings: Settings, provider: Provider) -> str | None:
    """The provider's key in clear, registered for redaction; None when none is configured."""
    secret = settings.api_key(provider)
    value = secret.get_secret_value().strip() if secret is not None else ""
    if not value:
        return None
    register_secrets([value])
    return value


def base_url(settings: Settings, provider: Provider) -> str:
    return settings.base_url(provider) or DEFAULT_BASE_URLS[provider]


class ClientOptions(TypedDict):
    """The constructor arguments the OpenAI and Anthropic SDKs share (both are generated alike)."""

    api_key: str
    base_url: str
    max_retries: int
    timeout: float
    http_client: httpx2.AsyncClient


def client_options(
    settings: Settings, provider: Provider, key: str, http: httpx2.AsyncClient
) -> ClientOptions:
    """Our pool, our base URL, the SDK's own retries off (the worker retries, so the limiter sees it)."""
    return ClientOptions(
        api_key=key,
        base_url=base_url(settings, provider),
        max_retries=0,
        timeout=settings.request_timeout,
        http_client=http,
    )


def build_http_client(settings: Settings) -> httpx2.AsyncClient:
    """One connection pool per provider, sized on purpose.

    In flight, as many connections as the worker runs jobs (a smaller cap would queue calls inside the
    SDK); idle, only ``http_pool_size``: httpx2 gets slower on every request as its idle pool grows.
    """
    idle = settings.http_pool_size
    return httpx2.AsyncClient(
        limits=httpx2.Limits(
            max_connections=max(idle, settings.worker_concurrency), max_keepalive_connections=idle
        ),
        timeout=settings.request_timeout,
    )


def clean_text(text: object) -> str:
    """Provider text made safe to show: secrets masked, one line, bounded."""
    try:
        raw = str(text)
    except Exception:
        # An exception whose __str__ fails must not turn a translation into a new failure.
        raw = ""
    # Redact before cutting, so that a cut can never leave a key's prefix behind unmasked.
    flat = redact(" ".join(raw.split()))
    if len(flat) > MAX_MESSAGE_CHARS:
        flat = flat[:MAX_MESSAGE_CHARS] + "…"
    return flat


# -- headers ------------------------------------------------------------------------------------------


def header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def parse_duration(value: str | None) -> float | None:
    """Seconds from OpenAI's Go-style durations ("1s", "6m0s", "20ms", "1h2m3.5s") or a bare number."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    total, position = 0.0, 0
    for match in _DURATION_PART.finditer(value):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    return total if position and position == len(value) else None


def seconds_until(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from now until an RFC 3339 timestamp (Anthropic's ``...-reset`` headers), never negative."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """``retry-after-ms`` if present (the more precise), else ``retry-after`` in seconds or as a date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            value = float(millis) / 1000.0
        except ValueError:
            pass
        else:
            if math.isfinite(value) and value >= 0:
                return value
    raw = headers.get("retry-after")
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        moment = parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


# -- errors -------------------------------------------------------------------------------------------


def status_error(
    provider: Provider,
    status: int,
    text: object,
    *,
    retry_after: float | None = None,
    code: object = None,
    http_status: int | None = None,
) -> LLMRelayError:
    """The shared error for a provider's HTTP status, or for the status an in-stream error stands for.

    ``http_status`` is what the wire said when it differs from ``status`` (an error event inside a
    stream that began with 200).
    """
    message = f"{provider}: {clean_text(text)}"
    data: dict[str, Any] = {"provider": provider, "status": status if http_status is None else http_status}
    if code:
        data["code"] = clean_text(code)
    if status == 429:
        return RateLimitedError(message, retry_after=retry_after, data=data)
    if retry_after is not None:
        data["retry_after"] = retry_after
    if status in (400, 413, 422):
        if _CONTEXT_LENGTH.search(f"{code or ''} {text}"):
            return ContextLengthExceededError(message, data=data)
        return InvalidRequestError(message, data=data)
    if status == 401:
        return AuthenticationError(message, data=data)
    if status == 403:
        return PermissionDeniedError(message, data=data)
    if status == 404:
        return UnknownModelError(message, data=data)
    if status == 408:
        return RequestTimeoutError(message, data=data)
    if status >= 500:
        return ProviderUnavailableError(message, data=data)
    return ProviderError(message, data=data)


def timeout_error(provider: Provider, detail: object = "") -> RequestTimeoutError:
    return RequestTimeoutError(
        f"{provider} timed out: {clean_text(detail) or 'no response in time'}",
        data={"provider": provider, "status": None},
    )


def connection_error(provider: Provider, detail: object = "") -> ProviderUnavailableError:
    """A refused or dropped connection, or a stream that ended before the provider said it was done."""
    return ProviderUnavailableError(
        f"{provider} connection failed: {clean_text(detail) or 'connection error'}",
        data={"provider": provider, "status": None},
    )


def transport_error(provider: Provider, exc: httpx2.HTTPError | httpx2.StreamError) -> LLMRelayError:
    """An httpx2 failure below the SDK: timeouts, refused or dropped connections, cut streams."""
    detail = clean_text(exc) or type(exc).__name__
    if isinstance(exc, httpx2.TimeoutException):
        return timeout_error(provider, detail)
    if isinstance(exc, httpx2.HTTPStatusError):
        return status_error(
            provider, exc.response.status_code, detail, retry_after=parse_retry_after(exc.response.headers)
        )
    if isinstance(exc, httpx2.TransportError):
        return connection_error(provider, f"{type(exc).__name__}: {detail}")
    return ProviderError(
        f"{provider} transport error: {type(exc).__name__}: {detail}",
        data={"provider": provider, "status": None},
    )


def wrapped_connection_error(
    provider: Provider, exc: BaseException, message: str, *, timed_out: bool
) -> LLMRelayError:
    """An SDK's connection error: the httpx2 failure it wraps (inside a stream, a cut or a read
    timeout), else a timeout or a failed connection."""
    cause = exc.__cause__
    if isinstance(cause, httpx2.HTTPError):
        return transport_error(provider, cause)
    if timed_out:
        return timeout_error(provider)
    return connection_error(provider, message)


def refused(provider: Provider, field: str, why: str) -> InvalidRequestError:
    """A request field this provider cannot take, named (before any call is made)."""
    return InvalidRequestError(
        f"{provider}: {field}: {why}", data={"provider": provider, "status": None, "field": field}
    )


def other_error(provider: Provider, exc: BaseException) -> LLMRelayError:
    """What falls outside an SDK's own error classes: an httpx2 failure below it, or anything else."""
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return transport_error(provider, exc)
    return unexpected_error(provider, exc)


def unexpected_error(provider: Provider, exc: BaseException) -> ProviderError:
    """Anything an SDK raises outside its own hierarchy (a reply it could not parse, say)."""
    return ProviderError(
        f"{provider} call failed: {type(exc).__name__}: {clean_text(exc)}",
        data={"provider": provider, "status": None},
    )


def finish_reason(raw: str | None, table: Mapping[str, FinishReason]) -> FinishReason:
    if raw is None:
        return "other"
    return table.get(raw, "other")


def embedding_batches(texts: list[str], max_inputs: int, max_tokens: int | None = None) -> list[list[str]]:
    """The inputs cut, in order, into the provider's per-call limits: at most ``max_inputs`` texts and,
    when given, about ``max_tokens`` tokens (estimated) each."""
    batches: list[list[str]] = []
    current: list[str] = []
    tokens = 0
    for text in texts:
        cost = estimate_input_tokens(text)
        too_many = max_tokens is not None and tokens + cost > max_tokens
        if current and (len(current) == max_inputs or too_many):
            batches.append(current)
            current, tokens = [], 0
        current.append(text)
        tokens += cost
    if current:
        batches.append(current)
    return batches
