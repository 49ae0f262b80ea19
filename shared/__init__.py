"""The contract both sides of llmrelay speak: models, events, settings, errors, catalog, key names."""

from shared.catalog import Catalog, ModelInfo, Provider, Tier
from shared.errors import (
    AuthenticationError,
    BackendUnavailableError,
    ContentFilteredError,
    ContextLengthExceededError,
    DeadLetteredError,
    InvalidRequestError,
    JobNotFoundError,
    LLMRelayError,
    ModelNotAllowedError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    QueueFullError,
    RateLimitedError,
    RequestCancelledError,
    RequestTimeoutError,
    UnknownModelError,
)
from shared.governance import Governance, ModelSelector, Route
from shared.models import A2AContext, LLMRequest, LLMResponse, Message, Usage
from shared.settings import Settings

__all__ = [
    "A2AContext",
    "AuthenticationError",
    "BackendUnavailableError",
    "Catalog",
    "ContentFilteredError",
    "ContextLengthExceededError",
    "DeadLetteredError",
    "Governance",
    "InvalidRequestError",
    "JobNotFoundError",
    "LLMRelayError",
    "LLMRequest",
    "LLMResponse",
    "Message",
    "ModelInfo",
    "ModelNotAllowedError",
    "ModelSelector",
    "PermissionDeniedError",
    "Provider",
    "ProviderError",
    "ProviderUnavailableError",
    "QueueFullError",
    "RateLimitedError",
    "RequestCancelledError",
    "RequestTimeoutError",
    "Route",
    "Settings",
    "Tier",
    "UnknownModelError",
    "Usage",
]
