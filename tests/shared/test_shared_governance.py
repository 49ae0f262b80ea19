"""Governance: the single gate that picks, checks and fits a model before any provider sees a request."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from typing import Any

import pytest

from llmrelay.shared.catalog import Catalog
from llmrelay.shared.errors import (
    CapabilityNotSupportedError,
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotAllowedError,
    ModelRetiredError,
    UnknownModelError,
)
from llmrelay.shared.governance import Governance, ModelSelector, estimate_prompt_tokens
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.settings import DEFAULT_ALLOWED_MODELS, DEFAULT_TIER_MODELS, Settings

CATALOG = Catalog.load()


def request(**fields: Any) -> LLMRequest:
    fields.setdefault("messages", [{"role": "user", "content": "hello"}])
    return LLMRequest.model_validate(fields)


def governance(
    allowed: Iterable[str] = DEFAULT_ALLOWED_MODELS,
    *,
    default_model: str | None = "gpt-6-luna",
    tier_models: dict[str, list[str]] | None = None,
    failover: dict[str, list[str]] | None = None,
) -> Governance:
    return Governance(
        CATALOG,
        allowed,
        default_model=default_model,
        tier_models=DEFAULT_TIER_MODELS if tier_models is None else tier_models,
        failover=failover,
    )


# Choosing the model


def test_route_by_model_name() -> None:
    route = governance().route(request(model="claude-haiku-4-5"))
    assert route.model.name == "claude-haiku-4-5"
    assert route.provider == "anthropic"
    assert route.fallbacks == ()


def test_route_by_dated_id_resolves_to_the_catalog_entry() -> None:
    route = governance().route(request(model="gpt-6.1-sol-2026-09-29"))
    assert route.model.name == "gpt-6.1-sol"
    assert route.provider == "openai"


@pytest.mark.parametrize(
    ("tier", "expected"), [("fast", "gpt-6-luna"), ("balanced", "gemini-3.8-flash"), ("premium", "claude-opus-5-5")]
)
def test_route_by_tier_uses_the_preference_list(tier: str, expected: str) -> None:
    assert governance().route(request(tier=tier)).model.name == expected


def test_model_wins_over_tier() -> None:
    assert governance().route(request(model="gpt-6.2-astra", tier="fast")).model.name == "gpt-6.2-astra"


def test_route_without_model_or_tier_uses_the_default_model() -> None:
    assert governance(default_model="gemini-3.8-flash").route(request()).model.name == "gemini-3.8-flash"


def test_route_without_model_tier_or_default_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance(default_model=None).route(request())
    assert type(info.value) is InvalidRequestError
    assert info.value.data["field"] == "model"


def test_disallowed_model_is_refused_naming_the_field() -> None:
    with pytest.raises(ModelNotAllowedError) as info:
        governance(["gpt-6-luna"]).route(request(model="gpt-6.2-astra"))
    assert info.value.data == {"field": "model", "model": "gpt-6.2-astra"}
    assert "gpt-6.2-astra" in info.value.message


def test_disallowed_model_is_refused_by_its_dated_id_too() -> None:
    with pytest.raises(ModelNotAllowedError):
        governance(["gpt-6-luna"]).route(request(model="gpt-6.2-astra"))


def test_a_retired_model_left_out_of_the_allow_list_is_refused_naming_its_successor() -> None:
    with pytest.raises(ModelRetiredError) as info:
        on(READ_ON, ["gpt-6-luna"]).route(request(model="claude-3-5-sonnet"))
    assert info.value.data["successor"] == "claude-sonnet-5-5"


def test_unknown_model_is_refused() -> None:
    with pytest.raises(UnknownModelError) as info:
        governance().route(request(model="gpt-7-ultra"))
    assert info.value.data["model"] == "gpt-7-ultra"


def test_disallowed_default_model_is_refused() -> None:
    with pytest.raises(ModelNotAllowedError):
        governance(["gpt-6.2-astra"], default_model="gpt-6-luna").route(request())


def test_allowed_models_naming_a_model_outside_the_catalog_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="gpt-7-ultra"):
        Governance(CATALOG, ["gpt-6.1-sol", "gpt-7-ultra"])


def test_allowed_models_given_by_dated_id_allow_the_model() -> None:
    gov = governance(["claude-haiku-4-5-20251001"])
    assert gov.allowed == frozenset({"claude-haiku-4-5"})
    assert gov.is_allowed("claude-haiku-4-5")
    assert gov.is_allowed("claude-haiku-4-5-20251001")
    assert not gov.is_allowed("claude-haiku-5-5")
    assert not gov.is_allowed("not-a-model")


def test_check_returns_the_entry_and_names_the_requested_field() -> None:
    gov = governance(["gpt-6.1-sol"])
    assert gov.check("gpt-6.1-sol-2026-09-29").name == "gpt-6.1-sol"
    with pytest.raises(ModelNotAllowedError) as info:
        gov.check("gpt-6.2-astra", field="fallback_models")
    assert info.value.data["field"] == "fallback_models"


def test_allowed_models_lists_catalog_entries() -> None:
    assert [m.name for m in governance(["gpt-6.2-astra", "gemini-3.5-flash-lite"]).allowed_models()] == [
        "gpt-6.2-astra",
        "gemini-3.5-flash-lite",
    ]


# Fitting the model


def test_max_tokens_at_the_model_limit_is_accepted() -> None:
    route = governance().route(request(model="claude-haiku-4-5", max_tokens=64000))
    assert route.model.name == "claude-haiku-4-5"


def test_max_tokens_over_the_model_limit_is_refused_naming_max_tokens() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-haiku-4-5", max_tokens=64001))
    assert type(info.value) is InvalidRequestError
    assert info.value.data == {"field": "max_tokens", "limit": 64000}


def test_prompt_over_the_context_window_is_refused() -> None:
    prompt = "x" * (200_000 * 4)
    with pytest.raises(ContextLengthExceededError) as info:
        governance().route(request(model="claude-haiku-4-5", messages=[{"role": "user", "content": prompt}]))
    assert info.value.data == {"field": "messages", "limit": 200_000}


def test_max_tokens_counts_toward_the_context_window() -> None:
    messages = [{"role": "user", "content": "x" * (195_000 * 4)}]
    gov = governance()
    assert gov.route(request(model="claude-haiku-4-5", messages=messages)).model.name == "claude-haiku-4-5"
    with pytest.raises(ContextLengthExceededError):
        gov.route(request(model="claude-haiku-4-5", messages=messages, max_tokens=8000))


def test_the_same_prompt_fits_a_larger_window() -> None:
    messages = [{"role": "user", "content": "x" * (200_000 * 4)}]
    assert (
        governance().route(request(model="gemini-3.8-flash", messages=messages)).model.name == "gemini-3.8-flash"
    )


def test_prompt_estimate_counts_characters_and_messages() -> None:
    assert estimate_prompt_tokens(request(messages=[{"role": "user", "content": ""}])) == 4
    two = request(messages=[{"role": "system", "content": "a" * 40}, {"role": "user", "content": "b" * 40}])
    assert estimate_prompt_tokens(two) == 80 // 4 + 8


# Failover


def test_request_fallback_models_form_the_chain() -> None:
    route = governance().route(
        request(model="gpt-6.1-sol", fallback_models=["gemini-3.8-flash", "claude-sonnet-5-5"])
    )
    assert [m.name for m in route.fallbacks] == ["gemini-3.8-flash", "claude-sonnet-5-5"]


def test_request_fallback_chain_drops_the_primary_and_duplicates() -> None:
    route = governance().route(
        request(model="gpt-6.1-sol", fallback_models=["gpt-6.1-sol-2026-09-29", "gpt-6.2-astra", "gpt-6.2-astra", "gpt-6.2-astra"])
    )
    assert [m.name for m in route.fallbacks] == ["gpt-6.2-astra"]


def test_request_fallback_with_a_disallowed_model_is_refused_naming_fallback_models() -> None:
    with pytest.raises(ModelNotAllowedError) as info:
        governance(["gpt-6.1-sol", "gpt-6.2-astra"]).route(
            request(model="gpt-6.1-sol", fallback_models=["gpt-6.2-astra", "gemini-3.8-flash"])
        )
    assert info.value.data == {"field": "fallback_models", "model": "gemini-3.8-flash"}


def test_request_fallback_with_an_unknown_model_is_refused_naming_fallback_models() -> None:
    with pytest.raises(UnknownModelError) as info:
        governance().route(request(model="gpt-6.1-sol", fallback_models=["gpt-7-ultra"]))
    assert info.value.data["field"] == "fallback_models"


def test_configured_failover_is_used_when_the_request_gives_none() -> None:
    gov = governance(failover={"gpt-6.1-sol": ["gemini-3.8-flash", "claude-sonnet-5-5"]})
    route = gov.route(request(model="gpt-6.1-sol-2026-09-29"))
    assert [m.name for m in route.fallbacks] == ["gemini-3.8-flash", "claude-sonnet-5-5"]


def test_configured_failover_skips_disallowed_unknown_and_primary_models() -> None:
    gov = governance(
        ["gpt-6.1-sol", "claude-sonnet-5-5"],
        failover={"gpt-6.1-sol": ["gemini-3.8-flash", "gpt-7-ultra", "gpt-6.1-sol", "claude-sonnet-5-5"]},
    )
    route = gov.route(request(model="gpt-6.1-sol"))
    assert [m.name for m in route.fallbacks] == ["claude-sonnet-5-5"]


def test_request_fallback_models_replace_the_configured_failover() -> None:
    gov = governance(failover={"gpt-6.1-sol": ["gemini-3.8-flash"]})
    route = gov.route(request(model="gpt-6.1-sol", fallback_models=["claude-sonnet-5-5"]))
    assert [m.name for m in route.fallbacks] == ["claude-sonnet-5-5"]


def test_configured_failover_of_another_model_does_not_apply() -> None:
    gov = governance(failover={"gpt-6.2-astra": ["gemini-3.8-flash"]})
    assert gov.route(request(model="gpt-6.1-sol")).fallbacks == ()


# Selecting by tier


def test_selector_picks_the_first_allowed_preference() -> None:
    gov = governance(["gpt-6-luna", "claude-haiku-4-5", "gpt-6.1-sol"])
    assert gov.selector.select("fast").name == "gpt-6-luna"
    assert gov.route(request(tier="fast")).model.name == "gpt-6-luna"


def test_selector_skips_preferences_missing_from_the_catalog() -> None:
    gov = governance(tier_models={"fast": ["no-such-model", "claude-haiku-4-5-20251001"]})
    assert gov.selector.select("fast").name == "claude-haiku-4-5"


def test_selector_falls_back_to_the_cheapest_allowed_model_of_the_tier() -> None:
    gov = governance(
        ["claude-haiku-4-5", "gemini-2.5-flash-lite", "gpt-6.2-astra"], tier_models={"fast": ["gpt-6-luna"]}
    )
    assert gov.selector.select("fast").name == "gemini-2.5-flash-lite"


def test_selector_without_preferences_takes_the_cheapest_of_each_tier() -> None:
    selector = ModelSelector(CATALOG, frozenset(DEFAULT_ALLOWED_MODELS), {})
    assert selector.choices() == {
        "fast": "gemini-2.5-flash-lite",
        "balanced": "gemini-3.8-flash",
        "premium": "claude-opus-5-5",
    }


def test_selector_breaks_price_ties_by_name() -> None:
    # Both Sol releases cost the same; the lower name wins.
    selector = ModelSelector(CATALOG, frozenset({"gpt-6.2-sol", "gpt-6.1-sol"}), {})
    assert selector.select("balanced").name == "gpt-6.1-sol"


def test_tier_without_an_allowed_model_is_refused() -> None:
    gov = governance(["gpt-6-luna", "gemini-3.5-flash-lite"])
    assert gov.selector.choices() == {"fast": "gpt-6-luna"}
    with pytest.raises(ModelNotAllowedError) as info:
        gov.route(request(tier="premium"))
    assert info.value.data == {"field": "tier", "tier": "premium"}


def test_governance_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        catalog_file=None,
        allowed_models=["gpt-6.1-sol", "gemini-3.8-flash", "claude-haiku-4-5"],
        default_model="claude-haiku-4-5",
        tier_models={"balanced": ["gemini-3.8-flash"]},
        failover={"gpt-6.1-sol": ["gemini-3.8-flash"]},
    )
    gov = Governance.from_settings(settings)
    assert gov.allowed == frozenset({"gpt-6.1-sol", "gemini-3.8-flash", "claude-haiku-4-5"})
    assert gov.route(request()).model.name == "claude-haiku-4-5"
    assert gov.route(request(tier="balanced")).model.name == "gemini-3.8-flash"
    assert [m.name for m in gov.route(request(model="gpt-6.1-sol")).fallbacks] == ["gemini-3.8-flash"]


def test_governance_from_settings_refuses_a_non_catalog_allowed_model() -> None:
    settings = Settings(_env_file=None, catalog_file=None, allowed_models=["gpt-6.1-sol", "made-up"])
    with pytest.raises(ValueError, match="made-up"):
        Governance.from_settings(settings)


def test_a_default_model_outside_the_allowed_list_is_announced_at_start() -> None:
    from structlog.testing import capture_logs

    from llmrelay.shared.catalog import Catalog

    with capture_logs() as logs:
        Governance(Catalog.load(), ["gemini-3.5-flash-lite"], default_model="gpt-6-luna")
    assert [e["default_model"] for e in logs if "LLM_DEFAULT_MODEL" in e["event"]] == ["gpt-6-luna"]


# Per-provider parameter bounds


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
def test_anthropic_takes_temperatures_in_its_range(temperature: float) -> None:
    assert (
        governance().route(request(model="claude-haiku-4-5", temperature=temperature)).provider == "anthropic"
    )


def test_anthropic_refuses_a_temperature_over_one_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-haiku-4-5", temperature=1.5))
    assert info.value.data["field"] == "temperature"
    assert info.value.data["max"] == 1.0 and info.value.data["provider"] == "anthropic"
    assert "temperature 1.5" in info.value.message and "0..1" in info.value.message


def test_anthropic_refuses_a_seed_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-haiku-4-5", seed=3))
    assert info.value.data["field"] == "seed"
    assert "seed is not supported by anthropic" in info.value.message


@pytest.mark.parametrize("model", ["gpt-6-luna", "gemini-3.5-flash-lite"])
def test_other_providers_take_the_whole_contract_range_and_a_seed(model: str) -> None:
    assert governance().route(request(model=model, temperature=1.8, seed=3)).model.name == model


def test_a_fallback_model_that_cannot_take_the_parameters_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(
            request(model="gpt-6-luna", temperature=1.5, fallback_models=["claude-haiku-4-5"])
        )
    assert info.value.data["field"] == "temperature" and info.value.data["via"] == "fallback_models"


def test_a_configured_failover_model_that_cannot_take_the_parameters_is_skipped() -> None:
    gov = governance(failover={"gpt-6-luna": ["claude-haiku-4-5", "gemini-3.5-flash-lite"]})
    assert [m.name for m in gov.route(request(model="gpt-6-luna", seed=1)).fallbacks] == [
        "gemini-3.5-flash-lite"
    ]
    assert [m.name for m in gov.route(request(model="gpt-6-luna")).fallbacks] == [
        "claude-haiku-4-5",
        "gemini-3.5-flash-lite",
    ]


# Lifecycle: retired models are refused naming the successor, deprecated ones served with a warning

READ_ON = date(2026, 12, 1)
EVERY_MODEL = list(CATALOG.models)


def on(day: date, allowed: Iterable[str] = EVERY_MODEL, **kwargs: Any) -> Governance:
    return Governance(CATALOG, allowed, clock=lambda: day, **kwargs)


@pytest.mark.parametrize(
    ("model", "successor"),
    [
        ("claude-3-5-sonnet", "claude-sonnet-5-5"),
        ("claude-3-5-sonnet-20241022", "claude-sonnet-5-5"),
        ("claude-3-5-haiku-latest", "claude-haiku-4-5"),
        ("gemini-2.0-flash", "gemini-3.5-flash-lite"),
        ("gemini-1.5-pro", "gemini-3.8-flash"),
        ("gemini-1.5-flash-002", "gemini-3.5-flash-lite"),
    ],
)
def test_a_retired_model_is_refused_naming_its_successor(model: str, successor: str) -> None:
    with pytest.raises(ModelRetiredError) as info:
        on(READ_ON).route(request(model=model))
    assert info.value.data["successor"] == successor
    assert info.value.data["field"] == "model"
    assert successor in info.value.message and "retired" in info.value.message
    assert (info.value.code, info.value.http_status) == (-32007, 410)


def test_a_model_is_refused_from_its_shutdown_date_on() -> None:
    assert on(date(2026, 12, 10)).route(request(model="gpt-5")).model.name == "gpt-5"
    with pytest.raises(ModelRetiredError) as info:
        on(date(2026, 12, 11)).route(request(model="gpt-5-2025-08-07"))
    assert info.value.data == {
        "field": "model", "model": "gpt-5", "retired_on": "2026-12-11", "successor": "gpt-6.1-sol",
    }  # fmt: skip


def test_a_retired_model_the_catalog_marks_served_is_let_through(tmp_path: Any) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text('[models."gemini-2.0-flash"]\nserved = true\n', encoding="utf-8")
    gov = Governance(Catalog.load(override), ["gemini-2.0-flash"], clock=lambda: READ_ON)
    assert gov.route(request(model="gemini-2.0-flash")).model.name == "gemini-2.0-flash"
    assert gov.check("gemini-2.0-flash-001").served


def test_a_retired_default_model_is_refused_naming_the_successor() -> None:
    with pytest.raises(ModelRetiredError) as info:
        on(READ_ON, default_model="claude-3-5-haiku").route(request())
    assert info.value.data["successor"] == "claude-haiku-4-5"


def test_a_deprecated_model_is_served_with_one_warning_per_model() -> None:
    from structlog.testing import capture_logs

    from llmrelay.shared import governance as module

    module._WARNED_DEPRECATED.discard("gpt-4.1-mini")
    gov = on(READ_ON)
    with capture_logs() as logs:
        for _ in range(3):
            assert gov.route(request(model="gpt-4.1-mini")).model.name == "gpt-4.1-mini"
        on(READ_ON).check("gpt-4.1-mini-2025-04-14")  # another Governance of the same process
    warnings = [e for e in logs if e.get("model") == "gpt-4.1-mini" and e["log_level"] == "warning"]
    assert len(warnings) == 1
    assert (warnings[0]["retires_on"], warnings[0]["successor"]) == ("2027-01-14", "gpt-6-luna")


def test_a_retired_fallback_model_is_refused_naming_fallback_models() -> None:
    with pytest.raises(ModelRetiredError) as info:
        on(READ_ON).route(request(model="gpt-6.1-sol", fallback_models=["gemini-3.8-flash", "claude-3-5-haiku"]))
    assert info.value.data["field"] == "fallback_models"
    assert info.value.data["successor"] == "claude-haiku-4-5"


def test_configured_failover_skips_retired_models() -> None:
    gov = on(READ_ON, failover={"gpt-6.1-sol": ["claude-3-5-sonnet", "gemini-1.5-pro", "claude-sonnet-5-5"]})
    assert [m.name for m in gov.route(request(model="gpt-6.1-sol")).fallbacks] == ["claude-sonnet-5-5"]


def test_a_tier_skips_retired_models_as_the_dates_pass() -> None:
    today = [date(2026, 12, 10)]
    gov = Governance(
        CATALOG, EVERY_MODEL, tier_models={"premium": ["gpt-5", "claude-opus-5-5"]}, clock=lambda: today[0]
    )
    assert gov.route(request(tier="premium")).model.name == "gpt-5"
    today[0] = date(2026, 12, 11)
    assert gov.route(request(tier="premium")).model.name == "claude-opus-5-5"
    assert gov.selector.choices()["premium"] == "claude-opus-5-5"


def test_a_tier_with_only_retired_models_is_refused() -> None:
    gov = on(READ_ON, ["gemini-2.0-flash", "gemini-1.5-flash"], tier_models={"fast": ["gemini-2.0-flash"]})
    with pytest.raises(ModelNotAllowedError) as info:
        gov.route(request(tier="fast"))
    assert info.value.data == {"field": "tier", "tier": "fast"}


# Capabilities: a request asking a model for what it cannot do is refused naming the field

WEATHER = {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
IMAGE = {"type": "image", "data": "aGk=", "media_type": "image/png"}
PDF = {"type": "document", "data": "JVBERi0=", "media_type": "application/pdf"}
SCHEMA = {"type": "json_schema", "name": "out", "schema": {"type": "object", "properties": {}}}


def custom_model(**capabilities: bool) -> Governance:
    entry = {
        "provider": "openai", "api_id": "plain-1", "input_per_mtok": 1.0, "output_per_mtok": 2.0,
        "context_window": 10_000, "max_output_tokens": 1_000, "tier": "fast", **capabilities,
    }  # fmt: skip
    return Governance(Catalog.from_dict({"models": {"plain": entry}}), ["plain"])


@pytest.mark.parametrize(
    ("fields", "field", "capability"),
    [
        ({"tools": [WEATHER]}, "tools", "tools"),
        ({"messages": [{"role": "user", "content": [{"type": "text", "text": "look"}, IMAGE]}]}, "messages", "vision"),
        ({"messages": [{"role": "user", "content": [PDF]}]}, "messages", "documents"),
        ({"response_format": SCHEMA}, "response_format", "json_schema"),
        ({"reasoning": {"effort": "low"}}, "reasoning", "reasoning"),
    ],
)
def test_a_capability_the_model_lacks_is_refused_naming_the_field(
    fields: dict[str, Any], field: str, capability: str
) -> None:
    with pytest.raises(CapabilityNotSupportedError) as info:
        custom_model().route(request(model="plain", **fields))
    assert info.value.data["field"] == field and info.value.data["capability"] == capability
    assert info.value.data["model"] == "plain" and "plain" in info.value.message
    assert custom_model(**{capability: True}).route(request(model="plain", **fields)).model.name == "plain"


def test_plain_text_and_json_object_need_no_capability() -> None:
    gov = custom_model()
    assert gov.route(request(model="plain", response_format={"type": "json_object"})).model.name == "plain"


def test_the_seed_models_capabilities_are_checked() -> None:
    with pytest.raises(CapabilityNotSupportedError) as info:
        on(READ_ON).route(request(model="gpt-4.1", reasoning={"effort": "high"}))
    assert info.value.data["field"] == "reasoning"
    assert on(READ_ON).route(request(model="gpt-6.1-sol", reasoning={"effort": "high"})).model.name == "gpt-6.1-sol"


def test_a_fallback_without_the_capability_is_refused_and_a_configured_one_skipped() -> None:
    entry = {
        "provider": "gemini", "api_id": "plain-g", "input_per_mtok": 1.0, "output_per_mtok": 2.0,
        "context_window": 10_000, "max_output_tokens": 1_000, "tier": "fast",
    }  # fmt: skip
    catalog = Catalog.from_dict({"models": {**{"plain": entry}, "gpt-6.1-sol": _row("gpt-6.1-sol")}})
    asked = request(model="gpt-6.1-sol", tools=[WEATHER])
    with pytest.raises(CapabilityNotSupportedError) as info:
        Governance(catalog, ["plain", "gpt-6.1-sol"]).route(asked.model_copy(update={"fallback_models": ["plain"]}))
    assert info.value.data["field"] == "tools" and info.value.data["via"] == "fallback_models"
    gov = Governance(catalog, ["plain", "gpt-6.1-sol"], failover={"gpt-6.1-sol": ["plain"]})
    assert gov.route(asked).fallbacks == ()
    assert [m.name for m in gov.route(request(model="gpt-6.1-sol")).fallbacks] == ["plain"]


def _row(name: str) -> dict[str, Any]:
    info = CATALOG.models[name]
    fields = ("provider", "api_id", "input_per_mtok", "output_per_mtok", "context_window", "max_output_tokens",
              "tier", "tools", "vision", "documents", "json_schema", "reasoning")  # fmt: skip
    return {key: getattr(info, key) for key in fields}


def test_an_embedding_model_is_refused_for_chat() -> None:
    with pytest.raises(CapabilityNotSupportedError) as info:
        on(READ_ON).route(request(model="text-embedding-3-small"))
    assert info.value.data == {"field": "model", "model": "text-embedding-3-small", "kind": "embedding"}
    # ... but check() (the gate an embeddings path uses) lets it through.
    assert on(READ_ON).check("gemini-embedding-001").kind == "embedding"


def test_embedding_models_are_never_chosen_for_a_tier() -> None:
    gov = on(READ_ON, ["text-embedding-3-small", "gpt-6-luna"], tier_models={})
    assert gov.selector.choices() == {"fast": "gpt-6-luna"}
