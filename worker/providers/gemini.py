"""The Gemini adapter: google-genai's generateContent, always streamed, on an httpx2 pool of our own.

How the portable request becomes Gemini's (field names as in google-genai 3.6, ``google/genai/types.py``):

- System messages are the ``system_instruction``; assistant turns take the role ``model`` with their
  text and ``function_call`` parts; each run of ``tool`` messages is one ``user`` turn of
  ``function_response`` parts (Gemini answers 400 unless a call turn's responses come together), each
  response carrying the call's id and, looked up from that call, its name, with the result as
  ``{"output": text}`` (the key ``FunctionResponse.response`` documents for a function's output).
- Images by ``https://`` URL are ``file_data`` (the media type from the URL's extension: Gemini needs
  one, so a URL without a known image extension is refused); ``data:`` URLs, base64 images and PDF
  documents are ``inline_data``. ``detail`` low/high is the request-wide ``media_resolution`` (the
  per-part setting is not on v1beta), so one request cannot mix the two.
- ``tools`` are function declarations with ``parameters_json_schema`` (full JSON Schema);
  ``tool_choice`` auto/none/required/named is the calling mode AUTO/NONE/ANY/ANY with
  ``allowed_function_names``; ``strict`` tools under auto choice ask for the VALIDATED mode (schema
  adherence without forcing a call). Gemini has no switch for parallel calls: ``parallel_tool_calls``
  false is refused while the model may call tools. Automatic function calling stays off.
- ``json_object`` / ``json_schema`` are ``response_mime_type`` application/json (with
  ``response_json_schema``); Gemini has no name or strict flag for the schema, it always enforces it.
- ``reasoning.budget_tokens`` is ``thinking_budget`` (Gemini 2.5 and later); ``reasoning.effort``
  alone is ``thinking_level`` (Gemini 3). Gemini refuses the two together (400), so a request that
  gives both is sent its budget only.
- ``seed`` is ``GenerateContentConfig.seed``.
- ``provider_options["gemini"]`` are further ``GenerateContentConfig`` fields (snake_case or camelCase);
  one that this adapter sets itself, or that would change the call's shape, is refused.

Gemini gives no call ids (newer API versions may; then they are kept): the adapter makes them from the
response id and the call's position. Streamed calls come whole, one ``ToolCallDelta`` each. Finish
``STOP`` with calls is ``tool_calls``. Usage: cached prompt tokens from ``cached_content_token_count``;
``candidates_token_count`` leaves thoughts out, so completion tokens add ``thoughts_token_count``.

The whole request mapping lives here, one reading of Gemini's rules, hence the module's length.

Thought signatures: the ``thought_signature`` a thinking model puts on a function-call part (the first
of a parallel set) is yielded as that call's ``ToolCallArtifact``; the worker keeps it and hands it back
in ``ProviderCall.artifacts``, and the call's part carries it again on the next turn, as Gemini 3
requires (ai.google.dev/gemini-api/docs/thought-signatures, read 2026-12-01). The synthesised call ids
are what the signature is found by, so they are stable: the response id and the call's position.
"""

from __future__ import annotations

import base64
import mimetypes
import uuid
from collections.abc import AsyncIterator, Mapping
from functools import partial
from typing import Any

import orjson
from google import genai
from google.genai import errors, types
from pydantic import ValidationError

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.catalog import Provider
from llmrelay.shared.embeddings import estimate_input_tokens
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
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import (
    Embedded,
    EmbeddingCall,
    ProviderCall,
    SDKAdapter,
    StreamEnd,
    StreamItem,
    ToolCallArtifact,
    ToolCallDelta,
)

PROVIDER: Provider = "gemini"
#: A field this provider cannot take, refused by name before any call.
_refuse = partial(_common.refused, PROVIDER)
API_VERSION = "v1beta"

_FINISH: dict[str, FinishReason] = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "RECITATION": "content_filter",
    "BLOCKLIST": "content_filter",
    "PROHIBITED_CONTENT": "content_filter",
    "SPII": "content_filter",
    "IMAGE_SAFETY": "content_filter",
    "IMAGE_PROHIBITED_CONTENT": "content_filter",
    "IMAGE_RECITATION": "content_filter",
    "MODEL_ARMOR": "content_filter",
    "MALFORMED_FUNCTION_CALL": "error",
}

#: Turn off what would make one call into several requests: the worker owns retries and tool calls.
_NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)

#: Config fields ``provider_options`` may never set: they belong to the adapter or change the call's shape.
_RESERVED_OPTIONS = frozenset(
    {
        "http_options",
        "should_return_http_response",
        "system_instruction",
        "max_output_tokens",
        "candidate_count",
        "automatic_function_calling",
        "automatic_continuation",
    }
)

