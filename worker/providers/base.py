"""The small protocol every provider adapter implements, and the one accumulator of its stream."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeAlias, TypeVar

import httpx2
import orjson
from pydantic import ValidationError

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.catalog import ModelInfo, Provider
from llmrelay.shared.embeddings import EmbeddingRequest
from llmrelay.shared.errors import AuthenticationError, InvalidRequestError, LLMRelayError, ProviderError
from llmrelay.shared.models import FinishReason, LLMRequest, ToolCall, Usage
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import _common


@dataclass(slots=True)
class ProviderCall:
    """One attempt at one model: the request, the catalog entry, the time left, the A2A headers, and
    what this model attached to the request's earlier tool calls (by call id), to be sent back."""

    model: ModelInfo
    request: LLMRequest
    timeout: float
    headers: dict[str, str] = field(default_factory=dict)
    artifacts: Mapping[str, CallArtifacts] = field(default_factory=dict)


@dataclass(slots=True)
class EmbeddingCall:
    """One attempt at embedding a request's inputs with one model."""

    model: ModelInfo
    request: EmbeddingRequest
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
class ToolCallDelta:
    """A piece of one tool call: the call's position in the reply, and whatever of it this chunk says.

    The first delta of a call carries its ``id`` and ``name``; every delta may carry a fragment of its
    ``arguments`` (JSON text, whole only once all fragments are joined). A provider that sends a call
    whole sends it as one delta with all of it.
    """

    call_index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class ToolCallArtifact:
    """What the provider attached to one tool call of the reply and wants back on the next turn
    (``shared.artifacts``): kept by the worker, never relayed to the caller."""

    call_index: int
    artifacts: CallArtifacts


#: What an adapter stream yields: text deltas and tool-call deltas, in the order the provider sent
#: them, any tool-call artifacts, then one ``StreamEnd``.
StreamItem: TypeAlias = str | ToolCallDelta | ToolCallArtifact | StreamEnd


@dataclass(slots=True)
class Completion:
    """A whole stream: its text, its tool calls, its end, and when its first delta arrived (epoch s)."""

    text: str
    end: StreamEnd
    first_token_at: float | None = None
    tool_calls: list[ToolCall] = field(default_factory=list)
    #: Tool call id -> what the provider attached to that call.
    artifacts: dict[str, CallArtifacts] = field(default_factory=dict)


@dataclass(slots=True)
class Embedded:
    """What an embedding attempt gave: one vector per input, in order, and the input tokens counted."""

    vectors: list[list[float]]
    prompt_tokens: int
    ratelimit: RateLimitInfo | None = None


class ProviderAdapter(Protocol):
    """An official SDK behind one interface.

    ``stream`` yields text deltas (non-empty strings) and then exactly one ``StreamEnd``. Every failure is
    raised as a ``shared.errors`` exception, translated in the adapter's single ``_translate``; a
    ``RateLimitedError`` or ``ProviderUnavailableError`` carries the provider's ``retry_after``.
    """

    name: Provider

    def stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]: ...

    async def complete(self, call: ProviderCall) -> Completion: ...

    async def embed(self, call: EmbeddingCall) -> Embedded: ...

    async def served_models(self) -> set[str]: ...

    async def aclose(self) -> None: ...


ClientT = TypeVar("ClientT")


class SDKAdapter(ABC, Generic[ClientT]):
    """What every adapter shares: one SDK client per process on an httpx2 pool of ours, the
    missing-key check, ``complete`` as the drained stream, and one translation point where any SDK or
    transport exception becomes a ``shared`` error.

    A subclass sets ``name``, builds its SDK client in ``_build_client``, implements ``_stream`` (the
    SDK call) and points ``_translate`` at its module's translation function.
    """

    name: Provider

    def __init__(self, settings: Settings, *, http_client: httpx2.AsyncClient | None = None) -> None:
        key = _common.read_key(settings, self.name)
        self._has_key = key is not None
        self._http = http_client or _common.build_http_client(settings)
        self._client: ClientT = self._build_client(settings, key or _common.PLACEHOLDER_KEY)

    @abstractmethod
    def _build_client(self, settings: Settings, key: str) -> ClientT:
        """The SDK client, on ``self._http``, with the SDK's own retries off."""

    @staticmethod
    @abstractmethod
    def _translate(exc: BaseException) -> LLMRelayError:
        """The adapter module's single translation point."""

    @abstractmethod
    def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        """The SDK call, yielding text deltas and then one StreamEnd."""

    @abstractmethod
    async def _list_models(self) -> set[str]:
        """The SDK's model listing: the ids the provider serves to this key."""

    async def served_models(self) -> set[str]:
        """The model ids the provider lists for the configured key; a failure is a ``shared`` error."""
        if not self._has_key:
            raise AuthenticationError(
                f"no API key configured for {self.name}", data={"provider": self.name, "status": None}
            )
        try:
            return await self._list_models()
        except LLMRelayError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None

    async def complete(self, call: ProviderCall) -> Completion:
        return await drain(self.stream(call), self.name)

    async def _embed(self, call: EmbeddingCall) -> Embedded:
        """The SDK's embeddings call; a provider without one (Anthropic) refuses."""
        raise InvalidRequestError(
            f"{self.name} has no embeddings API", data={"field": "model", "provider": self.name}
        )

    async def embed(self, call: EmbeddingCall) -> Embedded:
        self._check_key()
        try:
            return await self._embed(call)
        except LLMRelayError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None

    def _check_key(self) -> None:
        if not self._has_key:
            raise AuthenticationError(
                f"no API key configured for {self.name}", data={"provider": self.name, "status": None}
            )

    async def stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        self._check_key()
        try:
            async for item in self._stream(call):
                yield item
        except LLMRelayError:
            raise
        except Exception as exc:
            raise self._translate(exc) from None


