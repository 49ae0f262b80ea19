"""OpenAI's chat-completions response format, written from our responses and events: the
``chat.completion`` object, and the ``chat.completion.chunk`` frames of a stream (text and tool calls)."""

from __future__ import annotations

from typing import Any

import orjson

from llmrelay.shared.events import ToolCallEvent

FINISH_REASONS = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
}
DONE = b"data: [DONE]\n\n"


def usage_body(usage: dict[str, Any]) -> dict[str, Any]:
    """OpenAI's usage object, with the cached-prompt and reasoning token details."""
    return {
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "completion_tokens": usage.get("completion_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens_details": {"cached_tokens": usage.get("cached_prompt_tokens", 0)},
        "completion_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens", 0)},
    }


def tool_call_body(call: dict[str, Any]) -> dict[str, Any]:
    """A whole tool call in OpenAI's shape: its arguments as a JSON string."""
    return {
        "id": call["id"],
        "type": "function",
        "function": {"name": call["name"], "arguments": orjson.dumps(call.get("arguments") or {}).decode()},
    }


def completion_body(response: dict[str, Any], created: int) -> bytes:
    """A ``chat.completion`` object from an LLMResponse dict."""
    calls = response.get("tool_calls") or []
    message: dict[str, Any] = {"role": "assistant", "content": response["content"], "refusal": None}
    if calls:
        message["tool_calls"] = [tool_call_body(call) for call in calls]
        if not response["content"]:
            message["content"] = None
    return orjson.dumps(
        {
            "id": "chatcmpl-" + str(response["request_id"]),
            "object": "chat.completion",
            "created": created,
            "model": response["model"],
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS.get(response.get("finish_reason", "stop"), "stop"),
                }
            ],
            "usage": usage_body(response.get("usage") or {}),
            "llmrelay": _extension(response),
        }
    )


def _extension(response: dict[str, Any]) -> dict[str, Any]:
    keys = ("request_id", "provider", "cost_usd", "latency_ms", "ttft_ms", "attempts", "trace_id",
            "source_agent", "session_id")  # fmt: skip
    return {k: response.get(k) for k in keys}


class ChunkWriter:
    """``chat.completion.chunk`` SSE frames, with the constant part of every chunk encoded once."""

    def __init__(self, request_id: str, created: int, model: str, include_usage: bool) -> None:
        self.include_usage = include_usage
        self._head = b'data: {"id":%b,"object":"chat.completion.chunk","created":%d,"model":%b,' % (
            orjson.dumps("chatcmpl-" + request_id),
            created,
            orjson.dumps(model),
        )
        self._tail = b',"usage":null}\n\n' if include_usage else b"}\n\n"

    def _choice(self, delta: bytes, finish: bytes) -> bytes:
        return (
            b'%b"system_fingerprint":null,"choices":[{"index":0,"delta":%b,"logprobs":null,'
            b'"finish_reason":%b}]%b' % (self._head, delta, finish, self._tail)
        )

    def role(self) -> bytes:
        return self._choice(b'{"role":"assistant","content":""}', b"null")

    def text(self, text: str) -> bytes:
        return self._choice(b'{"content":%b}' % orjson.dumps(text), b"null")

    def tool_call(self, event: ToolCallEvent) -> bytes:
        """A tool-call delta: the call's id, type and name on its first chunk, then argument fragments."""
        if event.id is not None or event.name is not None:
            call = b'{"index":%d,"id":%b,"type":"function","function":{"name":%b,"arguments":%b}}' % (
                event.call_index,
                orjson.dumps(event.id),
                orjson.dumps(event.name),
                orjson.dumps(event.arguments),
            )
        else:
            call = b'{"index":%d,"function":{"arguments":%b}}' % (
                event.call_index,
                orjson.dumps(event.arguments),
            )
        return self._choice(b'{"tool_calls":[%b]}' % call, b"null")

    def finish(self, reason: str) -> bytes:
        return self._choice(b"{}", orjson.dumps(FINISH_REASONS.get(reason, "stop")))

    def usage(self, usage: dict[str, Any]) -> bytes:
        body = orjson.dumps(usage_body(usage))
        return b'%b"system_fingerprint":null,"choices":[],"usage":%b}\n\n' % (self._head, body)

    @staticmethod
    def error(payload: bytes) -> bytes:
        return b"data: %b\n\n" % payload
