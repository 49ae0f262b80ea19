"""Governance: ALLOWED_MODELS, model selection by tier, and the checks every path runs before a provider.

``Governance.route`` is the single gate. The producer runs it before a job is queued and the worker runs
it again before any provider call (a job may have been written by anyone with access to Redis), so a
disallowed model never reaches a provider, whatever path it came by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date

import structlog

from llmrelay.shared.catalog import TIERS, Catalog, ModelInfo, Tier, utc_today
from llmrelay.shared.embeddings import EmbeddingRequest, chat_model_refused, check_embedding_model
from llmrelay.shared.errors import (
    CapabilityNotSupportedError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelRetiredError,
    UnknownModelError,
)
from llmrelay.shared.models import DocumentPart, ImagePart, JSONObjectFormat, JSONSchemaFormat, LLMRequest
from llmrelay.shared.settings import Settings

log = structlog.get_logger("llmrelay.governance")

#: The deprecated models this process has already warned about: the warning is logged once per model.
_WARNED_DEPRECATED: set[str] = set()

#: A coarse, provider-neutral estimate used to refuse prompts that cannot fit and to charge the token
#: limiter up front; actual usage reconciles it after the call.
CHARS_PER_TOKEN = 4


#: Per provider, the request parameters whose range is narrower than the contract's (inclusive bounds),
#: and those the provider has no equivalent for. Refused before enqueue, never clamped or dropped.
PARAMETER_BOUNDS: dict[str, dict[str, tuple[float, float]]] = {
    "anthropic": {"temperature": (0.0, 1.0)},
}
UNSUPPORTED_PARAMETERS: dict[str, frozenset[str]] = {
    "anthropic": frozenset({"seed"}),
}


def _named_turn(request: LLMRequest) -> str | None:
    """The first message other than a tool result that carries a ``name``."""
    for i, message in enumerate(request.messages):
        if message.name is not None and message.role != "tool":
            return f"messages.{i}.name"
    return None


#: Per provider, values it has no form for: a check that returns the refused field's path (or None), and
#: why. The adapters refuse them too; here they are refused before the request is queued.
UNSUPPORTED_VALUES: dict[str, tuple[tuple[Callable[[LLMRequest], str | None], str], ...]] = {
    "anthropic": (
        (
            lambda r: "response_format" if isinstance(r.response_format, JSONObjectFormat) else None,
            "json_object has no form in the Messages API (ask for a json_schema)",
        ),
        (_named_turn, "the Messages API has no per-message name"),
    ),
    "gemini": (
        (
            lambda r: (
                "parallel_tool_calls"
                if r.parallel_tool_calls is False and r.tools and r.tool_choice != "none"
                else None
            ),
            "Gemini has no way to turn parallel tool calls off; leave it unset",
        ),
        (_named_turn, "Gemini has no per-message name"),
    ),
}


def check_parameters(request: LLMRequest, info: ModelInfo, *, field: str = "model") -> None:
    """InvalidRequestError naming the parameter when ``info``'s provider cannot take it as given
    (``via`` in its data names the request field that chose the model: ``model`` or ``fallback_models``)."""
    provider = info.provider
    for name in sorted(UNSUPPORTED_PARAMETERS.get(provider, ())):
        if getattr(request, name) is not None:
            raise InvalidRequestError(
                f"{name} is not supported by {provider} (model {info.name})",
                data={"field": name, "provider": provider, "model": info.name, "via": field},
            )
    for refused, why in UNSUPPORTED_VALUES.get(provider, ()):
        where = refused(request)
        if where is not None:
            raise InvalidRequestError(
                f"{where}: {why} (model {info.name})",
                data={"field": where, "provider": provider, "model": info.name, "via": field},
            )
    for name, (low, high) in PARAMETER_BOUNDS.get(provider, {}).items():
        value = getattr(request, name)
        if value is not None and not low <= value <= high:
            raise InvalidRequestError(
                f"{name} {value} is out of {provider}'s range {low:g}..{high:g} (model {info.name})",
                data={
                    "field": name,
                    "provider": provider,
                    "model": info.name,
                    "via": field,
                    "min": low,
                    "max": high,
                },
            )


def _asked_for(request: LLMRequest) -> list[tuple[str, str]]:
    """(capability, request field) for each thing beyond plain text the request asks of a model."""
    asked: list[tuple[str, str]] = []
    if request.tools:
        asked.append(("tools", "tools"))
    parts = [part for message in request.messages for part in message.parts]
    if any(isinstance(part, ImagePart) for part in parts):
        asked.append(("vision", "messages"))
    if any(isinstance(part, DocumentPart) for part in parts):
        asked.append(("documents", "messages"))
    if isinstance(request.response_format, JSONSchemaFormat):
        asked.append(("json_schema", "response_format"))
    if request.reasoning is not None:
        asked.append(("reasoning", "reasoning"))
    return asked


_CAPABILITY_WORDS = {
    "tools": "tool calling",
    "vision": "image input",
    "documents": "document (PDF) input",
    "json_schema": "a JSON-schema response_format",
    "reasoning": "reasoning controls",
}


def check_capabilities(request: LLMRequest, info: ModelInfo, *, field: str = "model") -> None:
    """CapabilityNotSupportedError naming the request field when ``info`` cannot do what it asks (``via``
    in its data names the field that chose the model). Embedding models take no chat request at all."""
    if info.kind != "chat":
        raise CapabilityNotSupportedError(
            f"{info.name} is an {info.kind} model, not a chat model",
            data={"field": field, "model": info.name, "kind": info.kind},
        )
    for capability, request_field in _asked_for(request):
        if not getattr(info, capability):
            raise CapabilityNotSupportedError(
                f"{info.name} does not support {_CAPABILITY_WORDS[capability]} ({request_field})",
                data={"field": request_field, "model": info.name, "capability": capability, "via": field},
            )


def estimate_prompt_tokens(request: LLMRequest) -> int:
    chars = sum(len(m.text) for m in request.messages)
    return max(1, chars // CHARS_PER_TOKEN + 4 * len(request.messages))


@dataclass(frozen=True, slots=True)
class Route:
    """Where a request goes: its model and the failover chain it (or the configuration) asked for."""

    model: ModelInfo
    fallbacks: tuple[ModelInfo, ...] = ()

    @property
    def provider(self) -> str:
        return self.model.provider


class ModelSelector:
    """Picks a model for a tier: the first allowed model of the tier's preference list that the provider
    still serves (retired models are skipped unless the catalog marks them served)."""

    def __init__(
        self,
        catalog: Catalog,
        allowed: frozenset[str],
        preferences: dict[str, list[str]],
        *,
        clock: Callable[[], date] = utc_today,
    ):
        self._clock = clock
        self._candidates: dict[str, list[ModelInfo]] = {}
        for tier in ("fast", "balanced", "premium"):
            candidates = [catalog.get(name) for name in preferences.get(tier, [])]
            ordered = [m for m in candidates if m is not None and m.name in allowed and m.kind == "chat"]
            if not ordered:
                ordered = sorted(
                    (m for m in catalog.by_tier(tier) if m.name in allowed and m.kind == "chat"),
                    key=lambda m: (m.input_per_mtok + m.output_per_mtok, m.name),
                )
            self._candidates[tier] = ordered

    def _choose(self, tier: str) -> ModelInfo | None:
        today = self._clock()
        return next((m for m in self._candidates.get(tier, []) if servable(m, today)), None)

    def select(self, tier: Tier) -> ModelInfo:
        info = self._choose(tier)
        if info is None:
            raise ModelNotAllowedError(
                f"no allowed model in tier {tier!r}", data={"field": "tier", "tier": tier}
            )
        return info

    def choices(self) -> dict[str, str]:
        chosen = {tier: self._choose(tier) for tier in self._candidates}
        return {tier: info.name for tier, info in chosen.items() if info is not None}


def servable(info: ModelInfo, today: date) -> bool:
    """Whether requests for ``info`` may reach its provider: it is not retired, or it is marked served."""
    return info.served or info.lifecycle(today) != "retired"


class Governance:
    """The allowed models and the routing rules, built once per process from Settings."""

    def __init__(
        self,
        catalog: Catalog,
        allowed: Iterable[str],
        *,
        default_model: str | None = None,
        tier_models: dict[str, list[str]] | None = None,
        failover: dict[str, list[str]] | None = None,
        clock: Callable[[], date] = utc_today,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        names: set[str] = set()
        for name in allowed:
            info = catalog.get(name)
            if info is None:
                raise ValueError(f"ALLOWED_MODELS names {name!r}, which is not in the model catalog")
            names.add(info.name)
        self.allowed: frozenset[str] = frozenset(names)
        self.default_model = default_model
        if default_model and not self.is_allowed(default_model):
            log.warning(
                "LLM_DEFAULT_MODEL is not allowed: a request naming neither model nor tier will be refused",
                default_model=default_model,
            )
        self.selector = ModelSelector(catalog, self.allowed, tier_models or {}, clock=clock)
        self._failover = {k: list(v) for k, v in (failover or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> Governance:
        return cls(
            settings.catalog,
            settings.effective_allowed_models,
            default_model=settings.default_model,
            tier_models={tier: settings.tier_preference(tier) for tier in TIERS},
            failover=settings.failover,
        )

    def is_allowed(self, model: str) -> bool:
        info = self.catalog.get(model)
        return info is not None and info.name in self.allowed

    def check(self, model: str, *, field: str = "model") -> ModelInfo:
        """The catalog entry of an allowed model the provider still serves; UnknownModelError,
        ModelNotAllowedError or ModelRetiredError otherwise. A deprecated model is served, with a warning
        logged once per model."""
        info = self.catalog.get(model)
        if info is None:
            raise UnknownModelError(f"unknown model {model!r}", data={"field": field, "model": model})
        # Lifecycle first: a retired model is refused naming its successor, allowed or not (the default
        # allow list leaves retired rows out, and "not allowed" would not say what to use instead).
        self._check_lifecycle(info, field)
        if info.name not in self.allowed:
            raise ModelNotAllowedError(
                f"model {model!r} is not allowed here", data={"field": field, "model": model}
            )
        return info

    def _check_lifecycle(self, info: ModelInfo, field: str) -> None:
        state = info.lifecycle(self.clock())
        if state == "retired" and not info.served:
            instead = f"; use {info.successor} instead" if info.successor else ""
            raise ModelRetiredError(
                f"model {info.name!r} was retired by {info.provider} on {info.retires_on}{instead}",
                data={
                    "field": field,
                    "model": info.name,
                    "retired_on": str(info.retires_on),
                    "successor": info.successor,
                },
            )
        if state == "deprecated" and info.name not in _WARNED_DEPRECATED:
            _WARNED_DEPRECATED.add(info.name)
            log.warning(
                "model is deprecated by its provider and will be refused from its retirement date",
                model=info.name,
                provider=info.provider,
                retires_on=str(info.retires_on) if info.retires_on else None,
                successor=info.successor,
            )

    def allowed_models(self) -> list[ModelInfo]:
        return [m for m in self.catalog.models.values() if m.name in self.allowed]

    def route(self, request: LLMRequest) -> Route:
        """Choose and check the model and its failover chain; refuse what cannot be served."""
        if request.model is not None:
            info = self.check(request.model)
        elif request.tier is not None:
            info = self.selector.select(request.tier)
        elif self.default_model:
            info = self.check(self.default_model)
        else:
            raise InvalidRequestError("no model given and no default configured", data={"field": "model"})
        if info.kind != "chat":
            raise chat_model_refused(info, "model")
        check_capabilities(request, info)
        self._check_fits(request, info)
        check_parameters(request, info)

        chain: list[ModelInfo] = []
        if request.fallback_models:
            for name in request.fallback_models:
                fallback = self.check(name, field="fallback_models")
                if fallback.kind != "chat":
                    raise chat_model_refused(fallback, "fallback_models")
                check_capabilities(request, fallback, field="fallback_models")
                check_parameters(request, fallback, field="fallback_models")
                if fallback.name != info.name and fallback not in chain:
                    chain.append(fallback)
        else:
            # Configured failover is opt-in by configuration; a model it names must still be allowed.
            today = self.clock()
            for name in self._failover.get(info.name, []):
                candidate = self.catalog.get(name)
                # A configured failover model that is retired, or cannot take the request, is skipped.
                if (
                    candidate
                    and candidate.kind == "chat"
                    and candidate.name in self.allowed
                    and candidate.name != info.name
                    and servable(candidate, today)
                    and _takes(request, candidate)
                ):
                    chain.append(candidate)
        return Route(info, tuple(chain))

    def route_embedding(self, request: EmbeddingRequest) -> Route:
        """Check the embedding model (allowed, an embedding model, able to take the input); never a
        failover chain: another model's vectors are in another space."""
        info = self.check(request.model)
        check_embedding_model(request, info)
        return Route(info)

    @staticmethod
    def _check_fits(request: LLMRequest, info: ModelInfo) -> None:
        if request.max_tokens is not None and request.max_tokens > info.max_output_tokens:
            raise InvalidRequestError(
                f"max_tokens {request.max_tokens} exceeds {info.name}'s limit of {info.max_output_tokens}",
                data={"field": "max_tokens", "limit": info.max_output_tokens},
            )
        needed = estimate_prompt_tokens(request) + (request.max_tokens or 0)
        if needed > info.context_window:
            raise ContextLengthExceededError(
                f"the prompt (about {needed} tokens with max_tokens) exceeds {info.name}'s context window"
                f" of {info.context_window}",
                data={"field": "messages", "limit": info.context_window},
            )


def _takes(request: LLMRequest, info: ModelInfo) -> bool:
    """Whether a configured failover model can take the request (else it is skipped)."""
    try:
        check_capabilities(request, info)
        check_parameters(request, info)
    except InvalidRequestError:
        return False
    return True
