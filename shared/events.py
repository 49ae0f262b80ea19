"""Stream events of a request (token, tool_call, restart, done, error): the one definition and its codec.

On the wire an event is one JSON object that starts with ``type`` and ``index``: ``index`` is the
request's event sequence number, monotonic across attempts, and is also the event's id in the request's
event stream (``0-<index>``), so that a reader resumes after the last index it saw without loss or
repetition. The request's A2A context closes every event (see :func:`context_suffix`).

Every event encodes as ``head + index + tail`` (:func:`split`): the head names the type, the tail holds
the type's fields and the context. The worker's writer joins the three here; the Lua scripts that must
choose the index themselves (``FINISH``, ``CANCEL``) are handed the head and the tail and only join them,
so every event on the wire is built by this module. :func:`decode` reads any of them back into its
class and keeps the bytes it read (``raw``), so a relay passes an event on without encoding it again.

The codec is written by hand over orjson and slotted dataclasses rather than pydantic models because
the hot path is one token event per coalesced batch on both sides. Measured with ``timeit`` (best of 7
runs of 100,000, 2 cores, Python 3.11, pydantic 2.14), per token event with an A2A context: encode
0.49 µs here against 2.0 µs for a pydantic model's ``model_dump_json``; decode 0.95 µs here against
1.05 µs for a pydantic discriminated union's ``validate_json`` and 1.6 µs for the ``orjson.loads`` +
``validate_python`` this module used before. Only the done event's response goes through pydantic
(``LLMResponse``), once per request.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import orjson
from pydantic import ValidationError

from llmrelay.shared.embeddings import EmbeddingResponse, embedding_result_of, encode_embedding_result
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import LLMResponse


class MalformedEventError(ValueError):
    """Bytes that are not one of the events defined here."""


@dataclass(slots=True)
class Event(ABC):
    """What every event has: its index, the A2A context it carried, and the bytes it was read from."""

    type: ClassVar[str]
    head: ClassVar[bytes]

    index: int
    context: dict[str, Any] = field(default_factory=dict, kw_only=True)
    raw: bytes = field(default=b"", kw_only=True, repr=False, compare=False)

    @abstractmethod
    def fields(self) -> bytes:
        """The encoded members after ``index``, each with its leading comma."""

    @property
    def trace_id(self) -> str | None:
        return self.context.get("trace_id")

    @property
    def source_agent(self) -> str | None:
        return self.context.get("source_agent")

    @property
    def session_id(self) -> str | None:
        return self.context.get("session_id")

    def wire(self) -> bytes:
        """The event's bytes: those it was read from, else its encoding with its own context."""
        return self.raw or encode(self, context_suffix(self.context))


@dataclass(slots=True)
class TokenEvent(Event):
    type: ClassVar[str] = "token"
    text: str

    def fields(self) -> bytes:
        return b',"text":%b' % orjson.dumps(self.text)


@dataclass(slots=True)
class ToolCallEvent(Event):
    """A fragment of a tool call: ``id`` and ``name`` come with a call's first fragment."""

    type: ClassVar[str] = "tool_call"
    call_index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""

    def fields(self) -> bytes:
        return b',"call_index":%d,"id":%b,"name":%b,"arguments":%b' % (
            self.call_index,
            orjson.dumps(self.id),
            orjson.dumps(self.name),
            orjson.dumps(self.arguments),
        )


@dataclass(slots=True)
class RestartEvent(Event):
    """The tokens sent so far are void: a new attempt starts from the beginning."""

    type: ClassVar[str] = "restart"
    attempt: int
    reason: str = ""

    def fields(self) -> bytes:
        return b',"attempt":%d,"reason":%b' % (self.attempt, orjson.dumps(self.reason))


@dataclass(slots=True)
class DoneEvent(Event):
    type: ClassVar[str] = "done"
    response: LLMResponse

    def fields(self) -> bytes:
        return b',"response":%b' % self.response.__pydantic_serializer__.to_json(self.response)


@dataclass(slots=True)
class EmbeddingDoneEvent(Event):
    """The one result of an embedding request (vectors as ``shared.embeddings`` encodes them)."""

    type: ClassVar[str] = "embedding_done"
    response: EmbeddingResponse

    def fields(self) -> bytes:
        return b',"response":%b' % encode_embedding_result(self.response)


@dataclass(slots=True)
class ErrorEvent(Event):
    type: ClassVar[str] = "error"
    error: dict[str, Any]

    def fields(self) -> bytes:
        return b',"error":%b' % orjson.dumps(self.error)

    def exception(self) -> LLMRelayError:
        """The error this event carries, as its class, knowing which event carried it."""
        err = LLMRelayError.from_dict(self.error)
        err.event_index = self.index
        return err

    @classmethod
    def of(cls, index: int, error: LLMRelayError) -> ErrorEvent:
        return cls(index, error.to_dict())


StreamEvent = TokenEvent | ToolCallEvent | RestartEvent | DoneEvent | EmbeddingDoneEvent | ErrorEvent
EVENT_TYPES: tuple[type[StreamEvent], ...] = (
    TokenEvent, ToolCallEvent, RestartEvent, DoneEvent, EmbeddingDoneEvent, ErrorEvent,
)  # fmt: skip
TERMINAL = (DoneEvent, EmbeddingDoneEvent, ErrorEvent)
TERMINAL_TYPES = frozenset(cls.type for cls in TERMINAL)

