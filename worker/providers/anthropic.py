"""The Anthropic adapter: the Messages API, always streamed.

How the portable request maps to the Messages API (``anthropic`` 2.15, ``resources/messages/messages.py``):

- ``system`` messages are joined into ``system``; user parts become ``text``, ``image`` (a ``url`` or a
  ``base64`` source; a ``data:`` URL is sent as base64) and ``document`` (base64 PDF) blocks. Images take no
  ``detail`` on this API: anything but ``auto`` is refused.
- An assistant turn's ``tool_calls`` become ``tool_use`` blocks after its text; ``tool`` messages become
  ``tool_result`` blocks, every result of one turn in the one user message that follows it, results
  first (a user message right after the results joins that turn), as the API demands.
- ``tools`` -> ``tools[{name, description, input_schema, strict}]``; ``tool_choice`` auto/none/required/
  named -> ``{type: auto|none|any|tool}``; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
- ``response_format`` json_schema -> ``output_config.format`` (structured outputs), the schema made
  acceptable by the SDK's own ``transform_schema`` (objects closed, unsupported constraints moved into
  descriptions; the runner still validates the reply against the schema as given). ``json_object`` has
  no native form (every object in a structured-output schema must be closed): refused.
- ``reasoning`` -> ``thinking: {type: enabled, budget_tokens}``; the budget is ``budget_tokens``, or from
  ``effort`` by :data:`EFFORT_BUDGET`; 0 turns thinking off. The API takes budgets of at least 1024 and
  below ``max_tokens``: without a ``max_tokens`` the limit is raised to fit, with one a budget that does
  not fit is refused (an effort's budget is lowered to fit, down to 1024).
- ``temperature`` is 0-1 on this API (a higher value is refused); ``seed`` does not exist here and is
  refused.
- ``provider_options["anthropic"]`` is merged into the body; a key the adapter sets itself is refused
  (a dict-valued key merges where the keys do not collide).
- Thinking and tool use: with thinking on, a reply that calls tools starts with ``thinking`` (or
  ``redacted_thinking``) blocks, and the assistant turn sent back must start with them, unmodified
  (platform.claude.com/docs/en/build-with-claude/extended-thinking, "Preserving thinking blocks", read
  2026-12-01). The stream reader gathers those blocks (``thinking_delta`` text, then the
  ``signature_delta``) and yields them as the first following call's ``ToolCallArtifact``; given back in
  ``ProviderCall.artifacts``, they open that assistant turn again, before its text and ``tool_use``.
- Usage: the API's ``input_tokens`` leaves out the cache, so ``prompt_tokens`` adds
  ``cache_read_input_tokens`` and ``cache_creation_input_tokens``; ``cached_prompt_tokens`` is the cache
  read; ``reasoning_tokens`` is ``output_tokens_details.thinking_tokens``.

It runs past 400 lines because the mapping above is one small function per request field, kept next
to the stream reader and the error translation they serve.
"""

from __future__ import annotations

import binascii
import re
from base64 import b64decode
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any

import anthropic
import httpx2
import orjson
from anthropic.types import (
    InputJSONDelta,
    RawContentBlockDeltaEvent,
    RawContentBlockStartEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    RedactedThinkingBlock,
    SignatureDelta,
    TextDelta,
    ThinkingBlock,
    ThinkingDelta,
    ToolUseBlock,
)

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.catalog import ModelInfo, Provider
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
    Tool,
    Usage,
)
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import (
    GeneratedSDKAdapter,
    ProviderCall,
    RateLimitInfo,
    StreamEnd,
    StreamItem,
    ToolCallArtifact,
    ToolCallDelta,
)

PROVIDER: Provider = "anthropic"
#: A field this provider cannot take, refused by name before any call.
_refuse = partial(_common.refused, PROVIDER)

#: Used when the request sets no max_tokens (the Messages API requires one).
DEFAULT_MAX_TOKENS = 4096

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
    "tool_use": "tool_calls",
}

