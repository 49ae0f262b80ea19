"""OpenAI's chat-completions request format, read into an LLMRequest; errors in OpenAI's shape.

This is our own encoding of OpenAI's public format (no provider SDK here). Every parameter of the API is
either honoured (mapped onto the contract, and from there onto each provider) or refused with a 400 that
names it; none is dropped. Refused: several choices (``n`` > 1), logprobs, penalties, ``logit_bias``,
audio and other output modalities, ``prediction``, ``web_search_options``, ``moderation``, ``service_tier``
other than ``auto``, ``store: true``, ``verbosity``, ``prompt_cache_key``, ``prompt_cache_options``,
``prompt_cache_retention``, ``safety_identifier``, the deprecated ``functions``, and any key OpenAI does
not define. llmrelay's own request fields (``tier``,
``priority``, ``request_id``, ``timeout``, ``fallback_models``, ``trace_id``, ``source_agent``,
``session_id``, ``metadata``, ``provider_options``) may be given in the body (the openai SDK's
``extra_body``); ``provider_options`` is where provider-only fields such as ``verbosity`` go.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from llmrelay.shared.errors import LLMRelayError, RateLimitedError
from llmrelay.shared.models import LLMRequest, field_parts
from llmrelay.shared.redaction import redact

ModelT = TypeVar("ModelT", bound=BaseModel)

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant", "tool": "tool"}
EXTENSIONS = ("tier", "priority", "request_id", "timeout", "fallback_models", "trace_id", "source_agent",
              "session_id", "provider_options")  # fmt: skip
#: Parameters read here (each honoured, or refused below when given a value that cannot be honoured).
HONOURED = frozenset({
    "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "stop", "stream",
    "stream_options", "tools", "tool_choice", "parallel_tool_calls", "response_format", "reasoning_effort",
    "seed", "metadata", "user", "n", "presence_penalty", "frequency_penalty", "logprobs", "modalities",
    "service_tier", "store",
})  # fmt: skip
#: Parameters refused whenever they carry a value, with what to do instead where there is something.
REFUSED = {
    "audio": "audio output",
    "prediction": "predicted outputs (prediction)",
    "web_search_options": "web search (web_search_options)",
    "top_logprobs": "top_logprobs",
    "verbosity": "verbosity (pass it in provider_options.openai)",
    "prompt_cache_key": "prompt_cache_key (pass it in provider_options.openai)",
    "safety_identifier": "safety_identifier (pass it in provider_options.openai)",
    "prompt_cache_options": "prompt_cache_options (pass it in provider_options.openai)",
    "prompt_cache_retention": "prompt_cache_retention (pass it in provider_options.openai)",
    "moderation": "moderation of the request and reply (moderation)",
    "logit_bias": "logit_bias",
    "functions": "the deprecated functions parameter (use tools)",
    "function_call": "the deprecated function_call parameter (use tool_choice)",
}
#: Refused parameters whose empty value asks for nothing (an empty ``web_search_options`` does: it turns
#: web search on with its defaults, so only these are let through empty).
EMPTY_IS_NOTHING = frozenset({"logit_bias", "functions"})
REASONING_EFFORTS = ("minimal", "low", "medium", "high")
DATA_URL = re.compile(r"^data:(?P<type>[\w.+-]+/[\w.+-]+)(?:;[^,;]*)*;base64,(?P<data>.*)$", re.DOTALL)

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


def image_part(url: str, detail: Any) -> dict[str, Any]:
    """The contract's image part of an OpenAI image URL: a ``data:`` URL's bytes inline, else the URL."""
    out: dict[str, Any] = {"type": "image"}
    found = DATA_URL.match(url)
    if found:
        out.update(data=found["data"], media_type=found["type"])
    else:
        out["url"] = url
    if detail is not None:
        out["detail"] = detail
    return out


def parse_chat(body: Any, a2a: Mapping[str, str]) -> ChatCall:
    """The LLMRequest of a chat-completions body; ChatRequestError for anything we cannot honour."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    _refuse_unsupported(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise ChatRequestError("stream must be a boolean", "stream")
    include_usage = _stream_options(body.get("stream_options"))

    values: dict[str, Any] = {"messages": _messages(body.get("messages"))}
    if body.get("model") is not None:
        values["model"] = body["model"]
    max_tokens = body.get("max_completion_tokens", body.get("max_tokens"))
    if max_tokens is not None:
        values["max_tokens"] = max_tokens
    for name in ("temperature", "top_p", "stop", "seed", "parallel_tool_calls"):
        if body.get(name) is not None:
            values[name] = body[name]
    tools = _tools(body.get("tools"))
    if tools:
        values["tools"] = tools
    if body.get("tool_choice") is not None:
        values["tool_choice"] = _tool_choice(body["tool_choice"])
        if not tools and values["tool_choice"] not in ("auto", "none"):
            raise ChatRequestError("tool_choice forces a tool call, but no tools are given", "tool_choice")
    if body.get("response_format") is not None:
        values["response_format"] = _response_format(body["response_format"])
    effort = body.get("reasoning_effort")
    if effort is not None:
        if effort not in REASONING_EFFORTS:
            raise ChatRequestError(
                f"reasoning_effort must be one of {', '.join(REASONING_EFFORTS)}", "reasoning_effort"
            )
        values["reasoning"] = {"effort": effort}
    add_caller_fields(values, body, a2a)
    request = validated(LLMRequest, values, chat_param)
    return ChatCall(request, bool(stream), include_usage)


