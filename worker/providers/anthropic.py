"""The Anthropic adapter: the Messages API, always streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import anthropic
import httpx2
from anthropic.types import (
    MessageParam,
    RawContentBlockDeltaEvent,
    RawMessageDeltaEvent,
    RawMessageStartEvent,
    RawMessageStopEvent,
    TextDelta,
)

from llmrelay.shared.catalog import Provider
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import FinishReason, LLMRequest, Usage
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import ProviderCall, RateLimitInfo, SDKAdapter, StreamEnd

PROVIDER: Provider = "anthropic"

#: Used when the request sets no max_tokens (the Messages API requires one).
DEFAULT_MAX_TOKENS = 4096

_FINISH: dict[str, FinishReason] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "refusal": "content_filter",
}

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


class AnthropicAdapter(SDKAdapter[anthropic.AsyncAnthropic]):
    """One ``AsyncAnthropic`` client per process, on an explicitly sized httpx2 pool, SDK retries off."""

    name: Provider = PROVIDER

    def _build_client(self, settings: Settings, key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=_common.base_url(settings, PROVIDER),
            max_retries=0,
            timeout=settings.request_timeout,
            http_client=self._http,
        )

    @staticmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        return _translate(exc)

    async def aclose(self) -> None:
        # Closes the injected httpx2 client too.
        await self._client.close()

    async def _stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        request = call.request
        system, messages = _messages(request)
        stream = await self._client.messages.create(
            model=call.model.api_id,
            messages=messages,
            system=_given(system),
            max_tokens=request.max_tokens or min(DEFAULT_MAX_TOKENS, call.model.max_output_tokens),
            stop_sequences=_given(request.stop),
            stream=True,
            timeout=call.timeout,
            extra_headers=call.headers,
            extra_body=_sampling(request),
        )
        prompt_tokens = completion_tokens = 0
        stop_reason: str | None = None
        api_model: str | None = None
        stopped = False
        async with stream:
            ratelimit = _ratelimit(stream.response.headers)
            async for event in stream:
                if isinstance(event, RawContentBlockDeltaEvent):
                    delta = event.delta
                    if isinstance(delta, TextDelta) and delta.text:
                        yield delta.text
                elif isinstance(event, RawMessageStartEvent):
                    message = event.message
                    api_model = message.model
                    prompt_tokens = message.usage.input_tokens
                    completion_tokens = message.usage.output_tokens
                elif isinstance(event, RawMessageDeltaEvent):
                    stop_reason = event.delta.stop_reason or stop_reason
                    completion_tokens = event.usage.output_tokens
                    if event.usage.input_tokens is not None:
                        prompt_tokens = event.usage.input_tokens
                elif isinstance(event, RawMessageStopEvent):
                    stopped = True
        if not stopped:
            raise _common.connection_error(PROVIDER, "stream ended before message_stop")
        usage = Usage.of(prompt_tokens, completion_tokens)
        yield StreamEnd(_common.finish_reason(stop_reason, _FINISH), usage, api_model, ratelimit)


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
        cause = exc.__cause__
        if isinstance(cause, httpx2.HTTPError):
            return _common.transport_error(PROVIDER, cause)
        if isinstance(exc, anthropic.APITimeoutError):
            return _common.timeout_error(PROVIDER)
        return _common.connection_error(PROVIDER, exc.message)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return _common.status_error(PROVIDER, 502, exc.message, http_status=exc.status_code)
    if isinstance(exc, anthropic.APIError):
        return _common.status_error(PROVIDER, 502, exc.message)
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return _common.transport_error(PROVIDER, exc)
    return _common.unexpected_error(PROVIDER, exc)


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


def _messages(request: LLMRequest) -> tuple[str | None, list[MessageParam]]:
    """System messages are joined into ``system``; the rest is the conversation."""
    system: list[str] = []
    messages: list[MessageParam] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.text)
        elif message.role == "user":
            messages.append({"role": "user", "content": message.text})
        else:
            messages.append({"role": "assistant", "content": message.text})
    return ("\n\n".join(system) if system else None), messages


def _sampling(request: LLMRequest) -> dict[str, float] | None:
    """temperature and top_p: the Messages API takes them, but this SDK release has no parameters for them."""
    out: dict[str, float] = {}
    if request.temperature is not None:
        out["temperature"] = request.temperature
    if request.top_p is not None:
        out["top_p"] = request.top_p
    return out or None


def _given(value: Any) -> Any:
    return anthropic.omit if value is None else value
