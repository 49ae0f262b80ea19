"""Gemini's generateContent wire format, streamed (``alt=sse``) and not, with function calling.

The reader takes both spellings of each field (google-genai sends some in snake_case, such as
``parameters_json_schema`` and ``inline_data.mime_type``; the REST reference uses camelCase). A
function-response turn must come right after the model's function-call turn and answer each of its
calls once, matched by id where both carry one and otherwise by name, or the request is a 400 (the
real API's rule: "the number of function response parts is equal to the number of function call
parts of the function call turn"). The writer sends function calls whole, in one chunk, without ids
(as Gemini does), with finish reason ``STOP``.

Thinking models (Gemini 3 and later, by the model's name) sign their calls as the real ones do
(ai.google.dev/gemini-api/docs/thought-signatures, read 2026-12-01): the first ``functionCall`` part
of a reply carries a ``thoughtSignature``, and a request must bring it back on that part: every model
step of the current turn (the turns after the last user message with content of its own, not a
function response) whose first call part lacks its signature is the API's 400 ("Function call is
missing a thought_signature in functionCall parts..."), and a signature that does not verify is a 400
too. Earlier turns are not checked, as the API does not check them.
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from .. import signatures
from ..reply import count_words
from ._format import S0, Agent, Call, Prompt, StreamPlan, Template, WireError, as_int, text_of

_MODES = {"AUTO": "auto", "VALIDATED": "auto", "NONE": "none", "ANY": "required"}
_VERSION = re.compile(r"gemini-(\d+)")
_MISSING_SIGNATURE = (
    "Function call is missing a thought_signature in functionCall parts. This is required for tools to "
    "work correctly, and missing thought_signature may lead to degraded model performance. Additional "
    "data, function call `default_api:{name}`, position {position}. Please refer to "
    "https://ai.google.dev/gemini-api/docs/thought-signatures for more details."
)


def thinking_model(model: str) -> bool:
    """Gemini 3 and later: the models that sign their function calls and require the signature back."""
    match = _VERSION.search(model)
    return match is not None and int(match.group(1)) >= 3


def _call_subject(call: dict[str, Any]) -> list[Any]:
    return [call.get("name"), call.get("args") or {}]


def check_signatures(body: dict[str, Any], model: str) -> None:
    """The current turn's model steps each bring back their first call's signature (WireError: 400)."""
    if not thinking_model(model):
        return
    contents = [c for c in body.get("contents") or () if isinstance(c, dict)]
    start = 0
    for i, content in enumerate(contents):
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        own = [p for p in parts if _get(p, "functionResponse", "function_response") is None]
        if content.get("role", "user") == "user" and own:
            start = i + 1
    for position in range(start, len(contents)):
        content = contents[position]
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        first = next((p for p in parts if isinstance(_get(p, "functionCall", "function_call"), dict)), None)
        if content.get("role") != "model" or first is None:
            continue
        call = _get(first, "functionCall", "function_call")
        signature = _get(first, "thoughtSignature", "thought_signature")
        if signature is None:
            raise WireError(_MISSING_SIGNATURE.format(name=call.get("name"), position=position))
        if not signatures.verify("gemini", signature, _call_subject(call)):
            raise WireError("Corrupted thought signature.")


def _get(obj: dict[str, Any], camel: str, snake: str) -> Any:
    value = obj.get(camel)
    return obj.get(snake) if value is None else value


def _lower_types(schema: Any) -> Any:
    """An OpenAPI-style ``parameters`` / ``responseSchema`` (``"type": "OBJECT"``) as JSON Schema."""
    if isinstance(schema, dict):
        out = {key: _lower_types(value) for key, value in schema.items()}
        if isinstance(out.get("type"), str):
            out["type"] = out["type"].lower()
        return out
    if isinstance(schema, list):
        return [_lower_types(item) for item in schema]
    return schema


def _tools(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    for tool in body.get("tools") or ():
        if not isinstance(tool, dict):
            continue
        for declaration in _get(tool, "functionDeclarations", "function_declarations") or ():
            if not isinstance(declaration, dict) or not isinstance(declaration.get("name"), str):
                raise WireError("* GenerateContentRequest.tools[0].function_declarations: name is required")
            schema = _get(declaration, "parametersJsonSchema", "parameters_json_schema")
            if schema is None:
                schema = _lower_types(declaration.get("parameters"))
            found.append((declaration["name"], schema if isinstance(schema, dict) else {}))
    return found


def _choice(body: dict[str, Any], tools: list[tuple[str, dict[str, Any]]]) -> tuple[str | None, list[Any]]:
    """The tool choice (``auto``/``none``/``required``/a name) and the tools it leaves callable."""
    config = _get(body, "toolConfig", "tool_config")
    calling = (
        _get(config, "functionCallingConfig", "function_calling_config") if isinstance(config, dict) else None
    )
    if not isinstance(calling, dict):
        return None, tools
    mode = str(calling.get("mode") or "AUTO").upper()
    if mode not in _MODES:
        raise WireError(f"Invalid value at 'tool_config.function_calling_config.mode' ({mode})")
    allowed = _get(calling, "allowedFunctionNames", "allowed_function_names") or []
    declared = {name for name, _ in tools}
    for name in allowed:
        if name not in declared:
            raise WireError(f"allowed_function_names: {name!r} is not among the function declarations")
    if allowed:
        tools = [tool for tool in tools if tool[0] in allowed]
        if _MODES[mode] == "required" and len(tools) == 1:
            return tools[0][0], tools
    return _MODES[mode], tools


def _check_turns(contents: list[dict[str, Any]]) -> bool:
    """Every function-response turn answers the call turn just before it; True if the last turn does."""
    previous_calls: list[dict[str, Any]] = []
    answered = False
    for i, content in enumerate(contents):
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        calls = [c for p in parts if isinstance(c := _get(p, "functionCall", "function_call"), dict)]
        responses = [
            r for p in parts if isinstance(r := _get(p, "functionResponse", "function_response"), dict)
        ]
        answered = bool(responses)
        if responses:
            if len(responses) != len(previous_calls):
                raise WireError(
                    f"contents[{i}]: please ensure that the number of function response parts is equal to "
                    "the number of function call parts of the function call turn"
                )
            pending = list(previous_calls)
            for response in responses:
                match = next((c for c in pending if _answers(response, c)), None)
                if match is None:
                    raise WireError(
                        f"contents[{i}]: function response {response.get('name')!r} "
                        f"(id {response.get('id')!r}) answers no call of the previous turn"
                    )
                pending.remove(match)
        previous_calls = calls
    return answered


def _answers(response: dict[str, Any], call: dict[str, Any]) -> bool:
    if response.get("id") and call.get("id"):
        return bool(response["id"] == call["id"] and response.get("name") == call.get("name"))
    return bool(response.get("name") == call.get("name"))


def _schema(config: dict[str, Any]) -> dict[str, Any] | None:
    mime = _get(config, "responseMimeType", "response_mime_type")
    if mime != "application/json":
        return None
    schema = _get(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = _lower_types(_get(config, "responseSchema", "response_schema"))
    return schema if isinstance(schema, dict) else {}


def read(body: dict[str, Any]) -> Prompt:
    """The last ``contents`` item with text whose role is ``user`` or missing; ``systemInstruction`` as
    system text; tools, tool config, function responses, JSON output and media as the :class:`Agent`."""
    last_user = ""
    words = count_words(text_of(_get(body, "systemInstruction", "system_instruction")))
    contents = body.get("contents") or ()
    if isinstance(contents, dict):
        contents = [contents]
    contents = [c for c in contents if isinstance(c, dict)]
    media = 0
    for content in contents:
        parts = [p for p in content.get("parts") or () if isinstance(p, dict)]
        text = text_of(parts)
        words += count_words(text)
        for part in parts:
            if _get(part, "inlineData", "inline_data") is not None or _get(part, "fileData", "file_data"):
                media += 1
            response = _get(part, "functionResponse", "function_response")
            if isinstance(response, dict):
                words += count_words(orjson.dumps(response.get("response")).decode())
        if content.get("role", "user") in ("user", None) and text:
            last_user = text
    answered = _check_turns(contents)
    config = _get(body, "generationConfig", "generation_config") or {}
    max_tokens = None
    schema = None
    if isinstance(config, dict):
        max_tokens = as_int(_get(config, "maxOutputTokens", "max_output_tokens"))
        schema = _schema(config)
    tools = _tools(body)
    choice, callable_tools = _choice(body, tools)
    agent = Agent(
        tools=tuple(callable_tools), tool_choice=choice, answered=answered, schema=schema, media=media
    )
    return Prompt(last_user, words, max_tokens, agent=agent)


def render(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
    finish = "MAX_TOKENS" if truncated and not call.planned else "STOP"
    n = len(tokens) + sum(max(1, len(orjson.dumps(c.arguments)) // 4) for c in call.planned)
    p = call.prompt_tokens
    usage = {
        "promptTokenCount": p,
        "candidatesTokenCount": n,
        "totalTokenCount": p + n,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": p}],
    }

    def payload(parts: Any, finish_reason: str | None, usage_metadata: Any) -> dict[str, Any]:
        candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
        if finish_reason is not None:
            candidate["finishReason"] = finish_reason
        candidate["index"] = 0
        return {
            "candidates": [candidate],
            "usageMetadata": usage_metadata,
            "modelVersion": call.model,
            "responseId": rid,
        }

    if call.planned:
        # Gemini sends function calls whole (arguments as an object, never in fragments), in one chunk.
        parts: list[dict[str, Any]] = [
            {"functionCall": {"name": c.name, "args": c.arguments}} for c in call.planned
        ]
        if thinking_model(call.model):
            # Parallel calls: only the first part is signed (the thought-signatures guide).
            subject = _call_subject(parts[0]["functionCall"])
            parts[0]["thoughtSignature"] = signatures.sign("gemini", rid, subject)
        if not call.stream:
            return orjson.dumps(payload(parts, finish, usage))
        return StreamPlan(b"", [Template(payload(parts, finish, usage)).render()], b"")
    if not call.stream:
        return orjson.dumps(payload([{"text": "".join(tokens)}], finish, usage))
    mid_tpl = Template(payload([{"text": S0}], None, {"promptTokenCount": p, "totalTokenCount": p}))
    last_tpl = Template(payload([{"text": S0}], finish, usage))
    if not tokens:
        return StreamPlan(b"", [], last_tpl.render(b'""'))
    events = [mid_tpl.render(orjson.dumps(t)) for t in tokens[:-1]]
    events.append(last_tpl.render(orjson.dumps(tokens[-1])))
    return StreamPlan(b"", events, b"")