def add_caller_fields(
    values: dict[str, Any], body: dict[str, Any], a2a: Mapping[str, str], names: tuple[str, ...] = EXTENSIONS
) -> None:
    """What every OpenAI-format body brings beside its own parameters: llmrelay's fields (``names``),
    the A2A context of the headers (the body's wins), a request id, and ``metadata`` with OpenAI's
    ``user`` kept in it."""
    for name in names:
        if body.get(name) is not None:
            values[name] = body[name]
    for name, value in a2a.items():
        values.setdefault(name, value)
    if values.get("request_id") is None:
        values["request_id"] = uuid.uuid4().hex
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ChatRequestError("metadata must be an object", "metadata")
    kept = dict(metadata or {})
    if body.get("user") is not None:
        kept["user"] = body["user"]
    if kept:
        values["metadata"] = kept


def validated(model: type[ModelT], values: dict[str, Any], param_of: Callable[[Any], str | None]) -> ModelT:
    """``values`` as ``model``; the first validation error as a 400 naming the caller's parameter
    (``param_of`` maps the error's location onto the format the caller speaks)."""
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
        param = param_of(first["loc"])
        raise ChatRequestError(f"invalid {param or 'request'}: {first['msg']}", param) from None


#: Where a content part's fields are in a chat body, by the part's kind.
_PART_FIELDS = {"image": ("image_url", "url"), "document": ("file", "file_data"), "text": ("text",)}


def chat_param(loc: tuple[str | int, ...] | list[str | int]) -> str | None:
    """The chat-completions parameter an LLMRequest validation error is about (``tools.0.function.
    parameters`` for the contract's ``tools.0.parameters``), so the 400 names what the caller sent."""
    path = field_parts(loc)
    match path:
        case []:
            return None
        case ["tools", int(), *rest]:
            path = [*path[:2], "function", *rest]
        case ["tool_choice", *_]:
            path = ["tool_choice"]
        case ["reasoning", *_]:
            path = ["reasoning_effort"]
        case ["response_format", *rest] if rest:
            path = ["response_format", "json_schema", *rest]
        case ["messages", int(), "tool_calls", int(), *rest] if rest:
            path = [*path[:4], "function", *rest]
        case ["messages", int(), "content", int(), field, *_]:
            kind = next((p for p in loc[loc.index("content") + 1 :] if p in _PART_FIELDS), None)
            if kind is not None and field != "detail":
                path = [*path[:4], *_PART_FIELDS[str(kind)]]
            elif kind == "image":
                path = [*path[:4], "image_url", "detail"]
    return ".".join(str(p) for p in path)


def _refuse_unsupported(body: dict[str, Any]) -> None:
    def refuse(param: str, what: str) -> None:
        raise ChatRequestError(f"{what} is not supported by this gateway", param, "unsupported_parameter")

    for name in body:
        if name not in HONOURED and name not in REFUSED and name not in EXTENSIONS:
            refuse(name, f"the parameter {name!r}")
    n = body.get("n")
    if n is not None and n != 1:
        refuse("n", "more than one choice (n > 1)")
    for name, what in REFUSED.items():
        value = body.get(name)
        if value is not None and not (name in EMPTY_IS_NOTHING and value in ([], {})):
            refuse(name, what)
    if body.get("logprobs"):
        refuse("logprobs", "logprobs")
    for name in ("presence_penalty", "frequency_penalty"):
        if body.get(name) not in (None, 0, 0.0):
            refuse(name, name)
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        refuse("modalities", "output modalities other than text")
    if body.get("service_tier") not in (None, "auto"):
        refuse("service_tier", "a service_tier other than auto")
    if body.get("store") not in (None, False):
        refuse("store", "storing completions on the provider (store: true)")


