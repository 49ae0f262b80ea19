"""The unified request, response and usage models that every interface of llmrelay speaks."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import jsonschema
import orjson
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SerializerFunctionWrapHandler,
    StringConstraints,
    Tag,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from llmrelay.shared.catalog import Provider, Tier

#: Bounds that refuse absurd input before anything is queued.
MAX_MESSAGES = 2048
MAX_CONTENT_CHARS = 2_000_000
MAX_TOTAL_CHARS = 8_000_000
MAX_TOKENS_LIMIT = 1_000_000
MAX_METADATA_BYTES = 16_384
MAX_TIMEOUT_SECONDS = 3600.0
MAX_TOOLS = 128
MAX_SCHEMA_BYTES = 65_536
#: An image or document travels inside the job: 20 MiB of base64 (the providers' inline limits are 20-32 MB).
MAX_INLINE_BYTES = 20 * 1024 * 1024
IMAGE_MEDIA_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
DOCUMENT_MEDIA_TYPES = frozenset({"application/pdf"})

Role = Literal["system", "user", "assistant", "tool"]
Priority = Literal["interactive", "batch"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "cancelled", "error", "other"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]

#: Request ids travel in Redis key names and URLs: keep them to a safe alphabet.
RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:\-]{1,128}$")]
ContextText = Annotated[str, StringConstraints(max_length=256, pattern=r"^[\x20-\x7e]*$")]
#: Every provider accepts these function names (OpenAI's rule is the strictest: 64 of [A-Za-z0-9_-]).
ToolName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
ToolCallId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[\x21-\x7e]+$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False, validate_default=False)


def refuse_at(loc: tuple[str | int, ...], message: str, value: Any = None) -> ValidationError:
    """A validation error placed at ``loc`` (relative to the model being validated): raised inside a
    validator, it reaches the caller at the path of the field it is about, not at the model's."""
    error = PydanticCustomError("value_error", "{reason}", {"reason": message})
    return ValidationError.from_exception_data(
        "LLMRequest", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


#: Path elements pydantic inserts for a union's branch after these fields (a content part's or a response
#: format's ``type``, a string or parts content, a tool choice's kind): no field of the request has them.
_UNION_FIELDS = frozenset({"content", "response_format", "tool_choice"})


def field_parts(loc: tuple[str | int, ...] | list[str | int]) -> list[str | int]:
    """The path of the request field a validation error is about, without the union branch labels
    pydantic puts in its ``loc`` (``messages, 0, content, 1, data``)."""
    out: list[str | int] = []
    tagged = False
    for part in loc:
        if tagged and isinstance(part, str):
            tagged = False
            continue
        tagged = part in _UNION_FIELDS or (isinstance(part, int) and out[-1:] == ["content"])
        out.append(part)
    return out


def field_path(loc: tuple[str | int, ...] | list[str | int]) -> str:
    """:func:`field_parts` dotted: ``messages.0.content.1.data``."""
    return ".".join(str(part) for part in field_parts(loc))


def _json_size(value: Any, what: str) -> int:
    try:
        return len(orjson.dumps(value))
    except TypeError as exc:
        raise ValueError(f"{what} must be JSON-serialisable: {exc}") from None


def bounded_metadata(value: dict[str, Any]) -> dict[str, Any]:
    """A request's ``metadata``: JSON, and at most MAX_METADATA_BYTES of it."""
    size = _json_size(value, "metadata")
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes; at most {MAX_METADATA_BYTES} are accepted")
    return value


def _check_schema(schema: dict[str, Any], what: str) -> dict[str, Any]:
    """A JSON Schema (draft 2020-12) of bounded size; refused with the reason when it is not one."""
    if _json_size(schema, what) > MAX_SCHEMA_BYTES:
        raise ValueError(f"{what} is over {MAX_SCHEMA_BYTES} bytes")
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"{what} is not a valid JSON Schema: {exc.message}") from None
    return schema


def _check_base64(data: str, what: str, loc: tuple[str, ...]) -> str:
    if len(data) > MAX_INLINE_BYTES:
        message = f"{what} is {len(data)} bytes of base64; at most {MAX_INLINE_BYTES} are accepted"
        raise refuse_at(loc, message)
    try:
        base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise refuse_at(loc, f"{what} is not valid base64") from None
    return data