#: Requests per ``batchEmbedContents`` call: the API answers 400 "at most 100 requests can be in one
#: batch" past it (langchain-ai/langchainjs#4491, vercel/ai#16575, read 2026-12-01).
EMBEDDING_MAX_INPUTS = 100

_RESOLUTION = {
    "low": types.MediaResolution.MEDIA_RESOLUTION_LOW,
    "high": types.MediaResolution.MEDIA_RESOLUTION_HIGH,
}


def _translate(exc: BaseException) -> LLMRelayError:
    """Every google-genai and httpx2 exception as the shared error it stands for."""
    if isinstance(exc, errors.APIError):
        code = exc.code if isinstance(exc.code, int) else 502
        response = exc.response
        headers: Mapping[str, str] = getattr(response, "headers", None) or {}
        retry_after = _common.parse_retry_after(headers)
        if retry_after is None:
            retry_after = _retry_delay(exc.details)
        return _common.status_error(
            PROVIDER,
            code,
            exc.message or exc.status or f"error {code}",
            retry_after=retry_after,
            code=exc.status,
        )
    return _common.other_error(PROVIDER, exc)


class GeminiAdapter(SDKAdapter[genai.Client]):
    """One ``genai.Client`` per process, given an httpx2 client of ours (never aiohttp), no retries."""

    name: Provider = PROVIDER

    def _build_client(self, settings: Settings, key: str) -> genai.Client:
        # Handing the SDK an httpx2 client also keeps it off aiohttp should that ever be installed.
        return genai.Client(
            vertexai=False,
            api_key=key,
            http_options=types.HttpOptions(
                base_url=_common.base_url(settings, PROVIDER),
                api_version=API_VERSION,
                timeout=_millis(settings.request_timeout),
                httpx_async_client=self._http,
            ),
        )

    _translate = staticmethod(_translate)

    async def aclose(self) -> None:
        # The SDK leaves a client it was given open: close ours, then the SDK's own (sync) one.
        await self._http.aclose()
        await self._client.aio.aclose()
        self._client.close()

    async def _embed(self, call: EmbeddingCall) -> Embedded:
        """``embed_content`` per batch of inputs. On the Gemini API google-genai 3.6 sends every call,
        one text or many, to ``models/{model}:batchEmbedContents`` (``AsyncModels._embed_content``).
        Its usage, when the reply has none, is the estimate the rate limiter charged."""
        request = call.request
        config = types.EmbedContentConfig(
            output_dimensionality=request.dimensions,
            http_options=types.HttpOptions(headers=call.headers, timeout=_millis(call.timeout)),
        )
        vectors: list[list[float]] = []
        tokens = 0
        for batch in _common.embedding_batches(request.input, EMBEDDING_MAX_INPUTS):
            result = await self._client.aio.models.embed_content(
                model=call.model.api_id, contents=list(batch), config=config
            )
            embeddings = result.embeddings or []
            if len(embeddings) != len(batch) or any(e.values is None for e in embeddings):
                raise _common.status_error(PROVIDER, 502, "batchEmbedContents answered without every vector")
            vectors += [list(e.values or ()) for e in embeddings]
            counted = result.usage_metadata.prompt_token_count if result.usage_metadata else None
            tokens += counted if counted is not None else sum(estimate_input_tokens(t) for t in batch)
        return Embedded(vectors, tokens)

    async def _list_models(self) -> set[str]:
        # GET /v1beta/models lists base models as "models/<id>" (ai.google.dev/api/models, models.list).
        pager = await self._client.aio.models.list()
        return {(model.name or "").removeprefix("models/") async for model in pager} - {""}

    async def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        system, contents = _contents(call.request, call.artifacts)
        config = build_config(call, system)
        chunks = await self._client.aio.models.generate_content_stream(
            model=call.model.api_id, contents=contents, config=config
        )
        finish: str | None = None
        usage = Usage()
        api_model: str | None = None
        calls = 0
        response_id: str | None = None
        try:
            async for chunk in chunks:
                response_id = response_id or chunk.response_id
                if chunk.candidates:
                    candidate = chunk.candidates[0]
                    content = candidate.content
                    if content is not None and content.parts:
                        for part in content.parts:
                            if part.function_call is not None:
                                yield _call_delta(part.function_call, calls, response_id)
                                if part.thought_signature:
                                    yield _signature(part.thought_signature, calls)
                                calls += 1
                            elif part.text and not part.thought:
                                yield part.text
                    if candidate.finish_reason is not None:
                        finish = candidate.finish_reason.value
                elif chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason is not None:
                    finish = "SAFETY"
                if chunk.usage_metadata is not None:
                    usage = _usage(chunk.usage_metadata)
                api_model = chunk.model_version or api_model
        finally:
            # Close the SDK's generator (and with it the response) now, not when it is collected.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if finish is None:
            raise _common.connection_error(PROVIDER, "stream ended without a finish reason")
        reason = "tool_calls" if calls and finish == "STOP" else _common.finish_reason(finish, _FINISH)
        yield StreamEnd(reason, usage, api_model or call.model.api_id)


