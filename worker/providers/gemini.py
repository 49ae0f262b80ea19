"""The Gemini adapter: google-genai's generateContent, always streamed, on an httpx2 pool of our own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import httpx2
from google import genai
from google.genai import errors, types

from llmrelay.shared.catalog import Provider
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import FinishReason, LLMRequest, Usage
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import _common
from llmrelay.worker.providers.base import ProviderCall, SDKAdapter, StreamEnd

PROVIDER: Provider = "gemini"
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
}

#: Turn off what would make one call into several requests: the worker owns retries and tool calls.
_NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)


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

    @staticmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        return _translate(exc)

    async def aclose(self) -> None:
        # The SDK leaves a client it was given open: close ours, then the SDK's own (sync) one.
        await self._http.aclose()
        await self._client.aio.aclose()
        self._client.close()

    async def _stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        request = call.request
        system, contents = _contents(request)
        config = types.GenerateContentConfig(
            http_options=types.HttpOptions(headers=call.headers, timeout=_millis(call.timeout)),
            system_instruction=system,
            max_output_tokens=request.max_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stop_sequences=request.stop,
            automatic_function_calling=_NO_AFC,
            automatic_continuation=False,
        )
        chunks = await self._client.aio.models.generate_content_stream(
            model=call.model.api_id, contents=contents, config=config
        )
        finish: str | None = None
        usage = Usage()
        api_model: str | None = None
        try:
            async for chunk in chunks:
                if chunk.candidates:
                    candidate = chunk.candidates[0]
                    content = candidate.content
                    if content is not None and content.parts:
                        for part in content.parts:
                            if part.text and not part.thought:
                                yield part.text
                    if candidate.finish_reason is not None:
                        finish = candidate.finish_reason.value
                elif chunk.prompt_feedback is not None and chunk.prompt_feedback.block_reason is not None:
                    finish = "SAFETY"
                meta = chunk.usage_metadata
                if meta is not None:
                    completion = (meta.candidates_token_count or 0) + (meta.thoughts_token_count or 0)
                    usage = Usage.of(meta.prompt_token_count or 0, completion)
                api_model = chunk.model_version or api_model
        finally:
            # Close the SDK's generator (and with it the response) now, not when it is collected.
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                await aclose()
        if finish is None:
            raise _common.connection_error(PROVIDER, "stream ended without a finish reason")
        yield StreamEnd(_common.finish_reason(finish, _FINISH), usage, api_model or call.model.api_id)


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
    if isinstance(exc, httpx2.HTTPError | httpx2.StreamError):
        return _common.transport_error(PROVIDER, exc)
    return _common.unexpected_error(PROVIDER, exc)


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


def _contents(request: LLMRequest) -> tuple[str | None, list[types.Content]]:
    """System messages become ``system_instruction``; assistant turns take Gemini's role "model"."""
    system: list[str] = []
    contents: list[types.Content] = []
    for message in request.messages:
        if message.role == "system":
            system.append(message.text)
        else:
            role = "user" if message.role == "user" else "model"
            contents.append(types.Content(role=role, parts=[types.Part(text=message.text)]))
    return ("\n\n".join(system) if system else None), contents


def _millis(seconds: float) -> int:
    return max(1, round(seconds * 1000))
