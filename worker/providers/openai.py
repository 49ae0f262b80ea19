"""The OpenAI adapter: Chat Completions, and the Responses API for the models the catalog marks so.

Both APIs get the whole agent request in their own shape: content parts (images as ``image_url`` /
``input_image``, PDFs as ``file`` / ``input_file`` with a data URL), assistant tool calls and tool results
(``tool_calls`` + ``tool`` messages; ``function_call`` + ``function_call_output`` items), ``tools``,
``tool_choice``, ``parallel_tool_calls``, structured output (``response_format``; ``text.format``) and
reasoning effort (``reasoning_effort``; ``reasoning.effort``, reasoning models only). OpenAI has no
reasoning token budget, and the Responses API has no ``seed`` (``responses.create`` in
openai/resources/responses/responses.py takes none): both are refused, not dropped. Stop sequences have
no Responses API form either and, as before, are not sent there. The Responses API is called with
``store=False``: every request carries its whole conversation.

Reasoning items: a reasoning model on the Responses API is asked for
``include=["reasoning.encrypted_content"]`` (the way to use reasoning items statelessly, with
``store: false``: platform.openai.com/docs/api-reference/responses/create, ``include``, read
2026-12-01). Each reasoning item is read from its ``response.output_item.done`` event (the SDK's
``ResponseReasoningItem.encrypted_content``: the ``added`` event's may be incomplete) and yielded as the
``ToolCallArtifact`` of the function call that follows it; handed back in ``ProviderCall.artifacts``,
it goes back into the input right before that ``function_call`` item, as the API wants in a tool loop.
Only its id and encrypted content are kept (``summary`` is sent empty: it is display text).

It holds both APIs of one provider, request mapping and stream reading, which is why it runs past 400
lines.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from functools import partial
from typing import Any

import httpx2
import openai
import orjson
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseIncompleteEvent,
    ResponseInputParam,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    ResponseTextDeltaEvent,
)

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.catalog import Provider
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import (
    DocumentPart,
    FinishReason,
    ImagePart,
    JSONObjectFormat,
    JSONSchemaFormat,
    LLMRequest,
    Message,
    NamedToolChoice,
    TextPart,
    ToolCall,
    Usage,
)
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import (
    Embedded,
    EmbeddingCall,
    GeneratedSDKAdapter,
    ProviderCall,
    RateLimitInfo,
    StreamEnd,
    StreamItem,
    ToolCallArtifact,
    ToolCallDelta,
)

PROVIDER: Provider = "openai"
#: A field this provider cannot take, refused by name before any call.
_refuse = partial(_common.refused, PROVIDER)

_CHAT_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
}
_INCOMPLETE_FINISH: dict[str, FinishReason] = {
    "max_output_tokens": "length",
    "content_filter": "content_filter",
}

#: The status an error reported inside a stream (no HTTP status of its own) stands for.
_ERROR_CODE_STATUS: dict[str, int] = {
    "rate_limit_exceeded": 429,
    "insufficient_quota": 402,
    "server_error": 500,
    "server_is_overloaded": 503,
    "slow_down": 503,
    "invalid_request_error": 400,
    "invalid_prompt": 400,
    "context_length_exceeded": 400,
    "invalid_api_key": 401,
    "authentication_error": 401,
    "permission_error": 403,
    "model_not_found": 404,
    "not_found_error": 404,
}


#: Per embeddings call: inputs, and tokens summed across them (the ``embeddings.create`` docstring of
#: openai 3.57, read 2026-12-01); a longer request is sent in several calls, in order.
EMBEDDING_MAX_INPUTS = 2048
EMBEDDING_MAX_TOKENS = 300_000

#: Model families that take a reasoning effort (the reasoning guide: o-series, gpt-5, gpt-6); others refuse.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")

#: What the adapter sets itself or keeps stateless (no stored or server-side conversation);
#: ``provider_options`` may not replace it.
_RESERVED = frozenset(
    {"model", "messages", "input", "instructions", "stream", "stream_options", "max_tokens",
     "max_completion_tokens", "max_output_tokens", "store", "previous_response_id", "conversation"}
)  # fmt: skip


def _translate(exc: BaseException) -> LLMRelayError:
    """Every openai SDK and httpx2 exception as the shared error it stands for."""
    if isinstance(exc, openai.APIStatusError):
        code = exc.code or exc.type
        # An exhausted quota also comes as 429, but waiting does not help: it is a billing matter.
        status = 402 if code == "insufficient_quota" else exc.status_code
        return _common.status_error(
            PROVIDER,
            status,
            _body_message(exc.body) or exc.message,
            retry_after=_common.parse_retry_after(exc.response.headers),
            code=code,
            http_status=exc.status_code,
        )
    if isinstance(exc, openai.APIConnectionError):
        timed_out = isinstance(exc, openai.APITimeoutError)
        return _common.wrapped_connection_error(PROVIDER, exc, exc.message, timed_out=timed_out)
    if isinstance(exc, openai.APIResponseValidationError):
        return _common.status_error(PROVIDER, 502, exc.message, http_status=exc.status_code)
    if isinstance(exc, openai.APIError):
        # An error reported inside a stream that began with 200: its body says what went wrong.
        body = exc.body if isinstance(exc.body, Mapping) else {}
        code = body.get("code") or body.get("type")
        status = _ERROR_CODE_STATUS.get(str(code), 502)
        text = body.get("message") or exc.message
        return _common.status_error(PROVIDER, status, text, code=code, http_status=200)
    return _common.other_error(PROVIDER, exc)


class OpenAIAdapter(GeneratedSDKAdapter[openai.AsyncOpenAI]):
    """One ``AsyncOpenAI`` client per process, on an explicitly sized httpx2 pool, SDK retries off."""

    name: Provider = PROVIDER

    client_class = openai.AsyncOpenAI

    _translate = staticmethod(_translate)

    async def _embed(self, call: EmbeddingCall) -> Embedded:
        """``embeddings.create`` per batch of inputs. The encoding is left to the SDK, which asks for
        base64 and decodes it into floats (``openai/lib/_parsing/_embeddings.py``)."""
        request = call.request
        vectors: list[list[float]] = []
        tokens = 0
        ratelimit: RateLimitInfo | None = None
        for batch in _common.embedding_batches(request.input, EMBEDDING_MAX_INPUTS, EMBEDDING_MAX_TOKENS):
            raw = await self._client.embeddings.with_raw_response.create(
                model=call.model.api_id,
                input=batch,
                dimensions=_given(request.dimensions),
                timeout=call.timeout,
                extra_headers=call.headers,
            )
            ratelimit = _ratelimit(raw.headers)
            result = raw.parse()
            vectors += [list(item.embedding) for item in sorted(result.data, key=lambda item: item.index)]
            tokens += result.usage.prompt_tokens
        return Embedded(vectors, tokens, ratelimit)

    async def _list_models(self) -> set[str]:
        # GET /v1/models, paged by the SDK (developers.openai.com/api/reference/resources/models).
        return {model.id async for model in self._client.models.list()}

    def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        return self._stream_responses(call) if call.model.api == "responses" else self._stream_chat(call)

    async def _stream_chat(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        request = call.request
        params = _chat_params(request, call.model.api_id)
        stream = await self._client.chat.completions.create(
            model=call.model.api_id,
            messages=_chat_messages(request),
            stream=True,
            stream_options={"include_usage": True},
            timeout=call.timeout,
            extra_headers=call.headers,
            extra_body=_options(request, params),
            **params,
        )
        finish: str | None = None
        usage = Usage()
        api_model: str | None = None
        async with stream:
            ratelimit = _ratelimit(stream.response.headers)
            async for chunk in stream:
                if chunk.choices:
                    choice = chunk.choices[0]
                    text = choice.delta.content
                    if text:
                        yield text
                    # The first fragment of a call has its index, id and name; later ones only the index
                    # and a piece of the arguments (the streaming guide, function calling).
                    for piece in choice.delta.tool_calls or ():
                        fn = piece.function
                        yield ToolCallDelta(
                            piece.index,
                            piece.id,
                            fn.name if fn else None,
                            (fn.arguments if fn else None) or "",
                        )
                    if choice.finish_reason:
                        finish = choice.finish_reason
                if chunk.usage is not None:
                    u = chunk.usage
                    usage = Usage.of(
                        u.prompt_tokens,
                        u.completion_tokens,
                        cached=_count(u.prompt_tokens_details, "cached_tokens"),
                        reasoning=_count(u.completion_tokens_details, "reasoning_tokens"),
                    )
                api_model = chunk.model
        if finish is None:
            raise _common.connection_error(PROVIDER, "stream ended without a finish reason")
        yield StreamEnd(_common.finish_reason(finish, _CHAT_FINISH), usage, api_model, ratelimit)

    async def _stream_responses(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        request = call.request
        instructions, items = _responses_input(request, call.artifacts)
        params = _responses_params(request, call.model.api_id)
        params.update(_reasoning_include(request, call.model.api_id))
        stream = await self._client.responses.create(
            model=call.model.api_id,
            input=items,
            instructions=_given(instructions),
            stream=True,
            store=False,
            timeout=call.timeout,
            extra_headers=call.headers,
            extra_body=_options(request, params),
            **params,
        )
        end: StreamEnd | None = None
        # output_index -> (call index, whether any argument text came for it)
        calls: dict[int, list[Any]] = {}
        reasoning: list[dict[str, Any]] = []  # reasoning items not yet followed by a function call
        async with stream:
            ratelimit = _ratelimit(stream.response.headers)
            async for event in stream:
                if isinstance(event, ResponseTextDeltaEvent):
                    if event.delta:
                        yield event.delta
                elif isinstance(event, ResponseOutputItemAddedEvent):
                    item = event.item
                    if item.type == "function_call":
                        index = len(calls)
                        calls[event.output_index] = [index, bool(item.arguments)]
                        yield ToolCallDelta(index, item.call_id, item.name, item.arguments or "")
                        if reasoning:
                            yield ToolCallArtifact(index, CallArtifacts(blocks=tuple(reasoning)))
                            reasoning = []
                elif isinstance(event, ResponseOutputItemDoneEvent):
                    kept = _reasoning_item(event.item)
                    if kept is not None:
                        reasoning.append(kept)
                elif isinstance(event, ResponseFunctionCallArgumentsDeltaEvent):
                    known = calls.get(event.output_index)
                    if known is not None and event.delta:
                        known[1] = True
                        yield ToolCallDelta(known[0], arguments=event.delta)
                elif isinstance(event, ResponseFunctionCallArgumentsDoneEvent):
                    # A call whose arguments came whole, in the done event only.
                    known = calls.get(event.output_index)
                    if known is not None and not known[1]:
                        known[1] = True
                        yield ToolCallDelta(known[0], arguments=event.arguments)
                elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
                    end = _responses_end(event.response, ratelimit)
                elif isinstance(event, ResponseFailedEvent):
                    error = event.response.error
                    failed = {"code": error.code, "message": error.message} if error else None
                    raise openai.APIError("response failed", stream.response.request, body=failed)
                elif isinstance(event, ResponseErrorEvent):
                    body = {"code": event.code, "message": event.message}
                    raise openai.APIError(event.message, stream.response.request, body=body)
        if end is None:
            raise _common.connection_error(PROVIDER, "stream ended before the response completed")
        yield end


def _responses_end(result: Response, ratelimit: RateLimitInfo) -> StreamEnd:
    reason: FinishReason = "stop"
    if result.status != "completed":
        details = result.incomplete_details
        reason = _common.finish_reason(details.reason if details else None, _INCOMPLETE_FINISH)
    elif any(item.type == "function_call" for item in result.output or ()):
        # The Responses API has no finish reason: a completed response that calls tools ends on them.
        reason = "tool_calls"
    usage = Usage()
    if result.usage is not None:
        u = result.usage
        usage = Usage.of(
            u.input_tokens,
            u.output_tokens,
            cached=_count(getattr(u, "input_tokens_details", None), "cached_tokens"),
            reasoning=_count(getattr(u, "output_tokens_details", None), "reasoning_tokens"),
        )
    return StreamEnd(reason, usage, result.model, ratelimit)


def _count(details: object, name: str) -> int:
    """A token count inside a usage's details object, which the API may leave out."""
    value = getattr(details, name, None)
    return value if isinstance(value, int) else 0


