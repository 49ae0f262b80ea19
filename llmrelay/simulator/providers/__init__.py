"""Each provider's request reading and response writing (wire formats), one module per provider.

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

from collections.abc import Callable
from typing import Any

from ..reply import clean_prompt
from . import anthropic, gemini, openai
from ._format import MEDIA_TOKENS, Agent, Call, Prompt, StreamPlan, WireError

__all__ = ["Agent", "Call", "StreamPlan", "WireError", "parse_call", "render"]

Reader = Callable[[dict[str, Any]], Prompt]
Writer = Callable[[Call, list[str], bool, str, int], "bytes | StreamPlan"]

#: api -> (provider, body reader, reply writer)
APIS: dict[str, tuple[str, Reader, Writer]] = {
    "chat": ("openai", openai.read_chat, openai.render_chat),
    "responses": ("openai", openai.read_responses, openai.render_responses),
    "messages": ("anthropic", anthropic.read, anthropic.render),
    "gemini": ("gemini", gemini.read, gemini.render),
}


def parse_call(api: str, body: dict[str, Any], model: str | None = None, stream: bool | None = None) -> Call:
    """Extract the prompt, counts and parameters of a provider request body (WireError: a 400)."""
    provider, read, _ = APIS[api if api in APIS else "gemini"]
    found = read(body)
    if model is None:
        model = body.get("model")
        model = model if isinstance(model, str) else ""
    if provider == "gemini":
        gemini.check_signatures(body, model)
    if stream is None:
        stream = body.get("stream") is True
    return Call(
        provider=provider,
        api=api,
        model=model,
        stream=stream,
        last_user=found.last_user,
        prompt=clean_prompt(found.last_user),
        prompt_tokens=max(1, found.words) + MEDIA_TOKENS * found.agent.media,
        max_tokens=found.max_tokens,
        include_usage=found.include_usage,
        body=body,
        agent=found.agent,
    )


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
    """The JSON body (non-streaming) or the :class:`StreamPlan` of a successful reply."""
    return APIS[call.api if call.api in APIS else "gemini"][2](call, tokens, truncated, rid, created)
