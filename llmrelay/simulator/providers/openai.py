"""OpenAI's wire formats: Chat Completions and Responses, streamed and not."""

from __future__ import annotations

from typing import Any

import orjson

from ..reply import count_words
from ._format import S0, S1, Call, Prompt, StreamPlan, Template, as_int, sse, text_of


def read_chat(body: dict[str, Any]) -> Prompt:
    """Chat Completions: the last ``user`` message; ``max_completion_tokens`` or ``max_tokens``."""
    last_user, words = "", 0
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        text = text_of(message.get("content"))
        words += count_words(text)
        if message.get("role") == "user":
            last_user = text
    max_tokens = as_int(body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = as_int(body.get("max_tokens"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Prompt(last_user, words, max_tokens, include_usage)


def read_responses(body: dict[str, Any]) -> Prompt:
    """Responses: ``input`` as a string, or its last ``user`` item; ``instructions`` as system text."""
    last_user, words = "", 0
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
            text = text_of(item.get("content")) if "content" in item else text_of(item.get("output"))
            words += count_words(text)
            if item.get("role") == "user":
                last_user = text
    return Prompt(last_user, words, as_int(body.get("max_output_tokens")))


def render_chat(
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

    token_tpl = Template(chunk({"content": S0}, None))
    preamble = sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))
    epilogue = sse(chunk({}, finish))
    if call.include_usage:
        last = chunk({}, None, choices=False)
        last["usage"] = usage
        epilogue += sse(last)
    epilogue += b"data: [DONE]\n\n"
    return StreamPlan(preamble, [token_tpl.render(orjson.dumps(t)) for t in tokens], epilogue)


def render_responses(
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
        return sse(obj, obj["type"])

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
    delta_tpl = Template(
        {
            "type": "response.output_text.delta",
            "item_id": item_id,
            "output_index": 0,
            "content_index": 0,
            "delta": S0,
            "logprobs": [],
            "sequence_number": S1,
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
