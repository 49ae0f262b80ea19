"""The model catalog: which provider serves a model, what it costs, how much context it takes."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from llmrelay.shared.errors import UnknownModelError

Provider = Literal["openai", "anthropic", "gemini"]
Tier = Literal["fast", "balanced", "premium"]
#: What a model does: answer a conversation, or turn texts into vectors.
ModelKind = Literal["chat", "embedding"]
MODEL_KINDS: tuple[ModelKind, ...] = ("chat", "embedding")
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
TIERS: tuple[Tier, ...] = ("fast", "balanced", "premium")


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One catalog entry. Prices are USD per million tokens at the provider's standard tier."""

    name: str
    provider: Provider
    api_id: str
    input_per_mtok: float
    output_per_mtok: float
    context_window: int
    max_output_tokens: int
    tier: Tier
    aliases: tuple[str, ...] = ()
    api: str = "default"
    long_context_threshold: int | None = None
    input_per_mtok_long: float | None = None
    output_per_mtok_long: float | None = None
    kind: ModelKind = "chat"
    #: An embedding model's vector size (the most a request's ``dimensions`` may ask for).
    dimensions: int | None = None

    def cost(self, prompt_tokens: int, completion_tokens: int, *, discount: float = 0.0) -> float:
        """Cost in USD of one call; long-context prices apply past the threshold, as the providers bill."""
        in_price, out_price = self.input_per_mtok, self.output_per_mtok
        if self.long_context_threshold is not None and prompt_tokens > self.long_context_threshold:
            in_price = self.input_per_mtok_long or in_price
            out_price = self.output_per_mtok_long or out_price
        raw = (prompt_tokens * in_price + completion_tokens * out_price) / 1_000_000
        return round(raw * (1.0 - discount), 10)

    def public(self) -> dict[str, Any]:
        """The entry as ``llm.models`` and ``/v1/models`` show it."""
        return {
            "id": self.name,
            "provider": self.provider,
            "api_id": self.api_id,
            "aliases": list(self.aliases),
            "tier": self.tier,
            "input_per_mtok": self.input_per_mtok,
            "output_per_mtok": self.output_per_mtok,
            "context_window": self.context_window,
            "max_output_tokens": self.max_output_tokens,
            **({"kind": self.kind, "dimensions": self.dimensions} if self.kind == "embedding" else {}),
        }


_FIELDS = {f for f in ModelInfo.__dataclass_fields__ if f != "name"}
_REQUIRED = {
    "provider", "api_id", "input_per_mtok", "output_per_mtok", "context_window", "max_output_tokens", "tier",
}  # fmt: skip
#: An embedding model has an input price, a per-input token limit (``context_window``) and a vector size;
#: it produces no output tokens and takes no part in tier selection.
_REQUIRED_EMBEDDING = {"provider", "api_id", "input_per_mtok", "context_window", "dimensions"}
_EMBEDDING_DEFAULTS: dict[str, Any] = {"output_per_mtok": 0.0, "max_output_tokens": 0, "tier": "fast"}
_NUMERIC = {
    "input_per_mtok", "output_per_mtok", "context_window", "max_output_tokens",
    "long_context_threshold", "input_per_mtok_long", "output_per_mtok_long", "dimensions",
}  # fmt: skip


@dataclass(slots=True)
class Catalog:
    """Models by name, with every alias indexed so that a lookup is one dict access."""

    models: dict[str, ModelInfo]
    prices_as_of: str = ""
    batch_discount: float = 0.5
    _index: dict[str, ModelInfo] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        index: dict[str, ModelInfo] = {}
        for info in self.models.values():
            for key in (info.name, info.api_id, *info.aliases):
                index[key] = info
        self._index = index

    @classmethod
    def load(cls, override: Path | str | None = None) -> Catalog:
        """The packaged catalog, with an optional TOML file's entries merged over it field by field."""
        text = resources.files("llmrelay.shared").joinpath("catalog.toml").read_text(encoding="utf-8")
        base = tomllib.loads(text)
        if override is not None:
            extra = tomllib.loads(Path(override).read_text(encoding="utf-8"))
            for key in ("prices_as_of", "batch_discount"):
                if key in extra:
                    base[key] = extra[key]
            for name, entry in extra.get("models", {}).items():
                base.setdefault("models", {}).setdefault(name, {}).update(entry)
        return cls.from_dict(base)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Catalog:
        models: dict[str, ModelInfo] = {}
        for name, entry in data.get("models", {}).items():
            unknown = set(entry) - _FIELDS
            if unknown:
                raise ValueError(f"catalog entry {name!r} has unknown fields: {sorted(unknown)}")
            kind = entry.get("kind", "chat")
            if kind not in MODEL_KINDS:
                raise ValueError(f"catalog entry {name!r}: kind must be one of {MODEL_KINDS}")
            if kind == "embedding":
                entry = {**_EMBEDDING_DEFAULTS, **entry}
                missing_embedding = _REQUIRED_EMBEDDING - set(entry)
                if missing_embedding:
                    raise ValueError(
                        f"catalog entry {name!r} lacks required fields: {sorted(missing_embedding)}"
                    )
            if entry.get("provider") not in PROVIDERS:
                raise ValueError(f"catalog entry {name!r}: provider must be one of {PROVIDERS}")
            if entry.get("tier") not in TIERS:
                raise ValueError(f"catalog entry {name!r}: tier must be one of {TIERS}")
            missing = _REQUIRED - set(entry)
            if missing:
                raise ValueError(f"catalog entry {name!r} lacks required fields: {sorted(missing)}")
            for key in _NUMERIC & set(entry):
                value = entry[key]
                if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
                    raise ValueError(f"catalog entry {name!r}: {key} must be a number, not {value!r}")
            values = dict(entry)
            values["aliases"] = tuple(values.get("aliases", ()))
            models[name] = ModelInfo(name=name, **values)
        return cls(
            models=models,
            prices_as_of=str(data.get("prices_as_of", "")),
            batch_discount=float(data.get("batch_discount", 0.5)),
        )

    def get(self, model: str) -> ModelInfo | None:
        return self._index.get(model)

    def resolve(self, model: str) -> ModelInfo:
        info = self._index.get(model)
        if info is None:
            raise UnknownModelError(f"unknown model {model!r}", data={"field": "model", "model": model})
        return info

    def provider_for(self, model: str) -> Provider:
        return self.resolve(model).provider

    def by_tier(self, tier: Tier) -> list[ModelInfo]:
        """The chat models of a tier (embedding models are chosen by name only)."""
        return [m for m in self.models.values() if m.tier == tier and m.kind == "chat"]