class _Closable(Protocol):
    async def close(self) -> None: ...


ClosableT = TypeVar("ClosableT", bound=_Closable)


class GeneratedSDKAdapter(SDKAdapter[ClosableT]):
    """An adapter on one of the two SDKs generated alike (OpenAI's and Anthropic's): the same
    constructor arguments, and ``close()`` closes our injected pool too."""

    client_class: Callable[..., ClosableT]

    def _build_client(self, settings: Settings, key: str) -> ClosableT:
        return self.client_class(**_common.client_options(settings, self.name, key, self._http))

    async def aclose(self) -> None:
        await self._client.close()


class StreamAccumulator:
    """The one fold of an adapter stream into a ``Completion``: ``complete`` and the job runner both
    consume streams through it, so the streaming and non-streaming paths cannot disagree.

    ``add`` takes the items in order and returns what to relay (the text, or the tool-call delta;
    None for the end); ``completion`` then gives the result. A stream that stops before its
    ``StreamEnd`` was cut short: that is a ``ProviderUnavailableError`` (retryable), the same error the
    adapters raise when the SDK's own stream ends early. An item after the end breaks the adapter
    protocol, and so do tool-call arguments that do not join into a JSON object: a ``ProviderError``.
    """

    __slots__ = ("_artifacts", "_calls", "_end", "_first_at", "_parts", "_provider")

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._parts: list[str] = []
        self._calls: dict[int, _PendingCall] = {}
        self._artifacts: dict[int, CallArtifacts] = {}
        self._end: StreamEnd | None = None
        self._first_at: float | None = None

    @property
    def deltas(self) -> int:
        """How many text deltas have arrived."""
        return len(self._parts)

    def add(self, item: StreamItem) -> str | ToolCallDelta | None:
        if self._end is not None:
            raise self._broken("the adapter yielded after its final message")
        if isinstance(item, StreamEnd):
            self._end = item
            return None
        if isinstance(item, ToolCallArtifact):
            self._artifacts[item.call_index] = item.artifacts
            return None
        if self._first_at is None:
            self._first_at = time.time()
        if isinstance(item, ToolCallDelta):
            call = self._calls.setdefault(item.call_index, _PendingCall())
            call.id = call.id or item.id
            call.name = call.name or item.name
            call.arguments.append(item.arguments)
        else:
            self._parts.append(item)
        return item

    def completion(self) -> Completion:
        if self._end is None:
            raise _common.connection_error(self._provider, "stream ended without a final message")
        calls = [self._finished(index, call) for index, call in sorted(self._calls.items())]
        ids = {index: call.id for index, call in zip(sorted(self._calls), calls, strict=True)}
        artifacts = {ids[i]: found for i, found in self._artifacts.items() if i in ids and found}
        return Completion("".join(self._parts), self._end, self._first_at, calls, artifacts)

    def _finished(self, index: int, call: _PendingCall) -> ToolCall:
        text = "".join(call.arguments).strip()
        try:
            arguments = orjson.loads(text) if text else {}
        except orjson.JSONDecodeError:
            raise self._broken(f"tool call {index}'s arguments are not JSON") from None
        if not isinstance(arguments, dict):
            raise self._broken(f"tool call {index}'s arguments are not a JSON object")
        if not call.id or not call.name:
            raise self._broken(f"tool call {index} came without its id or name")
        try:
            return ToolCall(id=call.id, name=call.name, arguments=arguments)
        except ValidationError as exc:
            raise self._broken(f"tool call {index} is malformed: {exc.errors()[0]['msg']}") from None

    def _broken(self, what: str) -> ProviderError:
        return ProviderError(f"{self._provider}: {what}", data={"provider": self._provider, "status": None})


@dataclass(slots=True)
class _PendingCall:
    id: str | None = None
    name: str | None = None
    arguments: list[str] = field(default_factory=list)


async def drain(events: AsyncIterator[StreamItem], provider: Provider) -> Completion:
    """A whole stream through the one accumulator."""
    accumulator = StreamAccumulator(provider)
    async for item in events:
        accumulator.add(item)
    return accumulator.completion()
