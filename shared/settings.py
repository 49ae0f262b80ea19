"""Process settings, read once from the environment (or a .env file) at the edge and passed down."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from llmrelay.shared.catalog import PROVIDERS, Catalog, Provider, Tier
from llmrelay.shared.redaction import redact

#: What ALLOWED_MODELS means when it is unset or empty: the catalog's live chat and embedding models of the
#: three providers as shipped. Never "everything": a model added to the catalog by configuration, and a
#: deprecated or retired row, must be allowed explicitly.
DEFAULT_ALLOWED_MODELS: tuple[str, ...] = (
    "gpt-6.2-astra",
    "gpt-6.2-sol",
    "gpt-6.1-sol",
    "gpt-6.1-terra",
    "gpt-6-luna",
    "text-embedding-3-small",
    "text-embedding-3-large",
    "claude-opus-5-5",
    "claude-sonnet-5-5",
    "claude-haiku-5-5",
    "claude-haiku-4-5",
    "gemini-3.8-flash",
    "gemini-3.5-flash-lite",
    "gemini-2.5-flash-lite",
    "gemini-embedding-001",
)

#: The ModelSelector's preference per tier, cheapest first within each tier's quality band; live models
#: only (a retired model would be skipped anyway).
DEFAULT_TIER_MODELS: dict[str, list[str]] = {
    "fast": [
        "gpt-6-luna",
        "claude-haiku-5-5",
        "gemini-2.5-flash-lite",
        "gemini-3.5-flash-lite",
        "gpt-6.1-terra",
    ],
    "balanced": ["gemini-3.8-flash", "gpt-6.2-sol", "claude-sonnet-5-5", "gpt-6.1-sol"],
    "premium": ["claude-opus-5-5", "gpt-6.2-astra"],
}


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class RateLimit(BaseModel):
    """Requests and tokens per minute for one provider or one model; None means no limit."""

    model_config = ConfigDict(extra="forbid")
    rpm: int | None = Field(default=None, gt=0)
    tpm: int | None = Field(default=None, gt=0)


class Settings(BaseSettings):
    """Every setting of llmrelay. Provider keys are secrets: they print as '**********'."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", populate_by_name=True
    )

    # Providers
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    anthropic_api_key: SecretStr | None = Field(default=None, validation_alias="ANTHROPIC_API_KEY")
    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "GOOGLE_API_KEY")
    )
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")
    gemini_base_url: str | None = Field(default=None, validation_alias="GEMINI_BASE_URL")

    # Governance and defaults
    allowed_models: Annotated[list[str], NoDecode] = Field(
        default_factory=list, validation_alias="ALLOWED_MODELS"
    )
    default_model: str = Field(default="gpt-6-luna", validation_alias="LLM_DEFAULT_MODEL")
    request_timeout: float = Field(default=60.0, gt=0, le=3600, validation_alias="LLM_REQUEST_TIMEOUT")
    max_retries: int = Field(default=3, ge=0, le=20, validation_alias="LLM_MAX_RETRIES")
    catalog_file: Path | None = Field(default=None, validation_alias="LLMRELAY_CATALOG_FILE")
    tier_models: dict[str, list[str]] = Field(
        default_factory=lambda: {k: list(v) for k, v in DEFAULT_TIER_MODELS.items()},
        validation_alias="LLMRELAY_TIER_MODELS",
    )
    failover: dict[str, list[str]] = Field(default_factory=dict, validation_alias="LLMRELAY_FAILOVER")

    # Redis and the queue
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", validation_alias="REDIS_URL")
    redis_pool_size: int = Field(default=64, ge=2, le=10_000, validation_alias="LLMRELAY_REDIS_POOL_SIZE")
    max_queue_length: int = Field(default=10_000, ge=1, validation_alias="LLMRELAY_MAX_QUEUE_LENGTH")
    result_ttl: int = Field(default=3600, ge=1, validation_alias="LLMRELAY_RESULT_TTL")
    lease_seconds: float = Field(default=15.0, gt=0, validation_alias="LLMRELAY_LEASE_SECONDS")
    # How long a worker's event loop may make no progress before its jobs stop being renewed (and are
    # reclaimed a lease later): a slow loop keeps its jobs, a hung one loses them. At least the lease.
    stall_seconds: float = Field(default=60.0, gt=0, validation_alias="LLMRELAY_STALL_SECONDS")
    max_deliveries: int = Field(default=5, ge=1, validation_alias="LLMRELAY_MAX_DELIVERIES")
    worker_concurrency: int = Field(default=256, ge=1, validation_alias="LLMRELAY_WORKER_CONCURRENCY")
    batch_min_slots: int = Field(default=1, ge=0, validation_alias="LLMRELAY_BATCH_MIN_SLOTS")
    batch_max_share: float = Field(default=0.5, ge=0, le=1, validation_alias="LLMRELAY_BATCH_MAX_SHARE")
    shutdown_grace: float = Field(default=30.0, ge=0, validation_alias="LLMRELAY_SHUTDOWN_GRACE")
    rate_limits: dict[str, RateLimit] = Field(default_factory=dict, validation_alias="LLMRELAY_RATE_LIMITS")
    backoff_base: float = Field(default=0.5, gt=0, validation_alias="LLMRELAY_BACKOFF_BASE")
    backoff_max: float = Field(default=30.0, gt=0, validation_alias="LLMRELAY_BACKOFF_MAX")
    http_pool_size: int = Field(default=100, ge=1, validation_alias="LLMRELAY_HTTP_POOL_SIZE")

    # The façade
    api_token: SecretStr | None = Field(default=None, validation_alias="LLMRELAY_API_TOKEN")
    api_host: str = Field(default="127.0.0.1", validation_alias="LLMRELAY_API_HOST")
    api_port: int = Field(default=8000, ge=0, le=65535, validation_alias="LLMRELAY_API_PORT")
    max_body_bytes: int = Field(default=1 << 20, ge=1024, validation_alias="LLMRELAY_MAX_BODY_BYTES")
    # A platform's façade traffic usually comes from one caller identity, and the target is a thousand
    # and more concurrent requests per provider: the default is a backstop, not a quota.
    max_streams_per_caller: int = Field(
        default=10_000, ge=1, validation_alias="LLMRELAY_MAX_STREAMS_PER_CALLER"
    )

    # Logs
    log_level: str = Field(default="INFO", validation_alias="LLMRELAY_LOG_LEVEL")
    log_format: str = Field(
        default="auto", pattern="^(auto|json|console)$", validation_alias="LLMRELAY_LOG_FORMAT"
    )

    def __repr_args__(self) -> Any:
        # The Redis URL may carry a password: it prints masked, like the keys.
        for name, value in super().__repr_args__():
            yield name, (redact(value) if name == "redis_url" and isinstance(value, str) else value)

    @field_validator("allowed_models", mode="before")
    @classmethod
    def _parse_allowed(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("openai_base_url", "anthropic_base_url", "gemini_base_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return value or None

    @cached_property
    def catalog(self) -> Catalog:
        return Catalog.load(self.catalog_file)

    @property
    def effective_allowed_models(self) -> tuple[str, ...]:
        return tuple(self.allowed_models) or DEFAULT_ALLOWED_MODELS

    def api_key(self, provider: Provider) -> SecretStr | None:
        key: SecretStr | None = getattr(self, f"{provider}_api_key")
        return key

    def base_url(self, provider: Provider) -> str | None:
        url: str | None = getattr(self, f"{provider}_base_url")
        return url

    def secret_values(self) -> list[str]:
        """Every configured secret, for the log redaction processor."""
        secrets = [self.openai_api_key, self.anthropic_api_key, self.gemini_api_key, self.api_token]
        values = [s.get_secret_value() for s in secrets if s is not None and s.get_secret_value()]
        password = _redis_password(self.redis_url)
        if password:
            values.append(password)
        return values

    def tier_preference(self, tier: Tier) -> list[str]:
        return list(self.tier_models.get(tier, DEFAULT_TIER_MODELS[tier]))


def _redis_password(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    # redis-py decodes percent-escapes before it sends the password: mask it as it is used.
    return unquote(password) if password else None


__all__ = ["DEFAULT_ALLOWED_MODELS", "DEFAULT_TIER_MODELS", "PROVIDERS", "RateLimit", "Settings"]
