"""OpenAI's chat-completions wire format, read into an LLMRequest and written from our events.

This is our own encoding of OpenAI's public format (no provider SDK here). Requests that ask for what we
cannot honour faithfully (several choices, tools, structured output, logprobs, penalties, audio...) are
refused with a 400 rather than silently answered differently. llmrelay's own request fields (``tier``,
``priority``, ``request_id``, ``timeout``, ``fallback_models``, ``trace_id``, ``source_agent``,
``session_id``, ``metadata``) may be given in the body (the openai SDK's ``extra_body``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from llmrelay.shared.errors import LLMRelayError, RateLimitedError
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.redaction import redact

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
EXTENSIONS = ("tier", "priority", "request_id", "timeout", "fallback_models", "trace_id", "source_agent",
              "session_id")  # fmt: skip
FINISH_REASONS = {"stop": "stop", "length": "length", "content_filter": "content_filter"}

#: Error codes OpenAI clients know; the others are the error class in snake case.
_CODES = {
    "AuthenticationError": "invalid_api_key",
    "RateLimitedError": "rate_limit_exceeded",
    "UnknownModelError": "model_not_found",
    "ContextLengthExceededError": "context_length_exceeded",
    "ProviderError": "provider_error",
    "LLMRelayError": "server_error",
}


class ChatRequestError(Exception):
    """A chat-completions request we refuse: answered 400 in OpenAI's error shape."""

    def __init__(self, message: str, param: str | None = None, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass(slots=True)
class ChatCall:
    request: LLMRequest
    stream: bool
    include_usage: bool


def error_payload(message: str, kind: str, param: str | None = None, code: str | None = None) -> bytes:
    return orjson.dumps({"error": {"message": message, "type": kind, "param": param, "code": code}})


def service_error(err: LLMRelayError) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """Status, body and headers for one of our errors, in OpenAI's shape."""
    field = err.data.get("field")
    code = _CODES.get(err.type_name) or _snake(err.type_name)
    body = error_payload(
        redact(err.message), err.openai_type, field if isinstance(field, str) else None, code
    )
    headers: list[tuple[bytes, bytes]] = []
    if isinstance(err, RateLimitedError) and err.retry_after is not None:
        headers.append((b"retry-after", str(max(1, round(err.retry_after))).encode()))
    return err.http_status, body, headers


def _snake(name: str) -> str:
    base = name[: -len("Error")] if name.endswith("Error") else name
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", base).lower()


def parse_chat(body: Any, a2a: Mapping[str, str]) -> ChatCall:
    """The LLMRequest of a chat-completions body; ChatRequestError for anything we cannot honour."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    _refuse_unsupported(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ChatRequestError("stream must be a boolean", "stream")
    options = body.get("stream_options")
    include_usage = False
    if options is not None:
        if not isinstance(options, dict):
            raise ChatRequestError("stream_options must be an object", "stream_options")
        include_usage = options.get("include_usage") is True

    values: dict[str, Any] = {"messages": _messages(body.get("messages"))}
    if body.get("model") is not None:
        values["model"] = body["model"]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        values["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "stop"):
        if body.get(name) is not None:
            values[name] = body[name]
    for name in EXTENSIONS:
        if body.get(name) is not None:
            values[name] = body[name]
    for name, value in a2a.items():
        values.setdefault(name, value)
    if values.get("request_id") is None:
        values["request_id"] = uuid.uuid4().hex
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ChatRequestError("metadata must be an object", "metadata")
    metadata = dict(metadata or {})
    if body.get("user") is not None:
        metadata["user"] = body["user"]
    if metadata:
        values["metadata"] = metadata
    try:
        request = LLMRequest.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise ChatRequestError(f"invalid {param or 'request'}: {first['msg']}", param) from None
    return ChatCall(request, bool(stream), include_usage)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    def refuse(param: str, what: str) -> None:
        raise ChatRequestError(f"{what} is not supported by this gateway", param, "unsupported_parameter")

    n = body.get("n")
    if n is not None and n != 1:
        refuse("n", "more than one choice (n > 1)")
    for name in ("tools", "functions"):
        if body.get(name):
            refuse(name, "tool and function calling")
    for name in ("tool_choice", "function_call"):
        if body.get(name) not in (None, "none", "auto"):
            refuse(name, "forcing a tool or function call")
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        refuse("response_format", "structured output (response_format other than text)")
    if body.get("logprobs"):
        refuse("logprobs", "logprobs")
    if body.get("top_logprobs"):
        refuse("top_logprobs", "top_logprobs")
    if body.get("logit_bias"):
        refuse("logit_bias", "logit_bias")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            refuse(name, name)
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        refuse("modalities", "output modalities other than text")
    for name in ("audio", "prediction", "web_search_options"):
        if body.get(name) is not None:
            refuse(name, name)


def _messages(raw: Any) -> list[dict[str, str]]:
    if not isinstance(raw, list) or not raw:
        raise ChatRequestError("messages must be a non-empty array", "messages")
    out: list[dict[str, str]] = []
    for i, message in enumerate(raw):
        param = f"messages.{i}"
        if not isinstance(message, dict):
            raise ChatRequestError("each message must be an object", param)
        role = ROLES.get(message.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise ChatRequestError(
                f"message role {message.get('role')!r} is not supported (system, developer, user, assistant)",
                f"{param}.role",
            )
        if message.get("tool_calls") or message.get("function_call"):
            raise ChatRequestError("tool and function calls are not supported by this gateway", param)
        out.append({"role": role, "content": _content(message.get("content"), f"{param}.content")})
    return out


def _content(content: Any, param: str) -> str:
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                raise ChatRequestError("only text content parts are supported", param, "unsupported_content")
            texts.append(part["text"])
        return "".join(texts)
    raise ChatRequestError("content must be a string or an array of text parts", param)


def completion_body(response: dict[str, Any], created: int) -> bytes:
    """A ``chat.completion`` object from an LLMResponse dict."""
    usage = response.get("usage") or {}
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
                    "message": {"role": "assistant", "content": response["content"], "refusal": None},
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS.get(response.get("finish_reason", "stop"), "stop"),
                }
            ],
            "usage": {
                "prompt_tokens": usage.get("prompt_tokens", 0),
                "completion_tokens": usage.get("completion_tokens", 0),
                "total_tokens": usage.get("total_tokens", 0),
            },
            "llmrelay": _extension(response),
        }
    )


def _extension(response: dict[str, Any]) -> dict[str, Any]:
    keys = ("request_id", "provider", "cost_usd", "latency_ms", "ttft_ms", "attempts", "trace_id",
            "source_agent", "session_id")  # fmt: skip
    return {k: response.get(k) for k in keys}


DONE = b"data: [DONE]\n\n"


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

    def finish(self, reason: str) -> bytes:
        return self._choice(b"{}", orjson.dumps(FINISH_REASONS.get(reason, "stop")))

    def usage(self, usage: dict[str, Any]) -> bytes:
        body = {
            "prompt_tokens": usage.get("prompt_tokens", 0),
            "completion_tokens": usage.get("completion_tokens", 0),
            "total_tokens": usage.get("total_tokens", 0),
        }
        return b'%b"system_fingerprint":null,"choices":[],"usage":%b}\n\n' % (self._head, orjson.dumps(body))

    @staticmethod
    def error(payload: bytes) -> bytes:
        return b"data: %b\n\n" % payload
