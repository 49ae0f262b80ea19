"""Anthropic's Messages wire format, streamed (with ``event:`` lines) and not."""

from __future__ import annotations

from typing import Any

import orjson

from ..reply import count_words
from ._format import S0, Call, Prompt, StreamPlan, Template, as_int, sse, text_of


def read(body: dict[str, Any]) -> Prompt:
    """Messages: the last ``user`` message; ``system`` counts towards the prompt only."""
    last_user, words = "", count_words(text_of(body.get("system")))
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        text = text_of(message.get("content"))
        words += count_words(text)
        if message.get("role") == "user":
            last_user = text
    return Prompt(last_user, words, as_int(body.get("max_tokens")))


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
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
    preamble = sse(
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
    ) + sse(
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        "content_block_start",
    )
    delta_tpl = Template(
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": S0}},
        prefix=b"event: content_block_delta\ndata: ",
    )
    epilogue = (
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        + sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": n},
            },
            "message_delta",
        )
        + sse({"type": "message_stop"}, "message_stop")
    )
    error_event = sse(
        {
            "type": "error",
            "error": {"type": "overloaded_error", "message": "Overloaded"},
            "request_id": "req_" + rid,
        },
        "error",
    )
    return StreamPlan(preamble, [delta_tpl.render(orjson.dumps(t)) for t in tokens], epilogue, error_event)
