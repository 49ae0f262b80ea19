"""OpenAI's wire formats: Chat Completions and Responses, streamed and not, tool calls included.

Readers fill :class:`Agent` from the body and enforce the tool-call linkage the real API enforces (a 400
otherwise): in Chat Completions every ``tool`` message answers a ``tool_calls`` entry of an earlier
assistant message, and an assistant message's calls are all answered before the conversation goes on;
in Responses every ``function_call_output`` item names the ``call_id`` of an earlier ``function_call``
item (unchecked when ``previous_response_id`` holds the calls server-side). A Responses request that
asks ``include: ["reasoning.encrypted_content"]`` gets a ``reasoning`` item first in its output, with
``encrypted_content`` (a token only the simulator verifies); one sent back as input must verify, or the
request is a 400. A ``function_call_output`` whose reasoning item was not sent back is accepted, as the
real API accepts it (reasoning items are recommended there, not required). Writers render
``call.planned`` as ``tool_calls`` (finish reason ``tool_calls``, arguments streamed in fragments under
``delta.tool_calls[i]``) or as ``function_call`` output items (streamed as ``response.output_item.added``
then ``response.function_call_arguments.delta`` events).

Both OpenAI APIs live here, readers and writers together, so that one module holds the provider's wire
truth; that is why it runs past 400 lines.
"""

from __future__ import annotations

from typing import Any

import orjson

from .. import signatures
from ..reply import count_words
from ..tools import PlannedCall, call_id
from ._format import S0, S1, Agent, Call, Prompt, StreamPlan, Template, WireError, as_int, sse, text_of

#: How many characters of a call's arguments one streamed fragment carries.
_FRAGMENT = 8
_CHAT_MEDIA = frozenset({"image_url", "file", "input_audio"})
_RESPONSES_MEDIA = frozenset({"input_image", "input_file", "input_audio"})


def _fragments(text: str) -> list[str]:
    return [text[i : i + _FRAGMENT] for i in range(0, len(text), _FRAGMENT)] or [""]


def _media(content: Any, kinds: frozenset[str]) -> int:
    if not isinstance(content, list):
        return 0
    return sum(1 for part in content if isinstance(part, dict) and part.get("type") in kinds)


def _tool_choice(choice: Any, *, nested: bool) -> str | None:
    """``auto``/``none``/``required``, or the named function (chat nests it under ``function``)."""
    if isinstance(choice, str):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        holder = choice.get("function") if nested else choice
        if isinstance(holder, dict) and isinstance(holder.get("name"), str):
            return str(holder["name"])
    return None


def _schema(fmt: Any) -> dict[str, Any] | None:
    """The JSON reply a format asks for: its schema, ``{}`` for JSON mode, None for text."""
    if not isinstance(fmt, dict):
        return None
    if fmt.get("type") == "json_object":
        return {}
    if fmt.get("type") == "json_schema":
        holder = fmt.get("json_schema", fmt)
        schema = holder.get("schema") if isinstance(holder, dict) else None
        return schema if isinstance(schema, dict) else {}
    return None


def _unanswered(pending: list[str]) -> WireError:
    return WireError(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}"
    )


def read_chat(body: dict[str, Any]) -> Prompt:
    """Chat Completions: the last ``user`` message; ``max_completion_tokens`` or ``max_tokens``."""
    last_user, words, media = "", 0, 0
    pending: list[str] = []  # calls of the last assistant turn not answered yet
    made: set[str] = set()
    last_role: Any = None
    for message in body.get("messages") or ():
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        content = message.get("content")
        text = text_of(content)
        words += count_words(text)
        if role == "tool":
            answered = message.get("tool_call_id")
            if answered not in made:
                raise WireError(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'."
                )
            if answered in pending:
                pending.remove(answered)
        elif pending:
            raise _unanswered(pending)
        if role == "assistant":
            pending = [str(c.get("id")) for c in message.get("tool_calls") or () if isinstance(c, dict)]
            made.update(pending)
        if role == "user":
            last_user = text
            media += _media(content, _CHAT_MEDIA)
        last_role = role
    if pending:
        raise _unanswered(pending)
    tools = tuple(
        (str(fn.get("name")), fn.get("parameters") or {})
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and isinstance(fn := tool.get("function"), dict)
    )
    agent = Agent(
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), nested=True),
        answered=last_role == "tool",
        parallel=body.get("parallel_tool_calls") is not False,
        schema=_schema(body.get("response_format")),
        media=media,
    )
    max_tokens = as_int(body.get("max_completion_tokens"))
    if max_tokens is None:
        max_tokens = as_int(body.get("max_tokens"))
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
    return Prompt(last_user, words, max_tokens, include_usage, agent)