class _Tagged(_Strict):
    """A member of a union told apart by ``type``: the tag is written even where defaults are left out
    (a compact dump must still read back as the same kind)."""

    type: str

    @model_serializer(mode="wrap")
    def _with_tag(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        data["type"] = self.type
        return data


class TextPart(_Tagged):
    type: Literal["text"] = "text"
    text: str = Field(max_length=MAX_CONTENT_CHARS)


class ImagePart(_Tagged):
    """An image, by URL (``https://`` or a ``data:`` URL) or inline as base64 ``data`` with its media type."""

    type: Literal["image"] = "image"
    url: str | None = Field(default=None, min_length=1, max_length=MAX_INLINE_BYTES)
    data: str | None = None
    media_type: str | None = None
    detail: Literal["auto", "low", "high"] | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ImagePart:
        if (self.url is None) == (self.data is None):
            raise ValueError("an image part takes either 'url' or 'data' (with 'media_type')")
        if self.data is not None:
            if self.media_type not in IMAGE_MEDIA_TYPES:
                raise refuse_at(
                    ("media_type",), f"image media_type must be one of {sorted(IMAGE_MEDIA_TYPES)}"
                )
            _check_base64(self.data, "image data", ("data",))
        elif self.url is not None and not self.url.startswith(("https://", "http://", "data:image/")):
            raise refuse_at(("url",), "an image url must be http(s):// or a data:image/... URL")
        return self


class DocumentPart(_Tagged):
    """A document (a PDF) inline as base64 ``data``."""

    type: Literal["document"] = "document"
    data: str
    media_type: str = "application/pdf"

    @model_validator(mode="after")
    def _pdf(self) -> DocumentPart:
        if self.media_type not in DOCUMENT_MEDIA_TYPES:
            raise refuse_at(
                ("media_type",), f"document media_type must be one of {sorted(DOCUMENT_MEDIA_TYPES)}"
            )
        _check_base64(self.data, "document data", ("data",))
        return self


ContentPart = Annotated[TextPart | ImagePart | DocumentPart, Field(discriminator="type")]


def _content_kind(value: Any) -> str:
    return "text" if isinstance(value, str) else "parts"


#: A string or a list of parts, told apart by the value's own type, so that a refused part is reported
#: at its own path and not beside a "not a string" error of the other branch.
Content = Annotated[
    Annotated[str, Tag("text")] | Annotated[list[ContentPart], Tag("parts")], Discriminator(_content_kind)
]


class ToolCall(_Strict):
    """A call the model asked for: which tool, with which arguments (a JSON object)."""

    id: ToolCallId
    name: ToolName
    arguments: dict[str, Any] = Field(default_factory=dict)


class Message(_Strict):
    """One turn. ``content`` is a string or a list of parts; an assistant turn may instead (or also)
    carry ``tool_calls``; a ``tool`` turn answers the call named by ``tool_call_id``."""

    role: Role
    content: Content | None = None
    tool_calls: list[ToolCall] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_call_id: ToolCallId | None = None
    name: ToolName | None = None

    @field_validator("content")
    @classmethod
    def _bounded(cls, value: str | list[ContentPart] | None) -> str | list[ContentPart] | None:
        if isinstance(value, str) and len(value) > MAX_CONTENT_CHARS:
            raise ValueError(f"content is over {MAX_CONTENT_CHARS} characters")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Message:
        if self.tool_calls is not None and self.role != "assistant":
            raise refuse_at(("tool_calls",), "only an assistant message carries tool_calls")
        if self.role == "tool":
            if self.tool_call_id is None:
                raise refuse_at(
                    ("tool_call_id",), "a tool message needs the tool_call_id of the call it answers"
                )
            if self.content is None:
                raise refuse_at(("content",), "a tool message needs content (the tool's result)")
        elif self.tool_call_id is not None:
            raise refuse_at(("tool_call_id",), "only a tool message carries tool_call_id")
        if self.content is None and not self.tool_calls:
            raise refuse_at(("content",), "a message needs content (or, from the assistant, tool_calls)")
        if isinstance(self.content, list):
            for k, part in enumerate(self.content):
                if self.role != "user" and part.type != "text":
                    raise refuse_at(("content", k), f"only a user message may carry {part.type} parts")
        return self

    @property
    def parts(self) -> list[TextPart | ImagePart | DocumentPart]:
        """The content as parts (a string is one text part)."""
        if self.content is None:
            return []
        if isinstance(self.content, str):
            return [TextPart(text=self.content)]
        return list(self.content)

    @property
    def text(self) -> str:
        """The text of the content, parts joined by newlines (images and documents left out)."""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.parts if isinstance(part, TextPart))


class Tool(_Strict):
    """A function the model may call: its name, what it does, and its parameters as a JSON Schema."""

    name: ToolName
    description: str | None = Field(default=None, max_length=8192)
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    strict: bool | None = None

    @field_validator("parameters")
    @classmethod
    def _object_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value.get("type") != "object":
            raise ValueError("a tool's parameters must be a JSON Schema of type 'object'")
        return _check_schema(value, "the tool's parameters")


class NamedToolChoice(_Strict):
    name: ToolName


ToolChoice = Literal["auto", "none", "required"] | NamedToolChoice


class TextFormat(_Tagged):
    type: Literal["text"] = "text"


class JSONObjectFormat(_Tagged):
    type: Literal["json_object"] = "json_object"