#: Thinking budgets for each effort level (the API's minimum is 1024; its docs suggest starting there
#: and raising the budget for harder tasks: platform.claude.com/docs/en/build-with-claude/extended-thinking).
EFFORT_BUDGET: dict[str, int] = {"minimal": 1024, "low": 2048, "medium": 8192, "high": 16384}
MIN_THINKING_BUDGET = 1024

#: Body keys the adapter always owns: provider_options may not set them.
_OWN_KEYS = frozenset({"model", "messages", "max_tokens", "stream", "system"})
_DATA_URL = re.compile(r"^data:(image/[a-z+.-]+);base64,(.*)$", re.DOTALL)
_IMAGE_TYPES = frozenset({"image/jpeg", "image/png", "image/gif", "image/webp"})

#: The status each error type stands for; an error sent inside a stream arrives with HTTP 200.
_ERROR_TYPE_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


def _translate(exc: BaseException) -> LLMRelayError:
    """Every anthropic SDK and httpx2 exception as the shared error it stands for."""
    if isinstance(exc, anthropic.APIStatusError):
        status = exc.status_code
        error_type = exc.type or _body_field(exc.body, "type")
        if status < 400:
            # An error event inside a stream that began with 200: its type says what it was.
            status = _ERROR_TYPE_STATUS.get(str(error_type), 502)
        return _common.status_error(
            PROVIDER,
            status,
            exc.api_message or _body_field(exc.body, "message") or exc.message,
            retry_after=_common.parse_retry_after(exc.response.headers),
            code=exc.error_code or error_type,
            http_status=exc.status_code,
        )
    if isinstance(exc, anthropic.APIConnectionError):
        timed_out = isinstance(exc, anthropic.APITimeoutError)
        return _common.wrapped_connection_error(PROVIDER, exc, exc.message, timed_out=timed_out)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return _common.status_error(PROVIDER, 502, exc.message, http_status=exc.status_code)
    if isinstance(exc, anthropic.APIError):
        return _common.status_error(PROVIDER, 502, exc.message)
    return _common.other_error(PROVIDER, exc)


class AnthropicAdapter(GeneratedSDKAdapter[anthropic.AsyncAnthropic]):
    """One ``AsyncAnthropic`` client per process, on an explicitly sized httpx2 pool, SDK retries off."""

    name: Provider = PROVIDER

    client_class = anthropic.AsyncAnthropic

    _translate = staticmethod(_translate)

    async def _list_models(self) -> set[str]:
        # GET /v1/models, paged by the SDK on has_more/last_id (platform.claude.com/docs/en/api/models-list).
        return {model.id async for model in self._client.models.list()}

    async def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        params, extra = _params(call.request, call.model, call.artifacts)
        stream = await self._client.messages.create(
            **params,
            stream=True,
            timeout=call.timeout,
            extra_headers=call.headers,
            extra_body=extra or None,
        )
        prompt = _PromptTokens()
        completion_tokens = reasoning_tokens = 0
        stop_reason: str | None = None
        api_model: str | None = None
        stopped = False
        #: content block index -> tool call index (text and thinking blocks share the block indexes).
        calls: dict[int, int] = {}
        thinking = _ThinkingBlocks()
        async with stream:
            ratelimit = _ratelimit(stream.response.headers)
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, TextDelta):
                        if delta.text:
                            yield delta.text
                    elif isinstance(delta, InputJSONDelta) and delta.partial_json and event.index in calls:
                        yield ToolCallDelta(calls[event.index], arguments=delta.partial_json)
                    elif isinstance(delta, ThinkingDelta | SignatureDelta):
                        thinking.delta(event.index, delta)
                elif isinstance(event, RawContentBlockStartEvent):
                    block = event.content_block
                    if isinstance(block, ToolUseBlock):
                        calls[event.index] = len(calls)
                        # A streamed tool_use starts with an empty input that input_json_delta fills in.
                        whole = orjson.dumps(block.input).decode() if block.input else ""
                        yield ToolCallDelta(calls[event.index], block.id, block.name, whole)
                        kept = thinking.take()
                        if kept:
                            yield ToolCallArtifact(calls[event.index], CallArtifacts(blocks=kept))
                    elif isinstance(block, ThinkingBlock | RedactedThinkingBlock):
                        thinking.start(event.index, block)
                elif isinstance(event, RawMessageStartEvent):
                    message = event.message
                    api_model = message.model
                    prompt.read(message.usage)
                    completion_tokens = message.usage.output_tokens
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason or stop_reason
                    completion_tokens = event.usage.output_tokens
                    prompt.read(event.usage)
                    if event.usage.output_tokens_details is not None:
                        reasoning_tokens = event.usage.output_tokens_details.thinking_tokens
                elif isinstance(event, RawMessageStopEvent):
                    stopped = True
        if not stopped:
            raise _common.connection_error(PROVIDER, "stream ended before message_stop")
        reasoning = min(reasoning_tokens, completion_tokens)
        usage = Usage.of(prompt.total, completion_tokens, cached=prompt.cache_read, reasoning=reasoning)
        yield StreamEnd(_common.finish_reason(stop_reason, _FINISH), usage, api_model, ratelimit)