for _cls in EVENT_TYPES:
    _cls.head = b'{"type":%b,"index":' % orjson.dumps(_cls.type)


# -- encoding -----------------------------------------------------------------------------------------


def context_suffix(context: dict[str, Any]) -> bytes:
    """The closing bytes of every event of one request: its A2A context, encoded once per job."""
    if not context:
        return b"}"
    return b"," + orjson.dumps(context)[1:]


def split(event: Event, suffix: bytes = b"}") -> tuple[bytes, bytes]:
    """The event's bytes before and after its index: ``head + b"%d" % index + tail`` encodes it.

    With ``suffix=b""`` the tail leaves the object open, for a writer that appends the context itself.
    """
    return event.head, event.fields() + suffix


def encode(event: Event, suffix: bytes = b"}") -> bytes:
    """The event on the wire, closed by ``suffix`` (its request's :func:`context_suffix`)."""
    return b"%b%d%b%b" % (event.head, event.index, event.fields(), suffix)


# -- decoding -----------------------------------------------------------------------------------------


def decode(raw: bytes | str | dict[str, Any]) -> StreamEvent:
    """The event encoded in ``raw``; MalformedEventError if it is none of ours."""
    if isinstance(raw, dict):
        data, wire = dict(raw), b""
    else:
        wire = raw.encode() if isinstance(raw, str) else raw
        try:
            data = orjson.loads(wire)
        except orjson.JSONDecodeError as exc:
            raise MalformedEventError(f"an event is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise MalformedEventError("an event must be a JSON object")
    kind = data.pop("type", None)
    reader = _READERS.get(kind) if isinstance(kind, str) else None
    if reader is None:
        raise MalformedEventError("an event must have a known type")
    index = data.pop("index", None)
    if type(index) is not int or index < 0:
        raise MalformedEventError("an event's index must be a non-negative integer")
    try:
        # Each reader pops its fields: what is left of ``data`` is the request's context.
        return reader(index, data, wire)
    except (KeyError, TypeError, ValidationError) as exc:
        raise MalformedEventError(f"a malformed {kind} event: {exc}") from None


def _str(data: dict[str, Any], name: str, default: str | None = None) -> str:
    value = data.pop(name, default)
    if type(value) is not str:
        raise TypeError(f"{name} must be a string")
    return value


def _int(data: dict[str, Any], name: str) -> int:
    value = data.pop(name)
    if type(value) is not int:
        raise TypeError(f"{name} must be an integer")
    return value


def _optional_str(data: dict[str, Any], name: str) -> str | None:
    value = data.pop(name, None)
    if value is not None and type(value) is not str:
        raise TypeError(f"{name} must be a string or null")
    return value


def _token(index: int, data: dict[str, Any], wire: bytes) -> TokenEvent:
    return TokenEvent(index, _str(data, "text"), context=data, raw=wire)


def _tool_call(index: int, data: dict[str, Any], wire: bytes) -> ToolCallEvent:
    return ToolCallEvent(
        index,
        _int(data, "call_index"),
        _optional_str(data, "id"),
        _optional_str(data, "name"),
        _str(data, "arguments", ""),
        context=data,
        raw=wire,
    )


def _restart(index: int, data: dict[str, Any], wire: bytes) -> RestartEvent:
    return RestartEvent(index, _int(data, "attempt"), _str(data, "reason", ""), context=data, raw=wire)


def _done(index: int, data: dict[str, Any], wire: bytes) -> DoneEvent:
    return DoneEvent(index, LLMResponse.model_validate(data.pop("response")), context=data, raw=wire)


def _embedding_done(index: int, data: dict[str, Any], wire: bytes) -> EmbeddingDoneEvent:
    try:
        response = embedding_result_of(data.pop("response"))
    except ValueError as exc:
        raise TypeError(str(exc)) from None
    return EmbeddingDoneEvent(index, response, context=data, raw=wire)


def _error(index: int, data: dict[str, Any], wire: bytes) -> ErrorEvent:
    value = data.pop("error")
    if not isinstance(value, dict):
        raise TypeError("error must be an object")
    return ErrorEvent(index, value, context=data, raw=wire)


_READERS: dict[str, Callable[[int, dict[str, Any], bytes], StreamEvent]] = {
    TokenEvent.type: _token,
    ToolCallEvent.type: _tool_call,
    RestartEvent.type: _restart,
    DoneEvent.type: _done,
    EmbeddingDoneEvent.type: _embedding_done,
    ErrorEvent.type: _error,
}


__all__ = [
    "EVENT_TYPES",
    "TERMINAL",
    "TERMINAL_TYPES",
    "DoneEvent",
    "EmbeddingDoneEvent",
    "ErrorEvent",
    "Event",
    "MalformedEventError",
    "RestartEvent",
    "StreamEvent",
    "TokenEvent",
    "ToolCallEvent",
    "context_suffix",
    "decode",
    "encode",
    "split",
]