def _body_message(body: object) -> str | None:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get("message"), str):
            return str(inner["message"])
    return None


def _ratelimit(headers: httpx2.Headers) -> RateLimitInfo:
    return RateLimitInfo(
        remaining_requests=_common.header_int(headers, "x-ratelimit-remaining-requests"),
        remaining_tokens=_common.header_int(headers, "x-ratelimit-remaining-tokens"),
        reset_requests_s=_common.parse_duration(headers.get("x-ratelimit-reset-requests")),
        reset_tokens_s=_common.parse_duration(headers.get("x-ratelimit-reset-tokens")),
        retry_after_s=_common.parse_retry_after(headers),
    )


def _data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def _image_url(part: ImagePart) -> str:
    return part.url if part.url is not None else _data_url(part.media_type or "", part.data or "")


def _arguments(call: ToolCall) -> str:
    return orjson.dumps(call.arguments).decode()


def _chat_part(part: TextPart | ImagePart | DocumentPart, i: int) -> dict[str, Any]:
    """A Chat Completions content part (the vision and PDF-files guides: a PDF goes inline as a data
    URL with a filename)."""
    if isinstance(part, TextPart):
        return {"type": "text", "text": part.text}
    if isinstance(part, ImagePart):
        image: dict[str, Any] = {"url": _image_url(part)}
        if part.detail is not None:
            image["detail"] = part.detail
        return {"type": "image_url", "image_url": image}
    pdf = {"filename": f"document-{i}.pdf", "file_data": _data_url(part.media_type, part.data)}
    return {"type": "file", "file": pdf}


