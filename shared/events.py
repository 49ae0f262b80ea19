"""Stream events of a request (token, restart, done, error): models and the compact wire codec.

On the wire an event is one JSON object with ``type`` and ``index``: ``index`` is the request's event
sequence number, monotonic across attempts, and is also the event's id in the request's event stream
(``0-<index>``), so that a reader resumes after the last index it saw without loss or repetition.
Token events are encoded by hand because they are the hot path: one per coalesced batch of tokens.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import LLMResponse


class _Event(BaseModel):
    model_config = ConfigDict(extra="allow")
    index: int = Field(ge=0)
    trace_id: str | None = None
    source_agent: str | None = None
    session_id: str | None = None


class TokenEvent(_Event):
    type: Literal["token"] = "token"
    text: str


class RestartEvent(_Event):
    """The tokens sent so far are void: a new attempt starts from the beginning."""

    type: Literal["restart"] = "restart"
    attempt: int
    reason: str = ""


class DoneEvent(_Event):
    type: Literal["done"] = "done"
    response: LLMResponse


class ErrorEvent(_Event):
    type: Literal["error"] = "error"
    error: dict[str, Any]

    def exception(self) -> LLMRelayError:
        return LLMRelayError.from_dict(self.error)


StreamEvent = Annotated[TokenEvent | RestartEvent | DoneEvent | ErrorEvent, Field(discriminator="type")]
_ADAPTER: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)

TERMINAL_TYPES = frozenset({"done", "error"})


def parse_event(raw: bytes | str | dict[str, Any]) -> StreamEvent:
    data = raw if isinstance(raw, dict) else orjson.loads(raw)
    return _ADAPTER.validate_python(data)


def context_suffix(context: dict[str, str]) -> bytes:
    """The closing bytes of every event of one request: its A2A context, encoded once per job."""
    if not context:
        return b"}"
    return b"," + orjson.dumps(context)[1:]


def encode_token(index: int, text: str, suffix: bytes = b"}") -> bytes:
    return b'{"type":"token","index":%d,"text":%b%b' % (index, orjson.dumps(text), suffix)


def encode_restart(index: int, attempt: int, reason: str, suffix: bytes = b"}") -> bytes:
    return b'{"type":"restart","index":%d,"attempt":%d,"reason":%b%b' % (
        index,
        attempt,
        orjson.dumps(reason),
        suffix,
    )


def encode_done(index: int, response: LLMResponse, suffix: bytes = b"}") -> bytes:
    return b'{"type":"done","index":%d,"response":%b%b' % (
        index,
        response.__pydantic_serializer__.to_json(response),
        suffix,
    )


def encode_error(index: int, error: LLMRelayError, suffix: bytes = b"}") -> bytes:
    return b'{"type":"error","index":%d,"error":%b%b' % (index, orjson.dumps(error.to_dict()), suffix)
