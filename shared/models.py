"""The unified request, response and usage models that every interface of llmrelay speaks."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from llmrelay.shared.catalog import Provider, Tier

#: Bounds that refuse absurd input before anything is queued.
MAX_MESSAGES = 2048
MAX_CONTENT_CHARS = 2_000_000
MAX_TOTAL_CHARS = 8_000_000
MAX_TOKENS_LIMIT = 1_000_000
MAX_METADATA_BYTES = 16_384
MAX_TIMEOUT_SECONDS = 3600.0

Role = Literal["system", "user", "assistant"]
Priority = Literal["interactive", "batch"]
FinishReason = Literal["stop", "length", "content_filter", "cancelled", "error", "other"]

#: Request ids travel in Redis key names and URLs: keep them to a safe alphabet.
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]
ContextText = Annotated[str, StringConstraints(max_length=256, pattern=r"^[\x20-\x7e]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False, validate_default=False)


class Message(_Strict):
    role: Role
    content: str = Field(max_length=MAX_CONTENT_CHARS)


class A2AContext(_Strict):
    """Who asked, on behalf of which conversation: carried into provider headers, logs and events."""

    trace_id: ContextText | None = None
    source_agent: ContextText | None = None
    session_id: ContextText | None = None

    def headers(self) -> dict[str, str]:
        """The provider request headers for this context, with W3C traceparent for 32-hex trace ids."""
        out: dict[str, str] = {}
        if self.trace_id:
            out["X-Trace-Id"] = self.trace_id
            tid = self.trace_id.lower()
            if len(tid) == 32 and all(c in "0123456789abcdef" for c in tid) and tid != "0" * 32:
                # The parent span id is derived from the trace id so that every attempt is stable; W3C
                # receivers discard an all-zero parent id, so take the half that is not zero.
                parent = tid[:16] if tid[:16] != "0" * 16 else tid[16:]
                out["traceparent"] = f"00-{tid}-{parent}-01"
        if self.source_agent:
            out["X-Source-Agent"] = self.source_agent
        if self.session_id:
            out["X-Session-Id"] = self.session_id
        return out


class LLMRequest(_Strict):
    """One completion request, for any provider. Unknown fields are refused."""

    model: str | None = Field(default=None, min_length=1, max_length=128)
    tier: Tier | None = None
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    stop: list[Annotated[str, StringConstraints(min_length=1, max_length=256)]] | None = Field(
        default=None, max_length=4
    )
    timeout: float | None = Field(default=None, gt=0.0, le=MAX_TIMEOUT_SECONDS)
    request_id: RequestId | None = None
    priority: Priority = "interactive"
    fallback_models: list[Annotated[str, StringConstraints(min_length=1, max_length=128)]] = Field(
        default_factory=list, max_length=5
    )
    trace_id: ContextText | None = None
    source_agent: ContextText | None = None
    session_id: ContextText | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("stop", mode="before")
    @classmethod
    def _stop_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("temperature", "top_p", "timeout", mode="before")
    @classmethod
    def _int_is_float(cls, value: Any) -> Any:
        # Strict mode refuses 1 for a float field; JSON clients send 1 for 1.0.
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except TypeError as exc:
            raise ValueError(f"metadata must be JSON-serialisable: {exc}") from None
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} are accepted")
        return value

    @field_validator("messages")
    @classmethod
    def _check_conversation(cls, messages: list[Message]) -> list[Message]:
        if all(m.role == "system" for m in messages):
            raise ValueError("messages must contain at least one user or assistant message")
        total = sum(len(m.content) for m in messages)
        if total > MAX_TOTAL_CHARS:
            raise ValueError(f"messages hold {total} characters; at most {MAX_TOTAL_CHARS} are accepted")
        return messages

    @property
    def context(self) -> A2AContext:
        return A2AContext(trace_id=self.trace_id, source_agent=self.source_agent, session_id=self.session_id)

    def a2a(self) -> dict[str, str]:
        """The A2A context fields that are set, as a plain dict (what every event carries)."""
        out: dict[str, str] = {}
        if self.trace_id:
            out["trace_id"] = self.trace_id
        if self.source_agent:
            out["source_agent"] = self.source_agent
        if self.session_id:
            out["session_id"] = self.session_id
        return out

    def log_context(self) -> dict[str, str]:
        """The fields every log line and event of this request is bound with."""
        out: dict[str, str] = {}
        for key in ("request_id", "trace_id", "source_agent", "session_id"):
            value = getattr(self, key)
            if value:
                out[key] = value
        return out


class Usage(_Strict):
    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
        )


class LLMResponse(BaseModel):
    """The unified result. Echoes the request's A2A context."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    model: str
    provider: Provider
    content: str
    finish_reason: FinishReason = "stop"
    usage: Usage = Field(default_factory=Usage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    ttft_ms: float | None = None
    attempts: int = 1
    trace_id: str | None = None
    source_agent: str | None = None
    session_id: str | None = None


__all__ = [
    "A2AContext",
    "FinishReason",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "Priority",
    "Provider",
    "Role",
    "Tier",
    "Usage",
]
