"""Embeddings: the request and response every interface speaks, their routing, and the result's codec.

An embedding request runs through the same queue as a completion (one job kind more in
``shared.jobs``), under the same governance: ALLOWED_MODELS, rate limits, idempotency by
``request_id``, deadlines, retries, dead-lettering, cancellation and the result TTL. It is never
streamed: its one result is the terminal ``EmbeddingDoneEvent``. It never fails over to another model:
vectors of two models do not share a space, so a fallback's vectors would be silently wrong.

Only OpenAI and Gemini have embedding models; Anthropic has no embeddings API, so the catalog holds
no Anthropic embedding model and no embedding request can name one.

In Redis the vectors travel as base64 of little-endian float32 (what OpenAI's own ``base64`` encoding
is): a quarter of the size of JSON numbers, with no loss, since the providers' vectors are float32.
"""

from __future__ import annotations

import array
import base64
import sys
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, field_validator

from llmrelay.shared.catalog import ModelInfo, Provider
from llmrelay.shared.errors import (
    CapabilityNotSupportedError,
    ContextLengthExceededError,
    InvalidRequestError,
)
from llmrelay.shared.models import (
    MAX_TIMEOUT_SECONDS,
    A2AContext,
    ContextText,
    Priority,
    RequestId,
    _Strict,
    bounded_metadata,
)

#: Inputs per request. OpenAI takes 2048 per call, but the result crosses Redis in one message:
#: 512 vectors of 3072 dimensions are 8.4 MB of base64, well inside Redis's pub/sub output limits.
MAX_EMBEDDING_INPUTS = 512
#: Characters per input: past any model's token limit (checked per model as tokens, see ``route``).
MAX_EMBEDDING_INPUT_CHARS = 100_000
MAX_EMBEDDING_TOTAL_CHARS = 2_000_000
MAX_EMBEDDING_DIMENSIONS = 65_536
#: The provider-neutral token estimate (the same ratio ``governance`` uses for prompts).
CHARS_PER_TOKEN = 4

EmbeddingInput = Annotated[str, StringConstraints(min_length=1, max_length=MAX_EMBEDDING_INPUT_CHARS)]


class EmbeddingRequest(_Strict):
    """Texts to turn into vectors with one embedding model. Unknown fields are refused."""

    model: str = Field(min_length=1, max_length=128)
    input: list[EmbeddingInput] = Field(min_length=1, max_length=MAX_EMBEDDING_INPUTS)
    #: Fewer dimensions than the model's own (OpenAI ``dimensions``, Gemini ``outputDimensionality``).
    dimensions: int | None = Field(default=None, ge=1, le=MAX_EMBEDDING_DIMENSIONS)
    timeout: float | None = Field(default=None, gt=0.0, le=MAX_TIMEOUT_SECONDS)
    request_id: RequestId | None = None
    priority: Priority = "interactive"
    trace_id: ContextText | None = None
    source_agent: ContextText | None = None
    session_id: ContextText | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)

    @field_validator("timeout", mode="before")
    @classmethod
    def _int_is_float(cls, value: Any) -> Any:
        return float(value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("input")
    @classmethod
    def _total_bounded(cls, value: list[str]) -> list[str]:
        total = sum(len(text) for text in value)
        if total > MAX_EMBEDDING_TOTAL_CHARS:
            raise ValueError(
                f"input holds {total} characters; at most {MAX_EMBEDDING_TOTAL_CHARS} are accepted"
            )
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata_bounded(cls, value: dict[str, Any]) -> dict[str, Any]:
        return bounded_metadata(value)

    @property
    def context(self) -> A2AContext:
        return A2AContext(trace_id=self.trace_id, source_agent=self.source_agent, session_id=self.session_id)

    def a2a(self) -> dict[str, str]:
        """The A2A context fields that are set (what the terminal event carries)."""
        context = {
            "trace_id": self.trace_id,
            "source_agent": self.source_agent,
            "session_id": self.session_id,
        }
        return {key: value for key, value in context.items() if value}

    def log_context(self) -> dict[str, str]:
        out = {"request_id": self.request_id} if self.request_id else {}
        return {**out, **self.a2a()}


class EmbeddingUsage(BaseModel):
    """Input tokens, as the provider counted them (``total_tokens`` is the same number: no output)."""

    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, prompt_tokens: int) -> EmbeddingUsage:
        return cls(prompt_tokens=prompt_tokens, total_tokens=prompt_tokens)


