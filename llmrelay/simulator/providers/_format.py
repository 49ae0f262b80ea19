"""What every provider's wire format shares: the call, the stream plan, templates and body readers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import orjson

from ..tools import PlannedCall

_SLOT_RE = re.compile(rb'"\\u0000(\d)\\u0000"')
S0, S1, S2 = "\x000\x00", "\x001\x00", "\x002\x00"


class Template:
    """A JSON document with slots, rendered by byte concatenation (no per-chunk serialisation)."""

    __slots__ = ("parts",)

    def __init__(self, obj: Any, prefix: bytes = b"data: ", suffix: bytes = b"\n\n") -> None:
        raw = prefix + orjson.dumps(obj) + suffix
        pieces = _SLOT_RE.split(raw)
        # [text, slot, text, slot, text ...] -> [(text, slot index), ...] + final text
        self.parts: tuple[Any, ...] = tuple(int(p) if i % 2 else p for i, p in enumerate(pieces))

    def render(self, *values: bytes) -> bytes:
        parts = self.parts
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(values[parts[i]])
            out.append(parts[i + 1])
        return b"".join(out)


def sse(obj: Any, event: str | None = None) -> bytes:
    head = b"event: " + event.encode() + b"\n" if event else b""
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


@dataclass(slots=True)
class Call:
    """What the simulator needs to know about one provider request."""

    provider: str  # "openai" | "anthropic" | "gemini"
    api: str  # "chat" | "responses" | "messages" | "gemini"
    model: str
    stream: bool
    last_user: str  # raw text of the last user message, directives included
    prompt: str  # cleaned prompt (the seed of the reply)
    prompt_tokens: int
    max_tokens: int | None
    include_usage: bool = False
    body: dict[str, Any] = field(default_factory=dict)
    agent: Agent = field(default_factory=lambda: Agent())
    #: The tool calls this reply makes (decided by :func:`..tools.plan_calls`); empty for a text reply.
    planned: list[PlannedCall] = field(default_factory=list)


@dataclass(slots=True)
class StreamPlan:
    """A streamed reply: ``preamble`` then one event per token, then ``epilogue``."""

    preamble: bytes
    events: list[bytes]
    epilogue: bytes
    error_event: bytes | None = None  # Anthropic in-stream overloaded error


#: What one image or document adds to the prompt tokens (its acknowledgement in the usage).
MEDIA_TOKENS = 85


class WireError(Exception):
    """The request breaks a rule the real API enforces (e.g. a tool result for a call never made): 400."""


@dataclass(frozen=True, slots=True)
class Agent:
    """What a request asks beyond plain chat, as a reader finds it in the provider's body."""

    #: The declared tools: (name, parameters JSON Schema), in order.
    tools: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: ``auto`` | ``none`` | ``required`` | a tool's name | None (not given).
    tool_choice: str | None = None
    #: The conversation's last turn is a tool result (so the model answers in text).
    answered: bool = False
    #: Parallel tool calls allowed (the provider's default unless the request turns them off).
    parallel: bool = True
    #: A JSON reply was asked for: the schema (``{}`` for "any JSON object"), or None for text.
    schema: dict[str, Any] | None = None
    #: Images and documents in the conversation (each acknowledged in the prompt tokens).
    media: int = 0
    #: The request turned the model's visible reasoning on (Anthropic ``thinking``, OpenAI
    #: ``include: ["reasoning.encrypted_content"]``): the reply opens with a signed reasoning block.
    thinking: bool = False


class Prompt(NamedTuple):
    """What a reader finds in a request body."""

    last_user: str  # raw text of the last user message, directives included
    words: int  # whitespace-separated words across every message, system text included
    max_tokens: int | None
    include_usage: bool = False
    agent: Agent = Agent()


def text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if isinstance(part, str):
                texts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    texts.append(text)
        return "\n".join(texts)
    if isinstance(content, dict):
        text = content.get("text")
        if isinstance(text, str):
            return text
        return text_of(content.get("parts"))
    return ""


def as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
