"""Anthropic's Messages wire format, streamed (with ``event:`` lines) and not, tool use included.

The reader finds ``tools[{name, input_schema}]``, ``tool_choice`` (``auto``/``any``/``tool``/``none``,
``disable_parallel_tool_use``), ``tool_result`` blocks (each must answer a ``tool_use`` of the assistant
turn right before, come first in its user message, and every ``tool_use`` needs its result in the next
message: else a 400, as the API answers), ``output_config.format`` (the beta top-level ``output_format``
too) and ``image`` / ``document`` blocks. The writer sends planned calls as ``tool_use`` blocks with
``stop_reason: tool_use``; streamed, each as a ``content_block_start`` then its input in
``input_json_delta`` fragments.

Extended thinking (``thinking: {type: enabled | adaptive}``): the reply opens with a ``thinking`` block
whose ``signature`` vouches for its text (streamed as ``thinking_delta`` then ``signature_delta``, as
the API streams it). A request with thinking on whose final assistant turn calls tools must open that
turn with a thinking block, and every thinking block sent back must carry its own signature: else the
API's 400s (platform.claude.com/docs/en/build-with-claude/extended-thinking, "Preserving thinking
blocks", read 2026-12-01; the messages as the API words them).
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import signatures
from ..reply import count_words
from ..tools import call_id
from ._format import S0, Agent, Call, Prompt, StreamPlan, Template, WireError, as_int, sse, text_of

_MEDIA = ("image", "document")
_THINKING = ("thinking", "redacted_thinking")
_CHOICE = {"auto": "auto", "any": "required", "none": "none"}
#: How many characters of a tool's input JSON one ``input_json_delta`` carries.
_FRAGMENT = 12


def read(body: dict[str, Any]) -> Prompt:
    """Messages: the last ``user`` message; ``system`` counts towards the prompt only."""
    last_user, words, media = "", count_words(text_of(body.get("system"))), 0
    pending: list[str] = []  # tool_use ids of the assistant turn before, awaiting their results
    answered = False
    messages = [m for m in body.get("messages") or () if isinstance(m, dict)]
    for position, message in enumerate(messages):
        content = message.get("content")
        blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
        words += count_words(text_of(content))
        results = [b for b in blocks if b.get("type") == "tool_result"]
        for block in results:
            words += count_words(text_of(block.get("content")))
            media += _media(block.get("content"))
        media += _media(blocks)
        role = message.get("role")
        if role == "user":
            last_user = text_of(content)
            _check_results(position, blocks, results, pending)
            pending = []
            answered = bool(results)
        else:
            if pending:
                raise WireError(_missing(position - 1, pending))
            pending = [str(b.get("id")) for b in blocks if b.get("type") == "tool_use"]
            answered = False
    thinking = _choice_field(body.get("thinking"), "type") in ("enabled", "adaptive")
    _check_thinking(messages, thinking)
    agent = Agent(
        tools=_tools(body.get("tools")),
        tool_choice=_choice(body.get("tool_choice")),
        answered=answered,
        parallel=not _choice_field(body.get("tool_choice"), "disable_parallel_tool_use"),
        schema=_schema(body),
        media=media,
        thinking=thinking,
    )
    return Prompt(last_user, words, as_int(body.get("max_tokens")), agent=agent)


def _check_thinking(messages: list[dict[str, Any]], thinking: bool) -> None:
    """Thinking blocks come back signed; with thinking on, a final tool-calling turn opens with one."""
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    for position, message in enumerate(messages):
        content = message.get("content")
        if message.get("role") != "assistant" or not isinstance(content, list):
            continue
        blocks = [b for b in content if isinstance(b, dict)]
        for j, block in enumerate(blocks):
            if block.get("type") == "thinking" and not signatures.verify(
                "anthropic", block.get("signature"), block.get("thinking")
            ):
                raise WireError(f"messages.{position}.content.{j}: Invalid `signature` in `thinking` block")
        uses_tools = any(b.get("type") == "tool_use" for b in blocks)
        if thinking and position == last and uses_tools and blocks[0].get("type") not in _THINKING:
            raise WireError(
                f"messages.{position}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                f"`{blocks[0].get('type')}`. When `thinking` is enabled, a final `assistant` message must "
                "start with a thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
                "blocks). We recommend you include thinking blocks from previous turns. To avoid this "
                "requirement, disable `thinking`. Please consult our documentation at "
                "https://docs.claude.com/en/docs/build-with-claude/extended-thinking"
            )


def _check_results(
    position: int, blocks: list[dict[str, Any]], results: list[dict[str, Any]], pending: list[str]
) -> None:
    answered = [str(b.get("tool_use_id")) for b in results]
    for call in answered:
        if call not in pending:
            raise WireError(
                f"messages.{position}.content: unexpected `tool_use_id` found in `tool_result` blocks: "
                f"{call}. Each `tool_result` block must have a corresponding `tool_use` block in the "
                "previous message."
            )
    if pending and [b.get("type") for b in blocks[: len(results)]] != ["tool_result"] * len(results):
        raise WireError(
            f"messages.{position}.content: `tool_result` blocks must come first in the user message "
            "that follows the `tool_use` blocks."
        )
    missing = [call for call in pending if call not in answered]
    if missing:
        raise WireError(_missing(position - 1, missing))


def _missing(position: int, ids: list[str]) -> str:
    return (
        f"messages.{position}: `tool_use` ids were found without `tool_result` blocks immediately after: "
        f"{', '.join(ids)}. Each `tool_use` block must have a corresponding `tool_result` block in the "
        "next message."
    )


def _media(content: Any) -> int:
    if not isinstance(content, list):
        return 0
    count = 0
    for block in content:
        if not isinstance(block, dict) or block.get("type") not in _MEDIA:
            continue
        source = block.get("source")
        if not isinstance(source, dict):
            source = {}
        kind = source.get("type")
        if kind == "base64":
            if not isinstance(source.get("data"), str) or not isinstance(source.get("media_type"), str):
                raise WireError(f"{block['type']}.source: base64 needs data and media_type")
        elif kind == "url":
            if not isinstance(source.get("url"), str):
                raise WireError(f"{block['type']}.source.url: Field required")
        else:
            raise WireError(f"{block['type']}.source: expected a base64 or url source")
        count += 1
    return count


def _tools(tools: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    out: list[tuple[str, dict[str, Any]]] = []
    for tool in tools or ():
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
            raise WireError("tools: each tool needs a name")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict) or schema.get("type") != "object":
            raise WireError(f"tools.{tool['name']}.input_schema: must be a JSON Schema of type object")
        out.append((tool["name"], schema))
    return tuple(out)


def _choice(choice: Any) -> str | None:
    kind = _choice_field(choice, "type")
    if kind is None:
        return None
    if kind == "tool":
        name = _choice_field(choice, "name")
        if not isinstance(name, str):
            raise WireError("tool_choice.name: Field required")
        return name
    if kind not in _CHOICE:
        raise WireError(f"tool_choice.type: unknown value {kind!r}")
    return _CHOICE[kind]


def _choice_field(choice: Any, name: str) -> Any:
    return choice.get(name) if isinstance(choice, dict) else None


def _schema(body: dict[str, Any]) -> dict[str, Any] | None:
    config = body.get("output_config")
    fmt = config.get("format") if isinstance(config, dict) else None
    if fmt is None:
        fmt = body.get("output_format")
    if fmt is None:
        return None
    if (
        not isinstance(fmt, dict)
        or fmt.get("type") != "json_schema"
        or not isinstance(fmt.get("schema"), dict)
    ):
        raise WireError("output_config.format: expected {type: json_schema, schema: {...}}")
    schema: dict[str, Any] = fmt["schema"]
    return schema


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
        "service_tier": "standard",
    }


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
    mid = "msg_sim" + rid
    uses = [
        (call_id("toolu_", rid, i), planned.name, orjson.dumps(planned.arguments).decode())
        for i, planned in enumerate(call.planned)
    ]
    fragments = [[text[i : i + _FRAGMENT] for i in range(0, len(text), _FRAGMENT)] for _, _, text in uses]
    stop = "tool_use" if uses else "max_tokens" if truncated else "end_turn"
    n = sum(len(f) for f in fragments) if uses else len(tokens)
    thought = _thought(call, rid) if call.agent.thinking else None
    first = 0 if thought is None else 1  # the index of the first block after the thinking block
    if thought is not None:
        n += count_words(thought["thinking"])

    if not call.stream:
        content: list[dict[str, Any]] = [
            {"type": "tool_use", "id": uid, "name": name, "input": orjson.loads(text)}
            for uid, name, text in uses
        ]
        if not uses:
            content = [{"type": "text", "text": "".join(tokens)}]
        if thought is not None:
            content.insert(0, thought)
        return orjson.dumps(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": call.model,
                "content": content,
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": _usage(call.prompt_tokens, n),
            }
        )
    start = sse(
        {
            "type": "message_start",
            "message": {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": call.model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(call.prompt_tokens, 1),
            },
        },
        "message_start",
    )
    epilogue = sse(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": n},
        },
        "message_delta",
    ) + sse({"type": "message_stop"}, "message_stop")
    error_event = sse(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_" + rid,
        },
        "error",
    )
    if thought is not None:
        start += _thinking_events(thought)
    if uses:
        return StreamPlan(start, _tool_events(uses, fragments, first), epilogue, error_event)
    preamble = start + sse(
        {"type": "content_block_start", "index": first, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    delta_tpl = Template(
        {"type": "content_block_delta", "index": first, "delta": {"type": "text_delta", "text": S0}},
        prefix=b"event: content_block_delta\ndata: ",
    )
    epilogue = sse({"type": "content_block_stop", "index": first}, "content_block_stop") + epilogue
    return StreamPlan(preamble, [delta_tpl.render(orjson.dumps(t)) for t in tokens], epilogue, error_event)


def _thought(call: Call, rid: str) -> dict[str, Any]:
    """The reply's thinking block, its text naming what the reply does, signed for that text."""
    names = ", ".join(planned.name for planned in call.planned)
    text = f"The user asks: {call.prompt[:80]}. " + (f"I will call {names}." if names else "I will answer.")
    return {"type": "thinking", "thinking": text, "signature": signatures.sign("anthropic", rid, text)}


