"""OpenAI's Responses-API request format (``POST /v1/responses``), read into an LLMRequest.

Our own encoding of OpenAI's public format (no provider SDK here), checked against the ``openai`` SDK's
``ResponseCreateParams`` and the API reference (platform.openai.com/docs/api-reference/responses, read
2026-12-01). As for chat completions, every parameter is honoured or refused with a 400 naming it.

Honoured: ``model``, ``input`` (a string, or items: messages of role user / system / developer /
assistant with ``input_text`` / ``output_text`` / ``input_image`` / ``input_file`` parts,
``function_call`` and ``function_call_output`` items), ``instructions`` (a system message first),
``tools`` (``type: function``), ``tool_choice``, ``parallel_tool_calls``, ``text.format`` (text,
json_object, json_schema), ``reasoning.effort``, ``max_output_tokens``, ``temperature``, ``top_p``,
``stream``, ``metadata`` and ``user`` (kept with the request), ``store`` and ``previous_response_id``
(the conversation kept in Redis, see ``routes_responses``), and the no-op values ``truncation:
"disabled"``, ``service_tier`` ``auto`` / ``default``, ``background: false``, ``top_logprobs: 0``,
``include: ["reasoning.encrypted_content"]`` (llmrelay returns no reasoning items, so there is nothing to
include). ``reasoning`` input items are accepted and not sent on: what the provider reasoned is not
carried between turns in this format, the model reasons again. llmrelay's own fields ride in the body as
for chat completions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from llmrelay.producer.api.openai_compat import (
    DATA_URL,
    EXTENSIONS,
    REASONING_EFFORTS,
    ChatRequestError,
    add_caller_fields,
    image_part,
    validated,
)
from llmrelay.shared.models import LLMRequest

#: Parameters read here (each honoured, or refused below when given a value that cannot be honoured).
HONOURED = frozenset({
    "model", "input", "instructions", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning",
    "max_output_tokens", "temperature", "top_p", "stream", "stream_options", "metadata", "store",
    "previous_response_id", "user", "truncation", "include", "service_tier", "background", "top_logprobs",
    "prompt_cache_options",
})  # fmt: skip
#: Parameters refused whenever they carry a value, with what to do instead where there is something.
REFUSED = {
    "conversation": "the Conversations API (conversation; chain turns with previous_response_id)",
    "prompt": "reusable prompt templates (prompt)",
    "max_tool_calls": "max_tool_calls",
    "prompt_cache_key": "prompt_cache_key (pass it in provider_options.openai)",
    "prompt_cache_retention": "prompt_cache_retention (pass it in provider_options.openai)",
    "safety_identifier": "safety_identifier (pass it in provider_options.openai)",
    "context_management": "context_management",
}
ROLES = {"user": "user", "system": "system", "developer": "system", "assistant": "assistant"}
MESSAGE_KEYS = frozenset({"type", "role", "content", "id", "status", "phase"})
#: ``include`` values that ask for something llmrelay never returns, so accepting them changes nothing.
NO_OP_INCLUDES = frozenset({"reasoning.encrypted_content"})


def refuse(param: str, what: str) -> ChatRequestError:
    return ChatRequestError(f"{what} is not supported by this gateway", param, "unsupported_parameter")


@dataclass(slots=True)
class ResponsesCall:
    """A read request: the LLMRequest, how to answer, and what the Response object echoes back."""

    request: LLMRequest
    stream: bool
    store: bool
    #: The Response object's fields that repeat the request (instructions, tools, text, reasoning, ...).
    echo: dict[str, Any]
    #: The conversation without the instructions (what a stored response keeps), as contract messages.
    conversation: list[dict[str, Any]] = field(default_factory=list)


def previous_response_id(body: Any) -> str | None:
    """The ``previous_response_id`` of a body, checked; the route loads that conversation first."""
    value = body.get("previous_response_id") if isinstance(body, dict) else None
    if value is not None and (not isinstance(value, str) or not value):
        raise ChatRequestError("previous_response_id must be a response id", "previous_response_id")
    return value


def parse_responses(
    body: Any, a2a: Mapping[str, str], history: list[dict[str, Any]] | None = None
) -> ResponsesCall:
    """The LLMRequest of a Responses body, after ``history`` (a stored conversation) when one is named."""
    if not isinstance(body, dict):
        raise ChatRequestError("the request body must be a JSON object")
    _refuse_unsupported(body)
    previous_response_id(body)
    stream = _flag(body, "stream", False)
    store = _flag(body, "store", False)
    _stream_options(body.get("stream_options"))

    conversation, origins = _input(body.get("input"), list(history or []))
    messages = list(conversation)
    instructions = body.get("instructions")
    if instructions is not None:
        if not isinstance(instructions, str):
            raise ChatRequestError("instructions must be a string", "instructions")
        messages.insert(0, {"role": "system", "content": instructions})
        origins.insert(0, "instructions")

    values: dict[str, Any] = {"messages": messages}
    if body.get("model") is not None:
        values["model"] = body["model"]
    if body.get("max_output_tokens") is not None:
        values["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "parallel_tool_calls"):
        if body.get(name) is not None:
            values[name] = body[name]
    tools = _tools(body.get("tools"))
    if tools:
        values["tools"] = tools
    choice = _tool_choice(body.get("tool_choice"), tools)
    if choice is not None:
        values["tool_choice"] = choice
    text = _text(body.get("text"))
    if text is not None:
        values["response_format"] = text
    effort = _reasoning(body.get("reasoning"))
    if effort is not None:
        values["reasoning"] = {"effort": effort}
    add_caller_fields(values, body, a2a)
    request = validated(LLMRequest, values, lambda loc: _param_of([str(part) for part in loc], origins))
    echo = {
        "instructions": instructions,
        "tools": [{"type": "function", **tool} for tool in tools],
        "tool_choice": body.get("tool_choice") or "auto",
        "parallel_tool_calls": body.get("parallel_tool_calls") is not False,
        "text": {"format": _format_echo(request), "verbosity": None},
        "reasoning": _reasoning_echo(body.get("reasoning"), effort),
        "max_output_tokens": body.get("max_output_tokens"),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "metadata": body.get("metadata") or {},
        "user": body.get("user"),
        "previous_response_id": body.get("previous_response_id"),
        "store": store,
    }
    return ResponsesCall(request, stream, store, echo, conversation)


def _param_of(loc: list[str], origins: list[str]) -> str | None:
    """The Responses parameter an LLMRequest validation error is about (its ``loc`` names ours)."""
    if loc[:1] == ["messages"]:
        loc = [origins[int(loc[1])]] if len(loc) > 1 and loc[1].isdigit() else ["input"]
    elif loc[:1] == ["max_tokens"]:
        loc = ["max_output_tokens"]
    elif loc[:1] == ["response_format"]:
        loc = ["text", "format", *loc[2:]]  # loc[1] is the format's type
    return ".".join(loc) or None


def _format_echo(request: LLMRequest) -> dict[str, Any]:
    if request.response_format is None:
        return {"type": "text"}
    return request.response_format.model_dump(mode="json", by_alias=True, exclude_none=True)


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ChatRequestError(f"{name} must be a boolean", name)
    return value


def _refuse_unsupported(body: dict[str, Any]) -> None:
    for name in body:
        if name not in HONOURED and name not in REFUSED and name not in EXTENSIONS:
            raise refuse(name, f"the parameter {name!r}")
    for name, what in REFUSED.items():
        if body.get(name) not in (None, [], {}):
            raise refuse(name, what)
    if body.get("truncation") not in (None, "disabled"):
        raise refuse("truncation", "truncation other than disabled")
    if body.get("service_tier") not in (None, "auto", "default"):
        raise refuse("service_tier", "a service_tier other than auto or default")
    if body.get("background") not in (None, False):
        raise refuse("background", "background responses (use JSON-RPC llm.submit and llm.result)")
    if body.get("top_logprobs") not in (None, 0):
        raise refuse("top_logprobs", "top_logprobs")
    _prompt_cache_options(body.get("prompt_cache_options"))
    include = body.get("include")
    if include is not None:
        if not isinstance(include, list):
            raise ChatRequestError("include must be an array", "include")
        for value in include:
            if value not in NO_OP_INCLUDES:
                raise refuse("include", f"include {value!r}")


#: ``prompt_cache_options`` values that ask for what every request already gets: the providers' implicit
#: prompt caching with its default lifetime. ``comparison_response_id`` only asks for cache diagnostics
#: "when the feature is enabled" (the openai SDK's ``PromptCacheOptions``), which llmrelay does not
#: produce, so naming one changes nothing (pydantic-ai sends it on every later turn).
_CACHE_DEFAULTS = {"mode": "implicit", "ttl": "30m", "prewarm": False}


def _prompt_cache_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise ChatRequestError("prompt_cache_options must be an object", "prompt_cache_options")
    for key, value in options.items():
        if key == "comparison_response_id":
            if value is not None and not isinstance(value, str):
                raise ChatRequestError(
                    "prompt_cache_options.comparison_response_id must be a string",
                    "prompt_cache_options.comparison_response_id",
                )
        elif key not in _CACHE_DEFAULTS:
            raise refuse(f"prompt_cache_options.{key}", f"prompt_cache_options.{key}")
        elif value is not None and value != _CACHE_DEFAULTS[key]:
            raise refuse(f"prompt_cache_options.{key}", f"prompt_cache_options.{key} {value!r}")


def _stream_options(options: Any) -> None:
    if options is None:
        return
    if not isinstance(options, dict):
        raise ChatRequestError("stream_options must be an object", "stream_options")
    for name, value in options.items():
        if name != "include_obfuscation" or value is True:
            raise refuse(f"stream_options.{name}", f"stream_options.{name}: {value!r}")


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ChatRequestError("tools must be an array", "tools")
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(raw):
        param = f"tools.{i}"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind != "function":
            raise refuse(f"{param}.type", f"tools of type {kind!r} (only 'function' tools are)")
        for key in tool:
            if key not in ("type", "name", "description", "parameters", "strict"):
                raise ChatRequestError(f"unknown field {key!r} of a function tool", f"{param}.{key}")
        parameters = tool.get("parameters")
        if parameters is not None and not isinstance(parameters, dict):
            raise ChatRequestError("a tool's parameters must be a JSON Schema object", f"{param}.parameters")
        out.append({k: v for k, v in tool.items() if k != "type" and v is not None})
    return out


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> Any:
    if raw is None or raw == "auto" or raw == "none":
        return raw
    if raw == "required":
        if not tools:
            raise ChatRequestError("tool_choice 'required' needs tools", "tool_choice")
        return raw
    if isinstance(raw, dict) and raw.get("type") == "function" and isinstance(raw.get("name"), str):
        if raw["name"] not in {tool.get("name") for tool in tools}:
            raise ChatRequestError(
                f"tool_choice names {raw['name']!r}, which is not among the tools", "tool_choice"
            )
        return {"name": raw["name"]}
    raise ChatRequestError(
        "tool_choice must be auto, none, required or {type: function, name}", "tool_choice"
    )


def _text(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ChatRequestError("text must be an object", "text")
    for key in raw:
        if key not in ("format", "verbosity"):
            raise refuse(f"text.{key}", f"text.{key}")
    if raw.get("verbosity") is not None:
        raise refuse("text.verbosity", "text.verbosity (pass it in provider_options.openai)")
    fmt = raw.get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("text", "json_object"):
        return {"type": kind}
    if kind == "json_schema":
        for key in fmt:
            if key not in ("type", "name", "schema", "strict", "description"):
                raise ChatRequestError(f"unknown field {key!r} of a json_schema format", f"text.format.{key}")
        if not isinstance(fmt.get("schema"), dict):
            raise ChatRequestError("a json_schema format needs a schema object", "text.format.schema")
        return {k: v for k, v in fmt.items() if v is not None}
    raise ChatRequestError("text.format type must be text, json_object or json_schema", "text.format.type")


#: ``reasoning.context`` picks which earlier reasoning the model sees again. llmrelay gives back the
#: reasoning of the current turn's tool calls (kept by the worker, see docs/architecture.md "Provider
#: artifacts") and no other: whatever is asked, the response reports ``current_turn``, the mode used, as
#: the API reports the effective mode on a response.
REASONING_CONTEXTS = ("auto", "current_turn", "all_turns")


def _reasoning_echo(raw: Any, effort: str | None) -> dict[str, Any]:
    echo: dict[str, Any] = {"effort": effort, "summary": None}
    if isinstance(raw, dict) and raw.get("context") is not None:
        echo["context"] = "current_turn"
    return echo


def _reasoning(raw: Any) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise ChatRequestError("reasoning must be an object", "reasoning")
    for key, value in raw.items():
        if key in ("summary", "generate_summary") and value is not None:
            raise refuse(f"reasoning.{key}", "reasoning summaries")
        if key == "context" and value not in (None, *REASONING_CONTEXTS):
            raise ChatRequestError(
                f"reasoning.context must be one of {', '.join(REASONING_CONTEXTS)}", "reasoning.context"
            )
        if key not in ("effort", "summary", "generate_summary", "context"):
            raise refuse(f"reasoning.{key}", f"reasoning.{key}")
    effort = raw.get("effort")
    if effort is not None and effort not in REASONING_EFFORTS:
        raise ChatRequestError(
            f"reasoning.effort must be one of {', '.join(REASONING_EFFORTS)}", "reasoning.effort"
        )
    return effort


# -- input items -------------------------------------------------------------------------------------


def _input(raw: Any, history: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """The conversation (``history``, then the input items as contract messages) and, for each message,
    the parameter it came from (for errors that name it)."""
    messages = [dict(m) for m in history]
    origins = ["previous_response_id"] * len(history)
    called = {call["id"] for m in history for call in m.get("tool_calls") or ()}
    if isinstance(raw, str):
        return [*messages, {"role": "user", "content": raw}], [*origins, "input"]
    if not isinstance(raw, list) or not raw:
        raise ChatRequestError("input must be a string or a non-empty array of items", "input")
    for i, item in enumerate(raw):
        param = f"input.{i}"
        if not isinstance(item, dict):
            raise ChatRequestError("each input item must be an object", param)
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            messages.append(_message(item, param))
        elif kind == "function_call":
            call = _function_call(item, param)
            called.add(call["id"])
            last = messages[-1] if messages else None
            if last is not None and last["role"] == "assistant" and origins[-1] != "previous_response_id":
                last.setdefault("tool_calls", []).append(call)
                if not last.get("content"):
                    last["content"] = None
                continue
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
        elif kind == "function_call_output":
            call_id = item.get("call_id")
            if not isinstance(call_id, str) or call_id not in called:
                raise ChatRequestError(
                    f"no function_call with call_id {call_id!r} comes before this output (in the input or "
                    "the previous response)",
                    f"{param}.call_id",
                )
            messages.append({"role": "tool", "tool_call_id": call_id, "content": _output(item, param)})
        elif kind == "reasoning":
            continue
        else:
            raise refuse(f"{param}.type", f"input items of type {kind!r}")
        origins.append(param)
    return messages, origins


def _message(item: dict[str, Any], param: str) -> dict[str, Any]:
    for key in item:
        if key not in MESSAGE_KEYS:
            raise ChatRequestError(f"unknown field {key!r} of a message item", f"{param}.{key}")
    role = ROLES.get(item.get("role"))  # type: ignore[arg-type]
    if role is None:
        raise ChatRequestError(
            f"message role {item.get('role')!r} is not supported (user, system, developer, assistant)",
            f"{param}.role",
        )
    content = item.get("content")
    if isinstance(content, str):
        return {"role": role, "content": content}
    if not isinstance(content, list):
        raise ChatRequestError("content must be a string or an array of content parts", f"{param}.content")
    return {"role": role, "content": [_part(part, f"{param}.content.{k}") for k, part in enumerate(content)]}


def _part(part: Any, param: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text") and isinstance(part.get("text"), str):
        return {"type": "text", "text": part["text"]}
    if kind == "input_image":
        url = part.get("image_url")
        if not isinstance(url, str):
            raise refuse(f"{param}.image_url", "an input_image without image_url (file_id)")
        return image_part(url, part.get("detail"))
    if kind == "input_file":
        data = part.get("file_data")
        found = DATA_URL.match(data) if isinstance(data, str) else None
        if found is None:
            raise refuse(
                f"{param}.file_data",
                "an input_file without file_data as a base64 data: URL (file_id, file_url)",
            )
        return {"type": "document", "data": found["data"], "media_type": found["type"]}
    raise refuse(
        param, f"content parts of type {kind!r} (input_text, output_text, input_image, input_file are)"
    )


def _function_call(item: dict[str, Any], param: str) -> dict[str, Any]:
    for name in ("call_id", "name"):
        if not isinstance(item.get(name), str):
            raise ChatRequestError(f"a function_call item needs {name}", f"{param}.{name}")
    arguments = item.get("arguments") or "{}"
    try:
        parsed = orjson.loads(arguments) if isinstance(arguments, str) else None
    except orjson.JSONDecodeError:
        parsed = None
    if not isinstance(parsed, dict):
        raise ChatRequestError(
            "a function_call's arguments must be a JSON object encoded as a string", f"{param}.arguments"
        )
    return {"id": item["call_id"], "name": item["name"], "arguments": parsed}


def _output(item: dict[str, Any], param: str) -> str | list[dict[str, Any]]:
    output = item.get("output")
    if isinstance(output, str):
        return output
    if not isinstance(output, list):
        raise ChatRequestError("a function_call_output needs output (a string or parts)", f"{param}.output")
    parts = [_part(part, f"{param}.output.{k}") for k, part in enumerate(output)]
    for k, part in enumerate(parts):
        if part["type"] != "text":
            raise refuse(f"{param}.output.{k}", "images and files in a function_call_output")
    return parts


__all__ = ["ResponsesCall", "parse_responses", "previous_response_id"]