def _responses_part(part: TextPart | ImagePart | DocumentPart, i: int) -> dict[str, Any]:
    """A Responses API input part (``input_image`` needs its ``detail``: "auto" unless asked)."""
    if isinstance(part, TextPart):
        return {"type": "input_text", "text": part.text}
    if isinstance(part, ImagePart):
        return {"type": "input_image", "image_url": _image_url(part), "detail": part.detail or "auto"}
    return {
        "type": "input_file",
        "filename": f"document-{i}.pdf",
        "file_data": _data_url(part.media_type, part.data),
    }


def _content(
    message: Message, part_of: Callable[[TextPart | ImagePart | DocumentPart, int], dict[str, Any]]
) -> Any:
    """A string stays a string (so does any turn but the user's); parts become the API's own parts."""
    if isinstance(message.content, str) or message.role != "user":
        return message.text
    return [part_of(part, i) for i, part in enumerate(message.parts)]


def _chat_messages(request: LLMRequest) -> list[ChatCompletionMessageParam]:
    out: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "tool":
            # The call id is the link; a tool message has no name field in Chat Completions.
            out.append({"role": "tool", "tool_call_id": message.tool_call_id, "content": message.text})
            continue
        entry: dict[str, Any] = {"role": message.role, "content": _content(message, _chat_part)}
        if message.tool_calls:
            entry["content"] = message.text or None
            entry["tool_calls"] = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": _arguments(c)}}
                for c in message.tool_calls
            ]
        if message.name is not None:
            entry["name"] = message.name
        out.append(entry)
    return out  # type: ignore[return-value]  # the dicts are the SDK's TypedDicts by shape


