"""The provider adapters, by provider name: the only place the provider SDKs are imported."""

from __future__ import annotations

from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers.anthropic import AnthropicAdapter
from llmrelay.worker.providers.base import (
    Completion,
    ProviderAdapter,
    ProviderCall,
    RateLimitInfo,
    StreamAccumulator,
    StreamEnd,
    StreamItem,
    ToolCallArtifact,
    ToolCallDelta,
    drain,
)
from llmrelay.worker.providers.gemini import GeminiAdapter
from llmrelay.worker.providers.openai import OpenAIAdapter

ADAPTERS: dict[str, type[OpenAIAdapter | AnthropicAdapter | GeminiAdapter]] = {
    "openai": OpenAIAdapter,
    "anthropic": AnthropicAdapter,
    "gemini": GeminiAdapter,
}


def build_adapter(provider: str, settings: Settings) -> ProviderAdapter:
    """The adapter for ``provider``, with its SDK client built from ``settings`` (once per process)."""
    try:
        cls = ADAPTERS[provider]
    except KeyError:
        raise InvalidRequestError(
            f"unknown provider {provider!r}; expected one of {', '.join(PROVIDERS)}",
            data={"provider": provider},
        ) from None
    return cls(settings)


__all__ = [
    "ADAPTERS",
    "AnthropicAdapter",
    "Completion",
    "GeminiAdapter",
    "OpenAIAdapter",
    "ProviderAdapter",
    "ProviderCall",
    "RateLimitInfo",
    "StreamAccumulator",
    "StreamEnd",
    "StreamItem",
    "ToolCallArtifact",
    "ToolCallDelta",
    "build_adapter",
    "drain",
]
