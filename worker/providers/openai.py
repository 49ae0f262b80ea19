"""The OpenAI adapter: Chat Completions, and the Responses API for the models the catalog marks so."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import httpx2
import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseInputParam,
    ResponseTextDeltaEvent,
)

from llmrelay.shared.catalog import Provider
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import FinishReason, LLMRequest, Usage
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import ProviderCall, RateLimitInfo, SDKAdapter, StreamEnd

PROVIDER: Provider = "openai"

_CHAT_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "content_filter": "content_filter",
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


class OpenAIAdapter(SDKAdapter[openai.AsyncOpenAI]):
    """One ``AsyncOpenAI`` client per process, on an explicitly sized httpx2 pool, SDK retries off."""

    name: Provider = PROVIDER

    def _build_client(self, settings: Settings, key: str) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=_common.base_url(settings, PROVIDER),
            max_retries=0,
            timeout=settings.request_timeout,
            http_client=self._http,
        )

    @staticmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        return _translate(exc)

    def _stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        return self._stream_responses(call) if call.model.api == "responses" else self._stream_chat(call)

    async def aclose(self) -> None:
        # Closes the injected httpx2 client too.
        await self._client.close()

    async def _stream_chat(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        request = call.request
        stream = await self._client.chat.completions.create(
            model=call.model.api_id,
            messages=_chat_messages(request),
            stream=True,
            stream_options={"include_usage": True},
            max_completion_tokens=_given(request.max_tokens),
            temperature=_given(request.temperature),
            top_p=_given(request.top_p),
            stop=_given(request.stop),
            timeout=call.timeout,
            extra_headers=call.headers,
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
                    if choice.finish_reason:
                        finish = choice.finish_reason
                if chunk.usage is not None:
                    usage = Usage.of(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                api_model = chunk.model
        if finish is None:
            raise _common.connection_error(PROVIDER, "stream ended without a finish reason")
        yield StreamEnd(_common.finish_reason(finish, _CHAT_FINISH), usage, api_model, ratelimit)

    async def _stream_responses(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        request = call.request
        instructions, items = _responses_input(request)
        stream = await self._client.responses.create(
            model=call.model.api_id,
            input=items,
            instructions=_given(instructions),
            stream=True,
            store=False,
            max_output_tokens=_given(request.max_tokens),
            temperature=_given(request.temperature),
            top_p=_given(request.top_p),
            timeout=call.timeout,
            extra_headers=call.headers,
        )
        end: StreamEnd | None = None
        async with stream:
            ratelimit = _ratelimit(stream.response.headers)
            async for event in stream:
                if isinstance(event, ResponseTextDeltaEvent):
                    if event.delta:
                        yield event.delta
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
    usage = Usage()
    if result.usage is not None:
        usage = Usage.of(result.usage.input_tokens, result.usage.output_tokens)
    return StreamEnd(reason, usage, result.model, ratelimit)


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
        # Inside a stream the SDK wraps the httpx2 error (a cut stream, a read timeout) as its cause.
        cause = exc.__cause__
        if isinstance(cause, httpx2.HTTPError):
            return _common.transport_error(PROVIDER, cause)
        if isinstance(exc, openai.APITimeoutError):
            return _common.timeout_error(PROVIDER)
        return _common.connection_error(PROVIDER, exc.message)
    if isinstance(exc, openai.APIResponseValidationError):
        return _common.status_error(PROVIDER, 502, exc.message, http_status=exc.status_code)
    if isinstance(exc, openai.APIError):
        # An error reported inside a stream that began with 200: its body says what went wrong.
        body = exc.body if isinstance(exc.body, Mapping) else {}
        code = body.get("code") or body.get("type")
        status = _ERROR_CODE_STATUS.get(str(code), 502)
        text = body.get("message") or exc.message
        return _common.status_error(PROVIDER, status, text, code=code, http_status=200)
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return _common.transport_error(PROVIDER, exc)
    return _common.unexpected_error(PROVIDER, exc)


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


def _chat_messages(request: LLMRequest) -> list[ChatCompletionMessageParam]:
    out: list[ChatCompletionMessageParam] = []
    for message in request.messages:
        if message.role == "system":
            out.append({"role": "system", "content": message.text})
        elif message.role == "user":
            out.append({"role": "user", "content": message.text})
        else:
            out.append({"role": "assistant", "content": message.text})
    return out


def _responses_input(request: LLMRequest) -> tuple[str | None, ResponseInputParam]:
    """System messages become ``instructions``; the conversation becomes input items."""
    system: list[str] = []
    items: ResponseInputParam = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.text)
        elif message.role == "user":
            items.append({"role": "user", "content": message.text})
        else:
            items.append({"role": "assistant", "content": message.text})
    return ("\n\n".join(system) if system else None), items


def _given(value: Any) -> Any:
    return openai.omit if value is None else value