def _chat_params(request: LLMRequest, api_id: str) -> dict[str, Any]:
    """The Chat Completions parameters beyond the conversation, only those the request sets."""
    params: dict[str, Any] = {
        "max_completion_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop": request.stop,
        "seed": request.seed,
        "parallel_tool_calls": request.parallel_tool_calls,
        "reasoning_effort": _effort(request, api_id),
    }
    if request.tools:
        params["tools"] = [
            {
                "type": "function",
                "function": _function(tool.name, tool.description, tool.parameters, tool.strict),
            }
            for tool in request.tools
        ]
    choice = request.tool_choice
    if isinstance(choice, NamedToolChoice):
        params["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
    else:
        params["tool_choice"] = choice
    fmt = request.response_format
    if isinstance(fmt, JSONSchemaFormat):
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": _function(fmt.name, fmt.description, fmt.schema_, fmt.strict, key="schema"),
        }
    elif fmt is not None:
        params["response_format"] = {"type": fmt.type}
    return {key: value for key, value in params.items() if value is not None}


def _function(
    name: str, description: str | None, schema: dict[str, Any], strict: bool | None, key: str = "parameters"
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, key: schema}
    if description is not None:
        out["description"] = description
    if strict is not None:
        out["strict"] = strict
    return out


def _effort(request: LLMRequest, api_id: str) -> str | None:
    """The reasoning effort to send; what OpenAI has no control for is refused."""
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if reasoning.budget_tokens is not None:
        raise _refuse("reasoning.budget_tokens", "OpenAI takes a reasoning effort, not a token budget")
    if reasoning.effort is not None and not api_id.startswith(_REASONING_PREFIXES):
        raise _refuse("reasoning.effort", f"{api_id} is not a reasoning model")
    return reasoning.effort


