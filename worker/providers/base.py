"""The small protocol every provider adapter implements, and the accumulator that makes `complete`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Protocol

from llmrelay.shared.catalog import ModelInfo, Provider
from llmrelay.shared.errors import AuthenticationError, LLMRelayError
from llmrelay.shared.models import FinishReason, LLMRequest, Usage


@dataclass(slots=True)
class ProviderCall:
    """One attempt at one model: the request, the catalog entry, the time left, the A2A headers."""

    model: ModelInfo
    request: LLMRequest
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class RateLimitInfo:
    """What the provider's rate-limit headers said; None where a header was absent."""

    remaining_requests: int | None = None
    remaining_tokens: int | None = None
    reset_requests_s: float | None = None
    reset_tokens_s: float | None = None
    retry_after_s: float | None = None


@dataclass(slots=True)
class StreamEnd:
    """The last item of every adapter stream."""

    finish_reason: FinishReason
    usage: Usage
    api_model: str | None = None
    ratelimit: RateLimitInfo | None = None


@dataclass(slots=True)
class Completion:
    text: str
    end: StreamEnd


class ProviderAdapter(Protocol):
    """An official SDK behind one interface.

    ``stream`` yields text deltas (non-empty strings) and then exactly one ``StreamEnd``. Every failure is
    raised as a ``shared.errors`` exception, translated in the adapter's single ``_translate``; a
    ``RateLimitedError`` or ``ProviderUnavailableError`` carries the provider's ``retry_after``.
    """

    name: Provider

    def stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]: ...

    async def complete(self, call: ProviderCall) -> Completion: ...

    async def aclose(self) -> None: ...


class SDKAdapter(ABC):
    """What every adapter shares: the missing-key check, ``complete`` as the drained stream, and one
    translation point where any SDK or transport exception becomes a ``shared`` error.

    A subclass sets ``name`` and ``_has_key``, implements ``_stream`` (the SDK call) and points
    ``_translate`` at its module's translation function.
    """

    name: Provider
    _has_key: bool

    @staticmethod
    @abstractmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        """The adapter module's single translation point."""

    @abstractmethod
    def _stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        """The SDK call, yielding text deltas and then one StreamEnd."""

    async def complete(self, call: ProviderCall) -> Completion:
        return await drain(self.stream(call))

    async def stream(self, call: ProviderCall) -> AsyncIterator[str | StreamEnd]:
        if not self._has_key:
            raise AuthenticationError(
                f"no API key configured for {self.name}", data={"provider": self.name, "status": None}
            )
        try:
            async for item in self._stream(call):
                yield item
        except LLMRelayError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None


async def drain(events: AsyncIterator[str | StreamEnd]) -> Completion:
    """``complete`` is the stream drained, so the streaming and non-streaming paths cannot disagree."""
    parts: list[str] = []
    end: StreamEnd | None = None
    async for item in events:
        if isinstance(item, str):
            parts.append(item)
        else:
            end = item
    if end is None:
        end = StreamEnd(finish_reason="other", usage=Usage())
    return Completion("".join(parts), end)
