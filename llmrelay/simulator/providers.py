"""Each provider's request reading and response writing (wire formats).

Where the prompt comes from (the LAST user message; see :mod:`llmrelay.simulator.reply` for the cleaning):

- OpenAI Chat Completions: the last item of ``messages`` with ``role == "user"``; its ``content`` is a
  string or a list of parts whose ``text`` fields are joined with newlines. ``system`` / ``developer``
  messages only count towards the prompt tokens.
- OpenAI Responses: ``input`` when it is a string; otherwise the last item of ``input`` with
  ``role == "user"`` (content a string or ``input_text`` parts). ``instructions`` counts as system text.
- Anthropic Messages: the last item of ``messages`` with ``role == "user"`` (string or ``text`` blocks);
  ``system`` (string or ``text`` blocks) is separate and only counts towards the prompt tokens.
- Gemini: the last item of ``contents`` whose ``role`` is ``"user"`` or missing, its ``parts[].text``
  joined with newlines; ``systemInstruction`` only counts towards the prompt tokens.

Prompt tokens = the number of whitespace-separated words (directives excluded) across every message,
system text included, at least 1. Completion tokens = the number of reply tokens sent.

Max tokens: ``max_completion_tokens`` or ``max_tokens`` (Chat Completions), ``max_output_tokens``
(Responses), ``max_tokens`` (Anthropic), ``generationConfig.maxOutputTokens`` (Gemini). A smaller limit
truncates the reply and reports ``"length"`` / Responses ``status: "incomplete"`` (reason
``max_output_tokens``) / ``"max_tokens"`` / ``"MAX_TOKENS"``; otherwise ``"stop"`` / ``"completed"`` /
``"end_turn"`` / ``"STOP"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .reply import clean_prompt, count_words

__all__ = ["Call", "StreamPlan", "parse_call", "render"]

_SLOT_RE = re.compile(rb'"\\u0000(\d)\\u0000"')
_S0, _S1, _S2 = "\x000\x00", "\x001\x00", "\x002\x00"


class _Template:
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


def _sse(obj: Any, event: str | None = None) -> bytes:
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


@dataclass(slots=True)
class StreamPlan:
    """A streamed reply: ``preamble`` then one event per token, then ``epilogue``."""

    preamble: bytes
    events: list[bytes]
    epilogue: bytes
    error_event: bytes | None = None  # Anthropic in-stream overloaded error


# --------------------------------------------------------------------------------------------------
# Reading requests
# --------------------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
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
        return _text_of(content.get("parts"))
    return ""


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def parse_call(api: str, body: dict[str, Any], model: str | None = None, stream: bool | None = None) -> Call:
    """Extract the prompt, counts and parameters of a provider request body."""
    last_user = ""
    words = 0
    include_usage = False
    if api == "chat":
        for message in body.get("messages") or ():
            if not isinstance(message, dict):
                continue
            text = _text_of(message.get("content"))
            words += count_words(text)
            if message.get("role") == "user":
                last_user = text
        max_tokens = _as_int(body.get("max_completion_tokens"))
        if max_tokens is None:
            max_tokens = _as_int(body.get("max_tokens"))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
        provider = "openai"
    elif api == "responses":
        instructions = body.get("instructions")
        if isinstance(instructions, str):
            words += count_words(instructions)
        items = body.get("input")
        if isinstance(items, str):
            last_user = items
            words += count_words(items)
        elif isinstance(items, list):
            for item in items:
                if not isinstance(item, dict):
                    continue
                text = _text_of(item.get("content")) if "content" in item else _text_of(item.get("output"))
                words += count_words(text)
                if item.get("role") == "user":
                    last_user = text
        max_tokens = _as_int(body.get("max_output_tokens"))
        provider = "openai"
    elif api == "messages":
        words += count_words(_text_of(body.get("system")))
        for message in body.get("messages") or ():
            if not isinstance(message, dict):
                continue
            text = _text_of(message.get("content"))
            words += count_words(text)
            if message.get("role") == "user":
                last_user = text
        max_tokens = _as_int(body.get("max_tokens"))
        provider = "anthropic"
    else:  # gemini
        words += count_words(_text_of(body.get("systemInstruction") or body.get("system_instruction")))
        contents = body.get("contents") or ()
        if isinstance(contents, dict):
            contents = [contents]
        for content in contents:
            if not isinstance(content, dict):
                continue
            text = _text_of(content.get("parts"))
            words += count_words(text)
            if content.get("role", "user") in ("user", None):
                last_user = text
        config = body.get("generationConfig") or body.get("generation_config") or {}
        max_tokens = None
        if isinstance(config, dict):
            max_tokens = _as_int(config.get("maxOutputTokens", config.get("max_output_tokens")))
        provider = "gemini"
    if model is None:
        model = body.get("model")
        model = model if isinstance(model, str) else ""
    if stream is None:
        stream = body.get("stream") is True
    return Call(
        provider=provider,
        api=api,
        model=model,
        stream=stream,
        last_user=last_user,
        prompt=clean_prompt(last_user),
        prompt_tokens=max(1, words),
        max_tokens=max_tokens,
        include_usage=include_usage,
        body=body,
    )


# --------------------------------------------------------------------------------------------------
# Writing replies
# --------------------------------------------------------------------------------------------------


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
    """The JSON body (non-streaming) or the :class:`StreamPlan` of a successful reply."""
    if call.api == "chat":
        return _openai_chat(call, tokens, truncated, rid, created)
    if call.api == "responses":
        return _openai_responses(call, tokens, truncated, rid, created)
    if call.api == "messages":
        return _anthropic(call, tokens, truncated, rid)
    return _gemini(call, tokens, truncated, rid)


def _openai_chat(
    call: Call, tokens: list[str], truncated: bool, rid: str, created: int
) -> bytes | StreamPlan:
    finish = "length" if truncated else "stop"
    n = len(tokens)
    usage = {
        "prompt_tokens": call.prompt_tokens,
        "completion_tokens": n,
        "total_tokens": call.prompt_tokens + n,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
    cid = "chatcmpl-" + rid
    if not call.stream:
        return orjson.dumps(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": call.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {
                            "role": "assistant",
                            "content": "".join(tokens),
                            "refusal": None,
                            "annotations": [],
                        },
                        "logprobs": None,
                        "finish_reason": finish,
                    }
                ],
                "usage": usage,
                "service_tier": "default",
                "system_fingerprint": "fp_simulator",
            }
        )

    def chunk(delta: Any, finish_reason: Any, choices: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": created,
            "model": call.model,
            "service_tier": "default",
            "system_fingerprint": "fp_simulator",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}]
            if choices
            else [],
        }
        if call.include_usage:
            out["usage"] = None
        return out

    token_tpl = _Template(chunk({"content": _S0}, None))
    preamble = _sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))
    epilogue = _sse(chunk({}, finish))
    if call.include_usage:
        last = chunk({}, None, choices=False)
        last["usage"] = usage
        epilogue += _sse(last)
    epilogue += b"data: [DONE]\n\n"
    return StreamPlan(preamble, [token_tpl.render(orjson.dumps(t)) for t in tokens], epilogue)


def _openai_responses(
    call: Call, tokens: list[str], truncated: bool, rid: str, created: int
) -> bytes | StreamPlan:
    text = "".join(tokens)
    n = len(tokens)
    resp_id = "resp_" + rid
    item_id = "msg_" + rid
    status = "incomplete" if truncated else "completed"
    body = call.body

    def response(state: str, output: list[Any], usage: Any) -> dict[str, Any]:
        return {
            "id": resp_id,
            "object": "response",
            "created_at": created,
            "status": state,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": "max_output_tokens"} if state == "incomplete" else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": call.max_tokens,
            "max_tool_calls": None,
            "model": call.model,
            "output": output,
            "parallel_tool_calls": True,
            "previous_response_id": None,
            "reasoning": {"effort": None, "summary": None},
            "service_tier": "default",
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto",
            "tools": [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": usage,
            "user": None,
            "metadata": body.get("metadata") or {},
        }

    usage = {
        "input_tokens": call.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": n,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": call.prompt_tokens + n,
    }
    part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
    item = {"id": item_id, "type": "message", "status": status, "content": [part], "role": "assistant"}
    if not call.stream:
        return orjson.dumps(response(status, [item], usage))

    seq = 0

    def event(obj: dict[str, Any]) -> bytes:
        nonlocal seq
        obj["sequence_number"] = seq
        seq += 1
        return _sse(obj, obj["type"])

    preamble = b"".join(
        [
            event({"type": "response.created", "response": response("in_progress", [], None)}),
            event({"type": "response.in_progress", "response": response("in_progress", [], None)}),
            event(
                {
                    "type": "response.output_item.added",
                    "output_index": 0,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            ),
            event(
                {
                    "type": "response.content_part.added",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "part": {**part, "text": ""},
                }
            ),
        ]
    )
    delta_tpl = _Template(
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": _S0,
            "logprobs": [],
            "sequence_number": _S1,
        },
        prefix=b"event: response.output_text.delta\ndata: ",
    )
    events = [delta_tpl.render(orjson.dumps(t), str(seq + i).encode()) for i, t in enumerate(tokens)]
    seq += n
    epilogue = b"".join(
        [
            event(
                {
                    "type": "response.output_text.done",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            ),
            event(
                {
                    "type": "response.content_part.done",
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                    "part": part,
                }
            ),
            event({"type": "response.output_item.done", "output_index": 0, "item": item}),
            event(
                {
                    "type": "response.incomplete" if truncated else "response.completed",
                    "response": response(status, [item], usage),
                }
            ),
        ]
    )
    return StreamPlan(preamble, events, epilogue)


def _anthropic(call: Call, tokens: list[str], truncated: bool, rid: str) -> bytes | StreamPlan:
    stop = "max_tokens" if truncated else "end_turn"
    n = len(tokens)
    mid = "msg_sim" + rid

    def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {
            "input_tokens": input_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
            "service_tier": "standard",
        }

    if not call.stream:
        return orjson.dumps(
            {
                "id": mid,
                "type": "message",
                "role": "assistant",
                "model": call.model,
                "content": [{"type": "text", "text": "".join(tokens)}],
                "stop_reason": stop,
                "stop_sequence": None,
                "usage": usage(call.prompt_tokens, n),
            }
        )
    preamble = _sse(
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
                "usage": usage(call.prompt_tokens, 1),
            },
        },
        "message_start",
    ) + _sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    delta_tpl = _Template(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": _S0}},
        prefix=b"event: content_block_delta\ndata: ",
    )
    epilogue = (
        _sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + _sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": n},
            },
            "message_delta",
        )
        + _sse({"type": "message_stop"}, "message_stop")
    )
    error_event = _sse(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_" + rid,
        },
        "error",
    )
    return StreamPlan(preamble, [delta_tpl.render(orjson.dumps(t)) for t in tokens], epilogue, error_event)


def _gemini(call: Call, tokens: list[str], truncated: bool, rid: str) -> bytes | StreamPlan:
    finish = "MAX_TOKENS" if truncated else "STOP"
    n = len(tokens)
    p = call.prompt_tokens
    usage = {
        "promptTokenCount": p,
        "candidatesTokenCount": n,
        "totalTokenCount": p + n,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p}],
    }

    def payload(text: Any, finish_reason: str | None, usage_metadata: Any) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage_metadata,
            "modelVersion": call.model,
            "responseId": rid,
        }

    if not call.stream:
        return orjson.dumps(payload("".join(tokens), finish, usage))
    mid_tpl = _Template(payload(_S0, None, {"promptTokenCount": p, "totalTokenCount": p}))
    last_tpl = _Template(payload(_S0, finish, usage))
    if not tokens:
        return StreamPlan(b"", [], last_tpl.render(b'""'))
    events = [mid_tpl.render(orjson.dumps(t)) for t in tokens[:-1]]
    events.append(last_tpl.render(orjson.dumps(tokens[-1])))
    return StreamPlan(b"", events, b"")