def _thinking_events(thought: dict[str, Any]) -> bytes:
    """A thinking block as the API streams it: opened empty, its text, its signature, closed."""
    return b"".join(
        [
            sse(
                {
                    "type": "content_block_start",
                    "index": 0,
                    "content_block": {"type": "thinking", "thinking": "", "signature": ""},
                },
                "content_block_start",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": thought["thinking"]},
                },
                "content_block_delta",
            ),
            sse(
                {
                    "type": "content_block_delta",
                    "index": 0,
                    "delta": {"type": "signature_delta", "signature": thought["signature"]},
                },
                "content_block_delta",
            ),
            sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        ]
    )


def _tool_events(uses: list[tuple[str, str, str]], fragments: list[list[str]], first: int = 0) -> list[bytes]:
    """Each call as the API streams it: its block opens with an empty input, the input JSON follows in
    fragments, then the block closes. One event per fragment (so ``after=`` counts them)."""
    events: list[bytes] = []
    for index, ((uid, name, _), pieces) in enumerate(zip(uses, fragments, strict=True), start=first):
        opening = sse(
            {
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": uid, "name": name, "input": {}},
            },
            "content_block_start",
        )
        deltas = [
            sse(
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": p},
                },
                "content_block_delta",
            )
            for p in pieces
        ] or [b""]
        deltas[0] = opening + deltas[0]
        deltas[-1] += sse({"type": "content_block_stop", "index": index}, "content_block_stop")
        events.extend(deltas)
    return events