def _call_delta(function_call: types.FunctionCall, index: int, response_id: str | None) -> ToolCallDelta:
    """A whole function call as one delta; Gemini's own id when it sends one, else one of ours."""
    call_id = function_call.id or f"call_{response_id or uuid.uuid4().hex}_{index}"
    arguments = orjson.dumps(function_call.args or {}).decode()
    return ToolCallDelta(index, id=call_id, name=function_call.name, arguments=arguments)


def _signature(signature: bytes, index: int) -> ToolCallArtifact:
    """A call part's thought signature, kept as the wire carries it (base64)."""
    return ToolCallArtifact(index, CallArtifacts(signature=base64.b64encode(signature).decode()))


def _function_call_part(call: ToolCall, artifacts: Mapping[str, CallArtifacts]) -> types.Part:
    """An earlier call as a ``function_call`` part, with the thought signature it came with."""
    kept = artifacts.get(call.id)
    signature = base64.b64decode(kept.signature) if kept is not None and kept.signature else None
    return types.Part(
        function_call=types.FunctionCall(id=call.id, name=call.name, args=call.arguments),
        thought_signature=signature,
    )


def _usage(meta: types.GenerateContentResponseUsageMetadata) -> Usage:
    thoughts = meta.thoughts_token_count or 0
    return Usage.of(
        meta.prompt_token_count or 0,
        (meta.candidates_token_count or 0) + thoughts,
        cached=meta.cached_content_token_count or 0,
        reasoning=thoughts,
    )


def _retry_delay(details: object) -> float | None:
    """The ``retryDelay`` of a google.rpc.RetryInfo in the error body ("2s", "0.5s")."""
    if not isinstance(details, Mapping):
        return None
    error = details.get("error", details)
    entries = error.get("details") if isinstance(error, Mapping) else None
    if not isinstance(entries, list):
        return None
    for entry in entries:
        if isinstance(entry, Mapping) and str(entry.get("@type", "")).endswith("google.rpc.RetryInfo"):
            delay = entry.get("retryDelay")
            return _common.parse_duration(delay) if isinstance(delay, str) else None
    return None


# -- the request -----------------------------------------------------------------------------------


def _contents(
    request: LLMRequest, artifacts: Mapping[str, CallArtifacts] | None = None
) -> tuple[str | None, list[types.Content]]:
    """System messages become ``system_instruction``; the rest become Gemini's user/model turns."""
    system: list[str] = []
    contents: list[types.Content] = []
    names: dict[str, str] = {}
    for i, message in enumerate(request.messages):
        if message.role == "system":
            system.append(message.text)
        elif message.role == "tool":
            part = _function_response(message, names)
            previous = contents[-1] if contents else None
            if previous is not None and previous.parts and previous.parts[0].function_response is not None:
                previous.parts.append(part)
            else:
                contents.append(types.Content(role="user", parts=[part]))
        elif message.role == "assistant":
            parts = [types.Part(text=message.text)] if message.text else []
            for call in message.tool_calls or ():
                names[call.id] = call.name
                parts.append(_function_call_part(call, artifacts or {}))
            contents.append(types.Content(role="model", parts=parts or [types.Part(text="")]))
        else:
            parts = [_user_part(part, f"messages[{i}].content[{j}]") for j, part in enumerate(message.parts)]
            contents.append(types.Content(role="user", parts=parts))
    return ("\n\n".join(system) if system else None), contents


def _function_response(message: Message, names: Mapping[str, str]) -> types.Part:
    assert message.tool_call_id is not None  # the contract's rule for a tool message
    name = names.get(message.tool_call_id) or message.name or ""
    return types.Part(
        function_response=types.FunctionResponse(
            id=message.tool_call_id, name=name, response={"output": message.text}
        )
    )


def _user_part(part: TextPart | ImagePart | DocumentPart, field: str) -> types.Part:
    if isinstance(part, TextPart):
        return types.Part(text=part.text)
    if isinstance(part, DocumentPart):
        return types.Part.from_bytes(data=base64.b64decode(part.data), mime_type=part.media_type)
    if part.data is not None:
        assert part.media_type is not None  # the contract requires it with data
        return types.Part.from_bytes(data=base64.b64decode(part.data), mime_type=part.media_type)
    url = part.url or ""
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        media_type = head[len("data:") :].partition(";")[0]
        if not head.endswith(";base64") or not data:
            raise _refuse(f"{field}.url", "a data: URL must be base64 (data:image/...;base64,...)")
        try:
            raw = base64.b64decode(data, validate=True)
        except ValueError:
            raise _refuse(f"{field}.url", "the data: URL is not valid base64") from None
        return types.Part.from_bytes(data=raw, mime_type=media_type)
    guessed, _ = mimetypes.guess_type(url.split("?", 1)[0])
    if guessed is None or not guessed.startswith("image/"):
        raise _common.refused(
            PROVIDER,
            f"{field}.url",
            "Gemini needs an image URL's media type: use a URL ending in .png, .jpg, .gif or .webp, "
            "or send the image as data",
        )
    return types.Part(file_data=types.FileData(file_uri=url, mime_type=guessed))