def _options(request: LLMRequest, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """``provider_options.openai``, merged into the body; a key the adapter sets is refused."""
    options = request.provider_options.get(PROVIDER)
    if not options:
        return None
    for key in options:
        if key in _RESERVED or key in params:
            raise _refuse(f"provider_options.openai.{key}", "llmrelay sets it from the request")
    return dict(options)


def _reasoning_include(request: LLMRequest, api_id: str) -> dict[str, Any]:
    """Ask a reasoning model for its reasoning items' encrypted content (the only way to pass them back
    with ``store=False``); ``provider_options`` may not set ``include`` beside it."""
    if not api_id.startswith(_REASONING_PREFIXES):
        return {}
    if "include" in request.provider_options.get(PROVIDER, {}):
        raise _refuse("provider_options.openai.include", "llmrelay sets it to keep reasoning items")
    return {"include": ["reasoning.encrypted_content"]}


def _reasoning_item(item: Any) -> dict[str, Any] | None:
    """A finished reasoning item as the next turn's input takes it, or None for any other item."""
    if item.type != "reasoning" or not getattr(item, "encrypted_content", None):
        return None
    return {"type": "reasoning", "id": item.id, "encrypted_content": item.encrypted_content, "summary": []}


def _kept_reasoning(call: ToolCall, artifacts: Mapping[str, CallArtifacts]) -> list[dict[str, Any]]:
    """The reasoning items that came right before this call, to go right before it again."""
    kept = artifacts.get(call.id)
    return [dict(block) for block in kept.blocks] if kept is not None else []


def _responses_input(
    request: LLMRequest, artifacts: Mapping[str, CallArtifacts] | None = None
) -> tuple[str | None, ResponseInputParam]:
    """System messages become ``instructions``; the conversation becomes input items, an assistant's
    tool calls as ``function_call`` items after its text and tool results as ``function_call_output``."""
    system: list[str] = []
    items: list[dict[str, Any]] = []
    for i, message in enumerate(request.messages):
        if message.name is not None and message.role != "tool":
            raise _refuse(f"messages[{i}].name", "the Responses API has no per-message name")
        if message.role == "system":
            system.append(message.text)
        elif message.role == "tool":
            items.append(
                {"type": "function_call_output", "call_id": message.tool_call_id, "output": message.text}
            )
        elif message.role == "assistant" and message.tool_calls:
            # Reasoning came first in the reply, before its text: the first call's goes back there.
            kept = [_kept_reasoning(c, artifacts or {}) for c in message.tool_calls]
            if message.text:
                items.extend(kept[0])
                items.append({"role": "assistant", "content": message.text})
                kept[0] = []
            for c, reasoning in zip(message.tool_calls, kept, strict=True):
                items.extend(reasoning)
                items.append(
                    {"type": "function_call", "call_id": c.id, "name": c.name, "arguments": _arguments(c)}
                )
        else:
            items.append({"role": message.role, "content": _content(message, _responses_part)})
    return ("\n\n".join(system) if system else None), items  # type: ignore[return-value]


def _responses_params(request: LLMRequest, api_id: str) -> dict[str, Any]:
    """The Responses parameters beyond the conversation, only those the request sets."""
    if request.seed is not None:
        raise _refuse("seed", "the OpenAI Responses API takes no seed")
    effort = _effort(request, api_id)
    params: dict[str, Any] = {
        "max_output_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "parallel_tool_calls": request.parallel_tool_calls,
        "reasoning": {"effort": effort} if effort is not None else None,
    }
    if request.tools:
        # Responses tools are strict unless told otherwise; the contract's unset ``strict`` means the
        # non-strict default Chat Completions has, so both APIs accept the same schemas.
        params["tools"] = [
            {"type": "function", **_function(t.name, t.description, t.parameters, bool(t.strict))}
            for t in request.tools
        ]
    choice = request.tool_choice
    params["tool_choice"] = (
        {"type": "function", "name": choice.name} if isinstance(choice, NamedToolChoice) else choice
    )
    fmt = request.response_format
    if isinstance(fmt, JSONSchemaFormat):
        params["text"] = {
            "format": {
                "type": "json_schema",
                **_function(fmt.name, fmt.description, fmt.schema_, fmt.strict, key="schema"),
            }
        }
    elif isinstance(fmt, JSONObjectFormat):
        params["text"] = {"format": {"type": "json_object"}}
    elif fmt is not None:
        params["text"] = {"format": {"type": "text"}}
    return {key: value for key, value in params.items() if value is not None}


def _given(value: Any) -> Any:
    return openai.omit if value is None else value