class JSONSchemaFormat(_Tagged):
    type: Literal["json_schema"] = "json_schema"
    name: ToolName = "response"
    #: What the reply is for, as guidance to the model (OpenAI takes it beside the schema).
    description: str | None = Field(default=None, max_length=8192)
    schema_: dict[str, Any] = Field(alias="schema")
    strict: bool | None = None

    model_config = ConfigDict(extra="forbid", strict=True, populate_by_name=True, serialize_by_alias=True)

    @field_validator("schema_")
    @classmethod
    def _valid(cls, value: dict[str, Any]) -> dict[str, Any]:
        return _check_schema(value, "the response schema")

    @property
    def described_schema(self) -> dict[str, Any]:
        """The schema with the description in it, for providers that take no description beside it."""
        if self.description is None or "description" in self.schema_:
            return self.schema_
        return {**self.schema_, "description": self.description}


ResponseFormat = Annotated[TextFormat | JSONObjectFormat | JSONSchemaFormat, Field(discriminator="type")]


class Reasoning(_Strict):
    """How hard the model thinks: an effort level and/or a token budget, mapped to each provider's control."""

    effort: ReasoningEffort | None = None
    budget_tokens: int | None = Field(default=None, ge=0, le=MAX_TOKENS_LIMIT)


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
    seed: int | None = None
    tools: list[Tool] | None = Field(default=None, min_length=1, max_length=MAX_TOOLS)
    tool_choice: ToolChoice | None = None
    parallel_tool_calls: bool | None = None
    response_format: ResponseFormat | None = None
    reasoning: Reasoning | None = None
    #: Per provider, fields with no portable form, passed to that provider's API as they are. Unportable
    #: by definition; they never override what llmrelay sets (model, messages, limits, headers).
    provider_options: dict[Provider, dict[str, Any]] = Field(default_factory=dict)

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
        return bounded_metadata(value)

    @field_validator("provider_options")
    @classmethod
    def _options_bounded(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        if _json_size(value, "provider_options") > MAX_METADATA_BYTES:
            raise ValueError(f"provider_options is over {MAX_METADATA_BYTES} bytes")
        return value

    @field_validator("messages")
    @classmethod
    def _check_conversation(cls, messages: list[Message]) -> list[Message]:
        if all(m.role == "system" for m in messages):
            raise ValueError("messages must contain at least one user or assistant message")
        total = sum(len(m.text) for m in messages)
        if total > MAX_TOTAL_CHARS:
            raise ValueError(f"messages hold {total} characters; at most {MAX_TOTAL_CHARS} are accepted")
        called: set[str] = set()
        for i, message in enumerate(messages):
            for call in message.tool_calls or ():
                called.add(call.id)
            if message.role == "tool" and message.tool_call_id not in called:
                raise refuse_at(
                    (i, "tool_call_id"),
                    f"messages[{i}].tool_call_id: it answers tool call {message.tool_call_id!r}, which no "
                    "earlier assistant message made",
                )
        return messages

    @model_validator(mode="after")
    def _check_tools(self) -> LLMRequest:
        names = [tool.name for tool in self.tools or ()]
        for i, name in enumerate(names):
            if name in names[:i]:
                raise refuse_at(
                    ("tools", i, "name"), f"tools: each tool needs a name of its own ({name!r} twice)"
                )
        if isinstance(self.tool_choice, NamedToolChoice) and self.tool_choice.name not in names:
            raise refuse_at(
                ("tool_choice",),
                f"tool_choice names {self.tool_choice.name!r}, which is not among the tools",
            )
        if self.tool_choice in ("required",) and not names:
            raise refuse_at(("tool_choice",), "tool_choice 'required' needs tools")
        return self

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
    """Token counts. ``cached_prompt_tokens`` are part of ``prompt_tokens`` (read from the provider's
    cache); ``reasoning_tokens`` are part of ``completion_tokens``."""

    prompt_tokens: int = Field(default=0, ge=0)
    completion_tokens: int = Field(default=0, ge=0)
    total_tokens: int = Field(default=0, ge=0)
    cached_prompt_tokens: int = Field(default=0, ge=0)
    reasoning_tokens: int = Field(default=0, ge=0)

    @classmethod
    def of(cls, prompt_tokens: int, completion_tokens: int, *, cached: int = 0, reasoning: int = 0) -> Usage:
        return cls(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=prompt_tokens + completion_tokens,
            cached_prompt_tokens=cached,
            reasoning_tokens=reasoning,
        )


class LLMResponse(BaseModel):
    """The unified result. Echoes the request's A2A context."""

    model_config = ConfigDict(extra="forbid")

    request_id: str
    model: str
    provider: Provider
    content: str
    tool_calls: list[ToolCall] = Field(default_factory=list)
    #: The reply as JSON when the request asked for ``json_object`` or ``json_schema`` (validated against
    #: the schema); None otherwise.
    parsed: Any = None
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
    "ContentPart",
    "DocumentPart",
    "FinishReason",
    "ImagePart",
    "JSONObjectFormat",
    "JSONSchemaFormat",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "NamedToolChoice",
    "Priority",
    "Provider",
    "Reasoning",
    "ReasoningEffort",
    "ResponseFormat",
    "Role",
    "TextFormat",
    "TextPart",
    "Tier",
    "Tool",
    "ToolCall",
    "ToolChoice",
    "Usage",
]