def read_responses(body: dict[str, Any]) -> Prompt:
    """Responses: ``input`` as a string, or its last ``user`` item; ``instructions`` as system text."""
    last_user, words, media = "", 0, 0
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        words += count_words(instructions)
    items = body.get("input")
    last_type: Any = None
    if isinstance(items, str):
        last_user = items
        words += count_words(items)
    elif isinstance(items, list):
        made: set[Any] = set()
        stateless = body.get("previous_response_id") is None
        for item in items:
            if not isinstance(item, dict):
                continue
            kind = item.get("type", "message")
            text = text_of(item.get("content")) if "content" in item else text_of(item.get("output"))
            words += count_words(text)
            sealed = item.get("encrypted_content")
            forged = sealed is not None and not signatures.verify("openai", sealed, item.get("id"))
            if kind == "reasoning" and forged:
                raise WireError(f"The encrypted content for item {item.get('id')} could not be verified.")
            if kind == "function_call":
                made.add(item.get("call_id"))
            elif kind == "function_call_output" and stateless and item.get("call_id") not in made:
                raise WireError(
                    f"No tool call found for function call output with call_id {item.get('call_id')}."
                )
            if item.get("role") == "user":
                last_user = text
                media += _media(item.get("content"), _RESPONSES_MEDIA)
            last_type = kind
    tools = tuple(
        (str(tool.get("name")), tool.get("parameters") or {})
        for tool in body.get("tools") or ()
        if isinstance(tool, dict) and tool.get("type") == "function"
    )
    text_config = body.get("text")
    agent = Agent(
        tools=tools,
        tool_choice=_tool_choice(body.get("tool_choice"), nested=False),
        answered=last_type == "function_call_output",
        parallel=body.get("parallel_tool_calls") is not False,
        schema=_schema(text_config.get("format") if isinstance(text_config, dict) else None),
        media=media,
        thinking="reasoning.encrypted_content" in (body.get("include") or ()),
    )
    return Prompt(last_user, words, as_int(body.get("max_output_tokens")), agent=agent)


def _chat_calls(planned: list[PlannedCall], rid: str) -> list[dict[str, Any]]:
    return [
        {
            "id": call_id("call_", rid, i),
            "type": "function",
            "function": {"name": c.name, "arguments": orjson.dumps(c.arguments).decode()},
        }
        for i, c in enumerate(planned)
    ]


