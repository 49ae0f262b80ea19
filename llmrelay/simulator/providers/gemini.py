"""Gemini's generateContent wire format, streamed (``alt=sse``) and not."""

from __future__ import annotations

from typing import Any

import orjson

from ..reply import count_words
from ._format import S0, Call, Prompt, StreamPlan, Template, as_int, text_of


def read(body: dict[str, Any]) -> Prompt:
    """The last ``contents`` item whose role is ``user`` or missing; ``systemInstruction`` as system text."""
    last_user = ""
    words = count_words(text_of(body.get("systemInstruction") or body.get("system_instruction")))
    contents = body.get("contents") or ()
    if isinstance(contents, dict):
        contents = [contents]
    for content in contents:
        if not isinstance(content, dict):
            continue
        text = text_of(content.get("parts"))
        words += count_words(text)
        if content.get("role", "user") in ("user", None):
            last_user = text
    config = body.get("generationConfig") or body.get("generation_config") or {}
    max_tokens = None
    if isinstance(config, dict):
        max_tokens = as_int(config.get("maxOutputTokens", config.get("max_output_tokens")))
    return Prompt(last_user, words, max_tokens)


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
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
    mid_tpl = Template(payload(S0, None, {"promptTokenCount": p, "totalTokenCount": p}))
    last_tpl = Template(payload(S0, finish, usage))
    if not tokens:
        return StreamPlan(b"", [], last_tpl.render(b'""'))
    events = [mid_tpl.render(orjson.dumps(t)) for t in tokens[:-1]]
    events.append(last_tpl.render(orjson.dumps(tokens[-1])))
    return StreamPlan(b"", events, b"")
