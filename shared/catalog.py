"""The model catalog: which provider serves a model, what it costs, what it can do, and its lifecycle."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from llmrelay.shared.errors import UnknownModelError

Provider = Literal["openai", "anthropic", "gemini"]
Tier = Literal["fast", "balanced", "premium"]
Kind = Literal["chat", "embedding"]
Lifecycle = Literal["live", "deprecated", "retired"]
PROVIDERS: tuple[Provider, ...] = ("openai", "anthropic", "gemini")
TIERS: tuple[Tier, ...] = ("fast", "balanced", "premium")
KINDS: tuple[Kind, ...] = ("chat", "embedding")
#: What a chat model may be asked for beyond plain text; each is a boolean field of its row.
CAPABILITIES: tuple[str, ...] = ("tools", "vision", "documents", "json_schema", "reasoning")


def utc_today() -> date:
    """Today's date in UTC: the providers state shutdown dates as calendar days."""
    return datetime.now(UTC).date()


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """One catalog entry. Prices are USD per million tokens at the provider's standard tier.

    ``retires_on`` is the provider's shutdown date, the first day a request fails; ``served`` is an
    operator's statement that a retired model is still reachable (e.g. a compatible endpoint at the
    provider's base URL), which lets requests for it through.
    """

    name: str
    provider: Provider
    api_id: str
    input_per_mtok: float
    context_window: int
    output_per_mtok: float = 0.0
    max_output_tokens: int = 0
    tier: Tier | None = None
    kind: Kind = "chat"
    aliases: tuple[str, ...] = ()
    api: str = "default"
    long_context_threshold: int | None = None
    input_per_mtok_long: float | None = None
    output_per_mtok_long: float | None = None
    cached_input_per_mtok: float | None = None
    cached_input_per_mtok_long: float | None = None
    dimensions: int | None = None
    tools: bool = False
    vision: bool = False
    documents: bool = False
    json_schema: bool = False
    reasoning: bool = False
    deprecated_on: date | None = None
    retires_on: date | None = None
    successor: str | None = None
    served: bool = False

    def cost(
        self,
        prompt_tokens: int,
        completion_tokens: int,
        *,
        cached_prompt_tokens: int = 0,
        discount: float = 0.0,
    ) -> float:
        """Cost in USD of one call. ``cached_prompt_tokens`` are part of ``prompt_tokens`` and are billed
        at the cached-input price where the row has one; long-context prices apply past the threshold
        (to the whole prompt, as the providers bill)."""
        in_price, out_price = self.input_per_mtok, self.output_per_mtok
        cached_price = self.cached_input_per_mtok
        if self.long_context_threshold is not None and prompt_tokens > self.long_context_threshold:
            in_price = self.input_per_mtok_long or in_price
            out_price = self.output_per_mtok_long or out_price
            cached_price = self.cached_input_per_mtok_long or cached_price
        cached = min(max(cached_prompt_tokens, 0), prompt_tokens) if cached_price is not None else 0
        raw = (
            (prompt_tokens - cached) * in_price
            + cached * (cached_price or 0.0)
            + completion_tokens * out_price
        ) / 1_000_000
        return round(raw * (1.0 - discount), 10)

    def lifecycle(self, today: date) -> Lifecycle:
        """``retired`` from the shutdown date on; ``deprecated`` from the announcement on (a shutdown date
        with no announcement date is itself the announcement); ``live`` otherwise."""
        if self.retires_on is not None and today >= self.retires_on:
            return "retired"
        if self.deprecated_on is not None:
            return "deprecated" if today >= self.deprecated_on else "live"
        return "deprecated" if self.retires_on is not None else "live"

    def capabilities(self) -> dict[str, bool]:
        return {name: bool(getattr(self, name)) for name in CAPABILITIES}

    def public(self, today: date | None = None) -> dict[str, Any]:
        """The entry as ``llm.models``, ``/v1/models`` and ``llmrelay models`` show it."""
        out: dict[str, Any] = {
            "id": self.name,
            "provider": self.provider,
            "kind": self.kind,
            "api_id": self.api_id,
            "aliases": list(self.aliases),
            "tier": self.tier,
            "input_per_mtok": self.input_per_mtok,
            "cached_input_per_mtok": self.cached_input_per_mtok,
            "context_window": self.context_window,
            "lifecycle": self.lifecycle(today or utc_today()),
            "deprecated_on": self.deprecated_on.isoformat() if self.deprecated_on else None,
            "retires_on": self.retires_on.isoformat() if self.retires_on else None,
            "successor": self.successor,
            "served": self.served,
        }
        if self.kind == "embedding":
            out["dimensions"] = self.dimensions
        else:
            out["output_per_mtok"] = self.output_per_mtok
            out["max_output_tokens"] = self.max_output_tokens
            out["capabilities"] = self.capabilities()
        return out


_FIELDS = {f for f in ModelInfo.__dataclass_fields__ if f != "name"}
_REQUIRED: dict[str, set[str]] = {
    "chat": {
        "provider", "api_id", "input_per_mtok", "output_per_mtok",
        "context_window", "max_output_tokens", "tier",
    },
    "embedding": {"provider", "api_id", "input_per_mtok", "context_window", "dimensions"},
}  # fmt: skip
_NUMERIC = {
    "input_per_mtok", "output_per_mtok", "context_window", "max_output_tokens", "dimensions",
    "long_context_threshold", "input_per_mtok_long", "output_per_mtok_long",
    "cached_input_per_mtok", "cached_input_per_mtok_long",
}  # fmt: skip
_BOOLEAN = {*CAPABILITIES, "served"}
_DATES = {"deprecated_on", "retires_on"}


def _as_date(name: str, key: str, value: Any) -> date | None:
    """A TOML date (``2026-12-11``) or an ISO date string; anything else is refused."""
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"catalog entry {name!r}: {key} must be an ISO date (YYYY-MM-DD), not {value!r}")


def _entry(name: str, entry: dict[str, Any]) -> ModelInfo:
    unknown = set(entry) - _FIELDS
    if unknown:
        raise ValueError(f"catalog entry {name!r} has unknown fields: {sorted(unknown)}")
    if entry.get("provider") not in PROVIDERS:
        raise ValueError(f"catalog entry {name!r}: provider must be one of {PROVIDERS}")
    kind = entry.get("kind", "chat")
    if kind not in KINDS:
        raise ValueError(f"catalog entry {name!r}: kind must be one of {KINDS}")
    if kind == "chat" and entry.get("tier") not in TIERS:
        raise ValueError(f"catalog entry {name!r}: tier must be one of {TIERS}")
    missing = _REQUIRED[kind] - set(entry)
    if missing:
        raise ValueError(f"catalog entry {name!r} lacks required fields: {sorted(missing)}")
    for key in _NUMERIC & set(entry):
        value = entry[key]
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"catalog entry {name!r}: {key} must be a number, not {value!r}")
    for key in _BOOLEAN & set(entry):
        if not isinstance(entry[key], bool):
            raise ValueError(f"catalog entry {name!r}: {key} must be true or false, not {entry[key]!r}")
    values = dict(entry)
    values["aliases"] = tuple(values.get("aliases", ()))
    for key in _DATES & set(entry):
        values[key] = _as_date(name, key, entry[key])
    return ModelInfo(name=name, **values)


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
        models = {name: _entry(name, entry) for name, entry in data.get("models", {}).items()}
        for info in models.values():
            if info.successor is not None and info.successor not in models:
                raise ValueError(
                    f"catalog entry {info.name!r}: successor {info.successor!r} is not in the catalog"
                )
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
        return [m for m in self.models.values() if m.tier == tier]
