"""Faults: what can go wrong, when it goes wrong, and each provider's error bodies.

A fault reaches a request in one of two ways:

- a ``[[sim:fault=...]]`` directive in its last user message (see :mod:`llmrelay.simulator.reply`), optionally
  limited to the first ``times`` requests carrying that exact message text, or to one ``provider`` /
  ``model``;
- a scheduled fault, ``POST /_sim/faults`` with ``{"fault": "429", "retry_after": 1.5, "times": 3,
  "provider": "openai" | "anthropic" | "gemini" | null, "model": null, "after": null}`` (or a list of
  such objects): the next ``times`` matching requests get it (``"times": null`` = until cleared).

A directive fault takes precedence; scheduled faults are only consumed by requests that do not carry
an active directive fault. ``DELETE /_sim/faults`` clears the schedule and the per-message counters.

Fault names: an HTTP status from 400 to 599 (``429``, ``500``, ``503``, ``529``, ``401``, ``400`` ...),
``cut`` (drop the connection after ``after`` chunks), ``overloaded_in_stream`` (Anthropic: an
``overloaded_error`` event after ``after`` deltas; other providers: a cut) and ``hang`` (never answer;
for client timeouts). Aliases: ``overloaded`` = 529, ``rate_limit`` = 429, ``timeout`` = ``hang``.
``529`` is Anthropic's "overloaded" status; the other providers answer 503 instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["PROVIDERS", "Fault", "FaultBook", "error_response", "parse_fault_name"]

PROVIDERS = ("openai", "anthropic", "gemini")

_ALIASES = {
    "overloaded": "529",
    "rate_limit": "429",
    "rate_limited": "429",
    "timeout": "hang",
    "overloaded_stream": "overloaded_in_stream",
    "stream_overloaded": "overloaded_in_stream",
    "drop": "cut",
}
_KINDS = {"cut", "overloaded_in_stream", "hang"}


def parse_fault_name(name: object) -> tuple[str, int | None]:
    """``"429"`` -> ``("status", 429)``; ``"cut"`` -> ``("cut", None)``; raise ValueError if unknown."""
    text = str(name).strip().lower()
    text = _ALIASES.get(text, text)
    if text in _KINDS:
        return text, None
    if text.isdigit() and 400 <= int(text) <= 599:
        return "status", int(text)
    raise ValueError(
        f"unknown fault {name!r}: use an HTTP status 400-599, 'cut', 'overloaded_in_stream' or 'hang'"
    )


@dataclass
class Fault:
    """One fault to apply to one request."""

    kind: str  # "status" | "cut" | "overloaded_in_stream" | "hang"
    status: int | None = None
    retry_after: float | None = None
    after: int | None = None
    # scheduling (scheduled faults only)
    times: int | None = 1
    provider: str | None = None
    model: str | None = None
    name: str = ""

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Fault:
        if not isinstance(spec, dict):
            raise ValueError("a fault must be a JSON object")
        unknown = set(spec) - {"fault", "retry_after", "times", "provider", "model", "after"}
        if unknown:
            raise ValueError(f"unknown fault field(s): {', '.join(sorted(unknown))}")
        if "fault" not in spec:
            raise ValueError("a fault needs a 'fault' field")
        kind, status = parse_fault_name(spec["fault"])
        provider = spec.get("provider")
        if provider is not None:
            provider = str(provider).lower()
            if provider not in PROVIDERS:
                raise ValueError(f"unknown provider {spec['provider']!r}: use one of {', '.join(PROVIDERS)}")
        times = spec.get("times", 1)
        if times is not None:
            times = _non_negative_int("times", times)
        after = spec.get("after")
        if after is not None:
            after = _non_negative_int("after", after)
        retry_after = spec.get("retry_after")
        if retry_after is not None:
            try:
                retry_after = float(retry_after)
            except (TypeError, ValueError):
                raise ValueError("retry_after must be a number of seconds") from None
            if not math.isfinite(retry_after) or retry_after < 0:
                raise ValueError("retry_after must be a number of seconds >= 0")
        model = spec.get("model")
        return cls(
            kind=kind,
            status=status,
            retry_after=retry_after,
            after=after,
            times=times,
            provider=provider,
            model=None if model is None else str(model),
            name=str(spec["fault"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "fault": self.name or (str(self.status) if self.kind == "status" else self.kind),
            "retry_after": self.retry_after,
            "after": self.after,
            "times": self.times,
            "provider": self.provider,
            "model": self.model,
        }

    def matches(self, provider: str, model: str | None) -> bool:
        return (self.provider is None or self.provider == provider) and (
            self.model is None or self.model == model
        )


def _non_negative_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer >= 0")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer >= 0") from None
    if not number.is_integer() or number < 0:
        raise ValueError(f"{name} must be an integer >= 0")
    return int(number)


@dataclass
class FaultBook:
    """Scheduled faults and the per-message counters of ``times=N`` directives."""

    scheduled: list[Fault] = field(default_factory=list)
    prompt_counts: dict[str, int] = field(default_factory=dict)

    def add(self, fault: Fault) -> None:
        if fault.times != 0:
            self.scheduled.append(fault)

    def clear(self) -> None:
        self.scheduled.clear()
        self.prompt_counts.clear()

    def take(self, provider: str, model: str | None) -> Fault | None:
        """The first scheduled fault matching this request, consuming one of its ``times``."""
        if not self.scheduled:
            return None
        for i, fault in enumerate(self.scheduled):
            if fault.matches(provider, model):
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        del self.scheduled[i]
                return fault
        return None

    def seen(self, text: str) -> int:
        """Count a request carrying the message ``text``; return the count so far, this one included."""
        count = self.prompt_counts.get(text, 0) + 1
        self.prompt_counts[text] = count
        return count

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheduled": [f.to_dict() for f in self.scheduled],
            "prompt_counts": dict(self.prompt_counts),
        }


# --------------------------------------------------------------------------------------------------
# Error bodies, in each provider's real shape
# --------------------------------------------------------------------------------------------------

_OPENAI_MESSAGES = {
    400: ("Invalid request (simulated): the request body was rejected.", "invalid_request_error", None),
    403: ("You are not allowed to access this resource (simulated).", "permission_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    409: ("Conflict (simulated).", "invalid_request_error", None),
    422: ("Unprocessable entity (simulated).", "invalid_request_error", None),
    429: (
        "Rate limit reached for requests (simulated). Please try again later.",
        "requests",
        "rate_limit_exceeded",
    ),
    500: ("The server had an error while processing your request. Sorry about that!", "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
    504: ("Gateway timeout.", "server_error", None),
}

_ANTHROPIC_TYPES = {
    400: ("invalid_request_error", "Invalid request (simulated)."),
    401: ("authentication_error", ""),
    402: ("billing_error", "Billing error (simulated)."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit (simulated)."),
    500: ("api_error", "Internal server error (simulated)."),
    503: ("api_error", "Service unavailable (simulated)."),
    504: ("timeout_error", "Request timeout (simulated)."),
    529: ("overloaded_error", "Overloaded"),
}

_GEMINI_STATUS = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument (simulated)."),
    401: ("UNAUTHENTICATED", ""),
    403: ("PERMISSION_DENIED", "The caller does not have permission."),
    404: ("NOT_FOUND", "The requested model was not found."),
    429: ("RESOURCE_EXHAUSTED", "Resource has been exhausted (e.g. check quota)."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report it."),
    503: ("UNAVAILABLE", "The model is overloaded. Please try again later."),
    504: ("DEADLINE_EXCEEDED", "The request timed out. Please try again."),
}


def provider_status(provider: str, status: int) -> int:
    """The status a provider really answers for ``status`` (529 is Anthropic's only)."""
    if status == 529 and provider != "anthropic":
        return 503
    return status


def format_retry_after(seconds: float) -> tuple[bytes, bytes]:
    """``retry-after`` (whole seconds, rounded up, as HTTP requires) and ``retry-after-ms``."""
    return str(math.ceil(seconds)).encode(), str(round(seconds * 1000)).encode()


def error_response(
    provider: str,
    status: int,
    *,
    api_key: str,
    request_id: str,
    retry_after: float | None = None,
    message: str | None = None,
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``(status, JSON body, extra headers)`` of a provider error.

    401 messages quote the key received (``"Incorrect API key provided: sk-..."``), as OpenAI does, so
    that log and error redaction can be tested end to end. ``message`` replaces the text of any other.
    """
    status = provider_status(provider, status)
    given = message  # the branches below rebind ``message`` to each provider's default text
    headers: list[tuple[bytes, bytes]] = []
    if retry_after is None and status == 429:
        retry_after = 1.0
    if retry_after is not None and status in (429, 503, 529):
        whole, millis = format_retry_after(retry_after)
        headers.append((b"retry-after", whole))
        headers.append((b"retry-after-ms", millis))
    if provider == "openai":
        if status == 401:
            message, type_, code = (
                f"Incorrect API key provided: {api_key}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_request_error",
                "invalid_api_key",
            )
        else:
            message, type_, code = _OPENAI_MESSAGES.get(
                status,
                (
                    f"Simulated error {status}.",
                    "server_error" if status >= 500 else "invalid_request_error",
                    None,
                ),
            )
        body: dict[str, Any] = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    elif provider == "anthropic":
        type_, message = _ANTHROPIC_TYPES.get(
            status, ("api_error" if status >= 500 else "invalid_request_error", f"Simulated error {status}.")
        )
        if status == 401:
            message = f"invalid x-api-key: {api_key}"
        body = {"type": "error", "error": {"type": type_, "message": message}, "request_id": request_id}
    else:
        gstatus, message = _GEMINI_STATUS.get(
            status, ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION", f"Simulated error {status}.")
        )
        if status == 401:
            message = f"API key not valid: {api_key}. Please pass a valid API key."
        error: dict[str, Any] = {"code": status, "message": message, "status": gstatus}
        if retry_after is not None and status == 429:
            error["details"] = [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{retry_after:g}s"}
            ]
        body = {"error": error}
    if given is not None and status != 401:
        inner = body["error"]
        inner["message"] = given
    return status, orjson.dumps(body), headers