def render_chat(call: Call, tokens: list[str], truncated: bool, rid: str, created: int) -> bytes | StreamPlan:
    calls = _chat_calls(call.planned, rid)
    finish = "tool_calls" if calls else "length" if truncated else "stop"
    # A tool call's fragments are its completion tokens, as a text reply's tokens are.
    pieces = [(i, frag) for i, c in enumerate(calls) for frag in _fragments(c["function"]["arguments"])]
    n = len(pieces) if calls else len(tokens)
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
        message: dict[str, Any] = {
            "role": "assistant",
            "content": None if calls else "".join(tokens),
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        return orjson.dumps(
            {
                "id": cid,
                "object": "chat.completion",
                "created": created,
                "model": call.model,
                "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish}],
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

    epilogue = sse(chunk({}, finish))
    if call.include_usage:
        last = chunk({}, None, choices=False)
        last["usage"] = usage
        epilogue += sse(last)
    epilogue += b"data: [DONE]\n\n"
    if calls:
        # As the API streams them: a call's first chunk has its index, id, type and name with empty
        # arguments; the chunks after it carry only the index and a fragment of the arguments.
        events: list[bytes] = []
        for i, c in enumerate(calls):
            head = {
                "index": i,
                "id": c["id"],
                "type": "function",
                "function": {"name": c["function"]["name"], "arguments": ""},
            }
            events.append(sse(chunk({"tool_calls": [head]}, None)))
            for index, frag in pieces:
                if index == i:
                    events.append(
                        sse(chunk({"tool_calls": [{"index": i, "function": {"arguments": frag}}]}, None))
                    )
        preamble = sse(chunk({"role": "assistant", "content": None, "refusal": None}, None))
        return StreamPlan(preamble, events, epilogue)
    token_tpl = Template(chunk({"content": S0}, None))
    preamble = sse(chunk({"role": "assistant", "content": "", "refusal": None}, None))
    return StreamPlan(preamble, [token_tpl.render(orjson.dumps(t)) for t in tokens], epilogue)


def _reasoning_item(rid: str) -> dict[str, Any]:
    rs_id = "rs_" + rid
    return {
        "id": rs_id,
        "type": "reasoning",
        "summary": [],
        "encrypted_content": signatures.sign("openai", rid, rs_id),
    }


def render_responses(
    call: Call, tokens: list[str], truncated: bool, rid: str, created: int
) -> bytes | StreamPlan:
    text = "".join(tokens)
    resp_id = "resp_" + rid
    item_id = "msg_" + rid
    body = call.body
    calls = [
        {
            "id": call_id("fc_", rid, i),
            "type": "function_call",
            "status": "completed",
            "arguments": orjson.dumps(c.arguments).decode(),
            "call_id": call_id("call_", rid, i),
            "name": c.name,
        }
        for i, c in enumerate(call.planned)
    ]
    truncated = truncated and not calls
    status = "incomplete" if truncated else "completed"
    n = sum(len(_fragments(c["arguments"])) for c in calls) if calls else len(tokens)
    text_config = body.get("text") if isinstance(body.get("text"), dict) else {}

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
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": None, "summary": None, **(body.get("reasoning") or {})},
            "service_tier": "default",
            "store": bool(body.get("store", True)),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium", **text_config},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
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
    reasoning = _reasoning_item(rid) if call.agent.thinking else None
    thought = [reasoning] if reasoning is not None else []
    first = len(thought)  # the output index of the first item after the reasoning item
    output = thought + (calls or [item])
    if not call.stream:
        return orjson.dumps(response(status, output, usage))

    seq = 0

    def event(obj: dict[str, Any]) -> bytes:
        nonlocal seq
        obj["sequence_number"] = seq
        seq += 1
        return sse(obj, obj["type"])

    head = [
        event({"type": "response.created", "response": response("in_progress", [], None)}),
        event({"type": "response.in_progress", "response": response("in_progress", [], None)}),
    ]
    if reasoning is not None:
        # The encrypted content is whole only in the done event (the added one may lack it).
        added = {**reasoning, "encrypted_content": None}
        head.append(event({"type": "response.output_item.added", "output_index": 0, "item": added}))
        head.append(event({"type": "response.output_item.done", "output_index": 0, "item": reasoning}))
    if calls:
        # As the API streams a call: the item announced with empty arguments, the arguments in
        # fragments, the whole arguments, the finished item.
        events: list[bytes] = []
        for index, fc in enumerate(calls, start=first):
            announced = {**fc, "status": "in_progress", "arguments": ""}
            events.append(
                event({"type": "response.output_item.added", "output_index": index, "item": announced})
            )
            for frag in _fragments(fc["arguments"]):
                events.append(
                    event(
                        {
                            "type": "response.function_call_arguments.delta",
                            "item_id": fc["id"],
                            "output_index": index,
                            "delta": frag,
                        }
                    )
                )
            events.append(
                event(
                    {
                        "type": "response.function_call_arguments.done",
                        "item_id": fc["id"],
                        "output_index": index,
                        "name": fc["name"],
                        "arguments": fc["arguments"],
                    }
                )
            )
            events.append(event({"type": "response.output_item.done", "output_index": index, "item": fc}))
        done = event({"type": "response.completed", "response": response(status, output, usage)})
        return StreamPlan(b"".join(head), events, done)

    preamble = b"".join(
        [
            *head,
            event(
                {
                    "type": "response.output_item.added",
                    "output_index": first,
                    "item": {**item, "status": "in_progress", "content": []},
                }
            ),
            event(
                {
                    "type": "response.content_part.added",
                    "item_id": item_id,
                    "output_index": first,
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
            "output_index": first,
            "content_index": 0,
            "delta": S0,
            "logprobs": [],
            "sequence_number": S1,
        },
        prefix=b"event: response.output_text.delta\ndata: ",
    )
    events = [delta_tpl.render(orjson.dumps(t), str(seq + i).encode()) for i, t in enumerate(tokens)]
    seq += len(tokens)
    epilogue = b"".join(
        [
            event(
                {
                    "type": "response.output_text.done",
                    "item_id": item_id,
                    "output_index": first,
                    "content_index": 0,
                    "text": text,
                    "logprobs": [],
                }
            ),
            event(
                {
                    "type": "response.content_part.done",
                    "item_id": item_id,
                    "output_index": first,
                    "content_index": 0,
                    "part": part,
                }
            ),
            event({"type": "response.output_item.done", "output_index": first, "item": item}),
            event(
                {
                    "type": "response.incomplete" if truncated else "response.completed",
                    "response": response(status, output, usage),
                }
            ),
        ]
    )
    return StreamPlan(preamble, events, epilogue)
