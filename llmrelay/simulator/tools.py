"""Tool calls and structured replies, decided the same way for every simulated provider.

When a request declares tools, the simulator calls them unless the conversation's last turn is a tool
result (then it answers in text, as a model does after using its tools), or ``tool_choice`` says
``none``. ``required`` and a named choice always call. It calls the first tool (or the named one) with
arguments built from that tool's JSON Schema; ``[[sim:calls=N]]`` in the prompt makes it call the first
N tools at once (parallel calls), unless the request turned parallel calls off. Arguments and JSON
replies are deterministic: the same schema always gives the same value.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from .reply import reply_for

__all__ = ["PlannedCall", "call_id", "instance_of", "json_tokens", "plan_calls"]

_MAX_DEPTH = 8


@dataclass(frozen=True, slots=True)
class PlannedCall:
    name: str
    arguments: dict[str, Any]


def instance_of(schema: Any, depth: int = 0) -> Any:
    """A value that validates against ``schema`` (the common JSON Schema keywords), always the same one."""
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if isinstance(schema.get(key), list) and schema[key]:
            return instance_of(schema[key][0], depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), kind[0] if kind else None)
    if kind == "object" or (kind is None and "properties" in schema):
        properties = schema.get("properties") or {}
        return {name: instance_of(sub, depth + 1) for name, sub in properties.items()}
    if kind == "array":
        count = max(1, int(schema.get("minItems", 1)))
        return [instance_of(schema.get("items", {}), depth + 1) for _ in range(count)]
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        return int(
            schema.get(
                "minimum", schema.get("exclusiveMinimum", 0) + 1 if "exclusiveMinimum" in schema else 1
            )
        )
    if kind == "number":
        return float(schema.get("minimum", 1.5))
    if kind == "boolean":
        return True
    return None


def _string(schema: dict[str, Any]) -> str:
    fmt = schema.get("format")
    if fmt == "date":
        return "2026-01-01"
    if fmt == "date-time":
        return "2026-01-01T00:00:00Z"
    if fmt == "email":
        return "sim@example.com"
    if fmt in ("uri", "url"):
        return "https://example.com/sim"
    text = "alpha"
    least = int(schema.get("minLength", 0))
    return (text * (least // len(text) + 1))[: max(least, len(text))]


def plan_calls(
    tools: list[tuple[str, dict[str, Any]]],
    choice: str | None,
    *,
    answered: bool,
    calls: int | None,
    parallel: bool = True,
) -> list[PlannedCall]:
    """Which tools to call, with which arguments; ``[]`` to answer in text.

    ``tools``: (name, parameters schema) in the request's order; ``choice``: ``auto``, ``none``,
    ``required``, a tool's name, or None; ``answered``: the last turn is a tool result; ``calls``:
    the ``[[sim:calls=N]]`` directive.
    """
    if not tools or choice == "none":
        return []
    named = choice not in (None, "auto", "required")
    if answered and not named and choice != "required":
        return []
    if named:
        chosen = [t for t in tools if t[0] == choice][:1]
    else:
        count = 1 if not parallel else max(1, min(calls or 1, len(tools)))
        chosen = tools[:count]
    return [PlannedCall(name, instance_of(schema) or {}) for name, schema in chosen]


def call_id(prefix: str, rid: str, index: int) -> str:
    """A call id in the provider's style (``call_``, ``toolu_``), stable for one response."""
    digest = hashlib.blake2b(f"{rid}:{index}".encode(), digest_size=12).hexdigest()
    return f"{prefix}{digest}"


def json_tokens(schema: dict[str, Any], prompt: str, tokens: int) -> list[str]:
    """A JSON reply in stream-sized pieces: a value of ``schema``, or for ``{}`` (any JSON object)
    ``{"reply": <the text reply>}``."""
    value = instance_of(schema) if schema else {"reply": "".join(reply_for(prompt, max(1, tokens)))}
    text = orjson.dumps(value).decode()
    return [text[i : i + 8] for i in range(0, len(text), 8)]