class _ThinkingBlocks:
    """The thinking blocks of a streamed reply not yet tied to a tool call, as the API wants them back:
    ``thinking`` with its text and signature (each streamed in deltas), ``redacted_thinking`` whole."""

    __slots__ = ("_blocks",)

    def __init__(self) -> None:
        self._blocks: dict[int, dict[str, Any]] = {}

    def start(self, index: int, block: ThinkingBlock | RedactedThinkingBlock) -> None:
        if isinstance(block, RedactedThinkingBlock):
            self._blocks[index] = {"type": "redacted_thinking", "data": block.data}
        else:
            thought = {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
            self._blocks[index] = thought

    def delta(self, index: int, delta: ThinkingDelta | SignatureDelta) -> None:
        block = self._blocks.get(index)
        if block is None or block["type"] != "thinking":
            return
        if isinstance(delta, ThinkingDelta):
            block["thinking"] += delta.thinking
        else:
            block["signature"] += delta.signature

    def take(self) -> tuple[dict[str, Any], ...]:
        blocks = tuple(block for _, block in sorted(self._blocks.items()))
        self._blocks.clear()
        return blocks


class _PromptTokens:
    """Prompt usage as the stream reports it: ``input_tokens`` leaves out what was read from or written
    to the cache (docs: build-with-claude/prompt-caching, "Tracking cache performance")."""

    __slots__ = ("cache_read", "cache_write", "uncached")

    def __init__(self) -> None:
        self.uncached = self.cache_read = self.cache_write = 0

    def read(self, usage: Any) -> None:
        # message_delta counts are cumulative and optional: a None keeps the earlier value.
        if usage.input_tokens is not None:
            self.uncached = usage.input_tokens
        if usage.cache_read_input_tokens is not None:
            self.cache_read = usage.cache_read_input_tokens
        if usage.cache_creation_input_tokens is not None:
            self.cache_write = usage.cache_creation_input_tokens

    @property
    def total(self) -> int:
        return self.uncached + self.cache_read + self.cache_write


def _body_field(body: object, name: str) -> str | None:
    if isinstance(body, Mapping):
        inner = body.get("error", body)
        if isinstance(inner, Mapping) and isinstance(inner.get(name), str):
            return str(inner[name])
    return None


def _ratelimit(headers: httpx2.Headers) -> RateLimitInfo:
    return RateLimitInfo(
        remaining_requests=_common.header_int(headers, "anthropic-ratelimit-requests-remaining"),
        remaining_tokens=_common.header_int(headers, "anthropic-ratelimit-tokens-remaining"),
        reset_requests_s=_common.seconds_until(headers.get("anthropic-ratelimit-requests-reset")),
        reset_tokens_s=_common.seconds_until(headers.get("anthropic-ratelimit-tokens-reset")),
        retry_after_s=_common.parse_retry_after(headers),
    )


def _params(
    request: LLMRequest, model: ModelInfo, artifacts: Mapping[str, CallArtifacts] | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The SDK's named arguments for this request, and the body fields it has no argument for."""
    if request.seed is not None:
        raise _refuse("seed", "the Messages API has no seed")
    system, messages = _messages(request, artifacts or {})
    thinking, max_tokens = _thinking(request, model)
    params: dict[str, Any] = {"model": model.api_id, "messages": messages, "max_tokens": max_tokens}
    if system is not None:
        params["system"] = system
    if request.stop:
        params["stop_sequences"] = request.stop
    if thinking is not None:
        params["thinking"] = thinking
    if request.tools:
        params["tools"] = [_tool(tool) for tool in request.tools]
    choice = _tool_choice(request)
    if choice is not None:
        params["tool_choice"] = choice
    output_format = _output_format(request)
    if output_format is not None:
        params["output_config"] = {"format": output_format}
    extra = _sampling(request)
    for key, value in request.provider_options.get(PROVIDER, {}).items():
        field = f"provider_options.{PROVIDER}.{key}"
        ours = params if key in params else extra if key in extra else None
        if ours is None and key not in _OWN_KEYS:
            extra[key] = value
        elif ours is not None and isinstance(ours[key], dict) and isinstance(value, dict):
            clash = sorted(set(ours[key]) & set(value))
            if clash:
                raise _refuse(field, f"{', '.join(clash)} is set from the request itself")
            ours[key] = {**ours[key], **value}
        else:
            raise _refuse(field, "the adapter sets this field from the request itself")
    return params, extra


def _messages(
    request: LLMRequest, artifacts: Mapping[str, CallArtifacts]
) -> tuple[str | None, list[dict[str, Any]]]:
    """System messages are joined into ``system``; the rest is the conversation, with each turn's tool
    results leading the one user message after it (the API refuses them anywhere else)."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    results: list[dict[str, Any]] | None = None  # the user turn that holds the current tool results
    for i, message in enumerate(request.messages):
        if message.role == "system":
            system.append(message.text)
        elif message.role == "tool":
            if results is None:
                results = []
                messages.append({"role": "user", "content": results})
            results.append(
                {
                    "type": "tool_result",
                    "tool_use_id": message.tool_call_id,
                    "content": _text_content(message),
                }
            )
        elif message.role == "user":
            if results is not None:
                results.extend(_blocks(message, i))
            elif isinstance(message.content, str):
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "user", "content": _blocks(message, i)})
            results = None
        else:
            results = None
            messages.append({"role": "assistant", "content": _assistant(message, artifacts)})
    return ("\n\n".join(system) if system else None), messages


def _text_content(message: Message) -> str | list[dict[str, Any]]:
    if isinstance(message.content, str) or message.content is None:
        return message.content or ""
    return [{"type": "text", "text": part.text} for part in message.parts if isinstance(part, TextPart)]


def _assistant(message: Message, artifacts: Mapping[str, CallArtifacts]) -> str | list[dict[str, Any]]:
    if not message.tool_calls:
        return message.text
    blocks = _kept_thinking(message, artifacts)
    # The API refuses empty text blocks: a turn that only calls tools has none.
    if message.text:
        blocks.append({"type": "text", "text": message.text})
    blocks.extend(
        {"type": "tool_use", "id": call.id, "name": call.name, "input": call.arguments}
        for call in message.tool_calls
    )
    return blocks


def _kept_thinking(message: Message, artifacts: Mapping[str, CallArtifacts]) -> list[dict[str, Any]]:
    """The thinking blocks this turn's calls came with, in their order: they open the turn again."""
    out: list[dict[str, Any]] = []
    for call in message.tool_calls or ():
        kept = artifacts.get(call.id)
        if kept is not None:
            out.extend(dict(block) for block in kept.blocks)
    return out


def _blocks(message: Message, index: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for j, part in enumerate(message.parts):
        field = f"messages[{index}].content[{j}]"
        if isinstance(part, TextPart):
            out.append({"type": "text", "text": part.text})
        elif isinstance(part, ImagePart):
            out.append({"type": "image", "source": _image_source(part, field)})
        elif isinstance(part, DocumentPart):
            source = {"type": "base64", "media_type": part.media_type, "data": part.data}
            out.append({"type": "document", "source": source})
    return out


def _image_source(part: ImagePart, field: str) -> dict[str, Any]:
    if part.detail not in (None, "auto"):
        raise _refuse(f"{field}.detail", "the Messages API takes no image detail")
    if part.data is not None:
        return {"type": "base64", "media_type": part.media_type, "data": part.data}
    url = part.url or ""
    if not url.startswith("data:"):
        return {"type": "url", "url": url}
    # A url source must be fetchable; a data: URL travels as a base64 source instead.
    match = _DATA_URL.match(url)
    if match is None or match.group(1) not in _IMAGE_TYPES:
        raise _refuse(f"{field}.url", f"a data: URL must be base64 of one of {sorted(_IMAGE_TYPES)}")
    try:
        b64decode(match.group(2), validate=True)
    except (binascii.Error, ValueError):
        raise _refuse(f"{field}.url", "the data: URL is not valid base64") from None
    return {"type": "base64", "media_type": match.group(1), "data": match.group(2)}


def _tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters}
    if tool.description is not None:
        out["description"] = tool.description
    if tool.strict is not None:
        out["strict"] = tool.strict
    return out


def _tool_choice(request: LLMRequest) -> dict[str, Any] | None:
    choice, parallel = request.tool_choice, request.parallel_tool_calls
    if not request.tools:
        # Without tools there is nothing to choose between or call at once: auto and none say the same.
        return None
    if choice == "none":
        return {"type": "none"}  # no calls at all, so parallelism has nothing to apply to
    if isinstance(choice, NamedToolChoice):
        out: dict[str, Any] = {"type": "tool", "name": choice.name}
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "auto" or parallel is not None:
        out = {"type": "auto"}
    else:
        return None
    if parallel is not None:
        out["disable_parallel_tool_use"] = not parallel
    return out


def _output_format(request: LLMRequest) -> dict[str, Any] | None:
    fmt = request.response_format
    if isinstance(fmt, JSONObjectFormat):
        raise _common.refused(
            PROVIDER,
            "response_format",
            "the Messages API has no free-form JSON mode; send a json_schema format",
        )
    if not isinstance(fmt, JSONSchemaFormat):
        return None
    try:
        # The SDK's own adaptation (anthropic.lib._parse._transform), as its messages.parse() uses.
        schema = anthropic.transform_schema(fmt.described_schema)
    except (ValueError, TypeError) as exc:
        raise _refuse("response_format.schema", _common.clean_text(exc)) from None
    return {"type": "json_schema", "schema": schema}


def _thinking(request: LLMRequest, model: ModelInfo) -> tuple[dict[str, Any] | None, int]:
    """The ``thinking`` parameter and the ``max_tokens`` it needs (budget_tokens must be below it)."""
    default = min(DEFAULT_MAX_TOKENS, model.max_output_tokens)
    reasoning = request.reasoning
    if reasoning is None or (reasoning.effort is None and reasoning.budget_tokens is None):
        return None, request.max_tokens or default
    if reasoning.budget_tokens == 0:
        return {"type": "disabled"}, request.max_tokens or default
    explicit = reasoning.budget_tokens is not None
    budget = (
        reasoning.budget_tokens
        if reasoning.budget_tokens is not None
        else EFFORT_BUDGET[str(reasoning.effort)]
    )
    if budget < MIN_THINKING_BUDGET:
        raise _refuse("reasoning.budget_tokens", f"the Messages API takes at least {MIN_THINKING_BUDGET}")
    limit = request.max_tokens or min(budget + default, model.max_output_tokens)
    if budget >= limit:
        if explicit:
            raise _refuse("reasoning.budget_tokens", f"must be below max_tokens ({limit})")
        budget = max(MIN_THINKING_BUDGET, limit // 2)
        if budget >= limit:
            raise _refuse("reasoning.effort", f"max_tokens ({limit}) leaves no room for a thinking budget")
    return {"type": "enabled", "budget_tokens": budget}, limit


def _sampling(request: LLMRequest) -> dict[str, Any]:
    """temperature and top_p: the Messages API takes them, but this SDK release has no parameters for them."""
    out: dict[str, Any] = {}
    if request.temperature is not None:
        if request.temperature > 1.0:
            raise _refuse("temperature", "the Messages API takes 0 to 1")
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    return out