def _stream_options(options: Any) -> bool:
    if options is None:
        return False
    if not isinstance(options, dict):
        raise ChatRequestError("stream_options must be an object", "stream_options")
    for name in options:
        if name != "include_usage":
            raise ChatRequestError(
                f"stream_options.{name} is not supported by this gateway",
                f"stream_options.{name}",
                "unsupported_parameter",
            )
    return options.get("include_usage") is True


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ChatRequestError("tools must be an array", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        param = f"tools.{i}"
        if not isinstance(tool, dict) or tool.get("type") != "function":
            raise ChatRequestError("only tools of type 'function' are supported", f"{param}.type")
        function = tool.get("function")
        if not isinstance(function, dict):
            raise ChatRequestError("a function tool needs a function object", f"{param}.function")
        for key in function:
            if key not in ("name", "description", "parameters", "strict"):
                raise ChatRequestError(f"unknown field {key!r} of a function", f"{param}.function.{key}")
        out.append({k: v for k, v in function.items() if v is not None})
    return out


def _tool_choice(raw: Any) -> Any:
    if raw in ("auto", "none", "required"):
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function":
        function = raw.get("function")
        if isinstance(function, dict) and isinstance(function.get("name"), str):
            return {"name": function["name"]}
    raise ChatRequestError(
        "tool_choice must be auto, none, required or {type: function, function: {name}}", "tool_choice"
    )


def _response_format(raw: Any) -> dict[str, Any]:
    kind = raw.get("type") if isinstance(raw, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        spec = raw.get("json_schema")
        if not isinstance(spec, dict) or not isinstance(spec.get("schema"), dict):
            raise ChatRequestError("json_schema needs a schema object", "response_format.json_schema.schema")
        for key in spec:
            if key not in ("name", "schema", "strict", "description"):
                raise ChatRequestError(
                    f"unknown field {key!r} of json_schema", f"response_format.json_schema.{key}"
                )
        out: dict[str, Any] = {"type": "json_schema", "schema": spec["schema"]}
        for name in ("name", "strict", "description"):
            if spec.get(name) is not None:
                out[name] = spec[name]
        return out
    raise ChatRequestError("response_format type must be text, json_object or json_schema", "response_format")


def _messages(raw: Any) -> list[dict[str, Any]]:
    if not isinstance(raw, list) or not raw:
        raise ChatRequestError("messages must be a non-empty array", "messages")
    out: list[dict[str, Any]] = []
    for i, message in enumerate(raw):
        param = f"messages.{i}"
        if not isinstance(message, dict):
            raise ChatRequestError("each message must be an object", param)
        role = ROLES.get(message.get("role"))  # type: ignore[arg-type]
        if role is None:
            raise ChatRequestError(
                f"message role {message.get('role')!r} is not supported (system, developer, user, assistant,"
                " tool)",
                f"{param}.role",
            )
        if message.get("function_call"):
            raise ChatRequestError("the deprecated function_call is not supported (use tool_calls)", param)
        if message.get("audio") is not None:
            raise ChatRequestError("audio is not supported by this gateway", f"{param}.audio")
        values: dict[str, Any] = {"role": role}
        calls = _tool_calls(message.get("tool_calls"), param) if role == "assistant" else None
        content = _content(message.get("content"), f"{param}.content")
        if calls:
            values["tool_calls"] = calls
            values["content"] = content or None
        else:
            values["content"] = "" if content is None else content
        if role == "tool":
            values["tool_call_id"] = message.get("tool_call_id")
        elif message.get("tool_calls") and role != "assistant":
            raise ChatRequestError("only an assistant message carries tool_calls", f"{param}.tool_calls")
        if message.get("name") is not None:
            values["name"] = message["name"]
        out.append(values)
    return out


def _tool_calls(raw: Any, param: str) -> list[dict[str, Any]] | None:
    if not raw:
        return None
    if not isinstance(raw, list):
        raise ChatRequestError("tool_calls must be an array", f"{param}.tool_calls")
    out: list[dict[str, Any]] = []
    for j, call in enumerate(raw):
        where = f"{param}.tool_calls.{j}"
        function = call.get("function") if isinstance(call, dict) else None
        if (
            not isinstance(call, dict)
            or call.get("type", "function") != "function"
            or not isinstance(function, dict)
        ):
            raise ChatRequestError(
                "a tool call must be {id, type: function, function: {name, arguments}}", where
            )
        arguments = function.get("arguments") or "{}"
        try:
            parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
        except orjson.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ChatRequestError(
                "a tool call's arguments must be a JSON object encoded as a string",
                f"{where}.function.arguments",
            )
        out.append({"id": call.get("id"), "name": function.get("name"), "arguments": parsed})
    return out


def _content(content: Any, param: str) -> str | list[dict[str, Any]] | None:
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ChatRequestError("content must be a string or an array of content parts", param)
    return [_part(part, f"{param}.{k}") for k, part in enumerate(content)]


def _part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text" and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "image_url" and isinstance(part.get("image_url"), dict):
        image = part["image_url"]
        url = image.get("url")
        if not isinstance(url, str):
            raise ChatRequestError("an image_url part needs a url", f"{param}.image_url.url")
        return image_part(url, image.get("detail"))
    if kind == "file" and isinstance(part.get("file"), dict):
        data = part["file"].get("file_data")
        found = DATA_URL.match(data) if isinstance(data, str) else None
        if found is None:
            raise ChatRequestError(
                "a file part needs file_data as a base64 data: URL (file_id is not supported)",
                f"{param}.file.file_data",
                "unsupported_content",
            )
        return {"type": "document", "data": found["data"], "media_type": found["type"]}
    raise ChatRequestError(
        "content parts must be text, image_url or file (PDF)", param, "unsupported_content"
    )