class EmbeddingResponse(BaseModel):
    """One vector per input, in the input's order. Echoes the request's A2A context."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    model: str
    provider: Provider
    vectors: list[list[float]]
    usage: EmbeddingUsage = Field(default_factory=EmbeddingUsage)
    cost_usd: float = 0.0
    latency_ms: float = 0.0
    attempts: int = 1
    trace_id: str | None = None
    source_agent: str | None = None
    session_id: str | None = None


def estimate_input_tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def check_embedding_model(request: EmbeddingRequest, info: ModelInfo) -> None:
    """Refuse, naming the field, what ``info`` cannot embed: a chat model, too many dimensions, an input
    past the model's token limit (estimated; the provider's own count is the last word)."""
    if info.kind != "embedding":
        raise InvalidRequestError(
            f"{info.name} is a chat model, not an embedding model",
            data={"field": "model", "model": info.name, "kind": info.kind},
        )
    if request.dimensions is not None and (info.dimensions is None or request.dimensions > info.dimensions):
        raise InvalidRequestError(
            f"dimensions {request.dimensions} exceeds {info.name}'s {info.dimensions}",
            data={"field": "dimensions", "limit": info.dimensions, "model": info.name},
        )
    for i, text in enumerate(request.input):
        tokens = estimate_input_tokens(text)
        if tokens > info.context_window:
            raise ContextLengthExceededError(
                f"input[{i}] (about {tokens} tokens) exceeds {info.name}'s limit of {info.context_window} per"
                " input",
                data={"field": f"input[{i}]", "limit": info.context_window},
            )


def chat_model_refused(info: ModelInfo, field: str) -> CapabilityNotSupportedError:
    """The error for a completion that names an embedding model: it cannot chat."""
    return CapabilityNotSupportedError(
        f"{info.name} is an embedding model: ask it through llm.embed or /v1/embeddings",
        data={"field": field, "model": info.name, "kind": info.kind},
    )


# -- the result's codec (the state's ``result`` and the terminal event's payload) -------------------------


def encode_vector(vector: list[float]) -> str:
    """A vector as base64 of little-endian float32 (OpenAI's ``base64`` encoding)."""
    packed = array.array("f", vector)
    if sys.byteorder != "little":  # pragma: no cover - every supported platform is little-endian
        packed.byteswap()
    return base64.b64encode(packed.tobytes()).decode("ascii")


def decode_vector(text: str) -> list[float]:
    packed = array.array("f")
    packed.frombytes(base64.b64decode(text, validate=True))
    if sys.byteorder != "little":  # pragma: no cover
        packed.byteswap()
    return packed.tolist()


def encode_embedding_result(response: EmbeddingResponse) -> bytes:
    data = response.model_dump(mode="json", exclude={"vectors"})
    data["vectors"] = [encode_vector(v) for v in response.vectors]
    return orjson.dumps(data)


def embedding_result_of(data: Any) -> EmbeddingResponse:
    """The response in a decoded result object; ValueError when it is none."""
    if not isinstance(data, dict) or not isinstance(data.get("vectors"), list):
        raise ValueError("not an embedding result")
    try:
        vectors = [decode_vector(v) for v in data["vectors"]]
        return EmbeddingResponse.model_validate({**data, "vectors": vectors})
    except (TypeError, ValueError, ValidationError) as exc:
        raise ValueError(f"not an embedding result: {type(exc).__name__}") from None


def decode_embedding_result(raw: bytes | str) -> EmbeddingResponse:
    """The stored result; InvalidRequestError when the id holds another kind of result (a completion's)."""
    try:
        return embedding_result_of(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValueError):
        raise InvalidRequestError(
            "this request_id already names a request that is not an embedding", data={"field": "request_id"}
        ) from None


__all__ = [
    "MAX_EMBEDDING_INPUTS",
    "MAX_EMBEDDING_INPUT_CHARS",
    "MAX_EMBEDDING_TOTAL_CHARS",
    "EmbeddingRequest",
    "EmbeddingResponse",
    "EmbeddingUsage",
    "check_embedding_model",
    "decode_embedding_result",
    "decode_vector",
    "encode_embedding_result",
    "encode_vector",
    "estimate_input_tokens",
]