def build_config(call: ProviderCall, system: str | None = None) -> types.GenerateContentConfig:
    """The ``GenerateContentConfig`` of one call: limits, tools, output format, reasoning, options."""
    request = call.request
    fields: dict[str, Any] = {
        "http_options": types.HttpOptions(headers=call.headers, timeout=_millis(call.timeout)),
        "system_instruction": system,
        "max_output_tokens": request.max_tokens,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "stop_sequences": request.stop,
        "seed": request.seed,
        "automatic_function_calling": _NO_AFC,
        "automatic_continuation": False,
        "media_resolution": _media_resolution(request),
        "thinking_config": _thinking(request),
    }
    fields.update(_tools(request))
    fields.update(_output_format(request))
    fields = {key: value for key, value in fields.items() if value is not None}
    fields.update(_options(request, fields))
    return types.GenerateContentConfig(**fields)


def _tools(request: LLMRequest) -> dict[str, Any]:
    if not request.tools:
        # No tools: "auto" and "none" already hold ("required" and a named choice need tools).
        return {}
    declarations = [
        types.FunctionDeclaration(
            name=tool.name, description=tool.description, parameters_json_schema=tool.parameters
        )
        for tool in request.tools
    ]
    choice = request.tool_choice
    allowed: list[str] | None = None
    if choice == "none":
        mode = types.FunctionCallingConfigMode.NONE
    elif choice == "required":
        mode = types.FunctionCallingConfigMode.ANY
    elif isinstance(choice, NamedToolChoice):
        mode, allowed = types.FunctionCallingConfigMode.ANY, [choice.name]
    elif any(tool.strict for tool in request.tools):
        mode = types.FunctionCallingConfigMode.VALIDATED
    else:
        mode = types.FunctionCallingConfigMode.AUTO
    if request.parallel_tool_calls is False and mode != types.FunctionCallingConfigMode.NONE:
        raise _common.refused(
            PROVIDER,
            "parallel_tool_calls",
            "Gemini has no way to turn parallel tool calls off; leave it unset",
        )
    calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=allowed)
    return {
        "tools": [types.Tool(function_declarations=declarations)],
        "tool_config": types.ToolConfig(function_calling_config=calling),
    }


def _output_format(request: LLMRequest) -> dict[str, Any]:
    fmt = request.response_format
    if isinstance(fmt, JSONSchemaFormat):
        return {"response_mime_type": "application/json", "response_json_schema": fmt.described_schema}
    if isinstance(fmt, JSONObjectFormat):
        return {"response_mime_type": "application/json"}
    return {}


def _thinking(request: LLMRequest) -> types.ThinkingConfig | None:
    reasoning = request.reasoning
    if reasoning is None:
        return None
    if reasoning.budget_tokens is not None:
        return types.ThinkingConfig(thinking_budget=reasoning.budget_tokens)
    if reasoning.effort is not None:
        return types.ThinkingConfig(thinking_level=types.ThinkingLevel(reasoning.effort.upper()))
    return None


def _media_resolution(request: LLMRequest) -> types.MediaResolution | None:
    details = {
        part.detail
        for message in request.messages
        for part in message.parts
        if isinstance(part, ImagePart) and part.detail in _RESOLUTION
    }
    if len(details) > 1:
        raise _common.refused(
            PROVIDER,
            "detail",
            "Gemini sets one media resolution per request: give every image the same detail",
        )
    return _RESOLUTION[details.pop()] if details else None


def _options(request: LLMRequest, ours: Mapping[str, Any]) -> dict[str, Any]:
    """``provider_options["gemini"]`` as config fields, refused where they would override ours."""
    options = request.provider_options.get(PROVIDER)
    if not options:
        return {}
    try:
        parsed = types.GenerateContentConfig.model_validate(options)
    except ValidationError as exc:
        where = ".".join(str(p) for p in exc.errors()[0]["loc"])
        raise _refuse(f"provider_options.gemini.{where}", exc.errors()[0]["msg"]) from None
    out: dict[str, Any] = {}
    for key in parsed.model_fields_set:
        if key in _RESERVED_OPTIONS or key in ours:
            raise _common.refused(
                PROVIDER,
                f"provider_options.gemini.{key}",
                "set by llmrelay from the request; it cannot be overridden",
            )
        out[key] = getattr(parsed, key)
    return out


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))
