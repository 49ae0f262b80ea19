"""Governance: the single gate that picks, checks and fits a model before any provider sees a request."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from llmrelay.shared.catalog import Catalog
from llmrelay.shared.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotAllowedError,
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
    default_model: str | None = "gpt-4.1-mini",
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
    route = governance().route(request(model="claude-3-5-haiku"))
    assert route.model.name == "claude-3-5-haiku"
    assert route.provider == "anthropic"
    assert route.fallbacks == ()


def test_route_by_dated_id_resolves_to_the_catalog_entry() -> None:
    route = governance().route(request(model="gpt-4.1-2025-04-14"))
    assert route.model.name == "gpt-4.1"
    assert route.provider == "openai"


@pytest.mark.parametrize(
    ("tier", "expected"), [("fast", "gemini-2.0-flash"), ("balanced", "gpt-4.1"), ("premium", "gpt-5")]
)
def test_route_by_tier_uses_the_preference_list(tier: str, expected: str) -> None:
    assert governance().route(request(tier=tier)).model.name == expected


def test_model_wins_over_tier() -> None:
    assert governance().route(request(model="gpt-5", tier="fast")).model.name == "gpt-5"


def test_route_without_model_or_tier_uses_the_default_model() -> None:
    assert governance(default_model="gemini-1.5-pro").route(request()).model.name == "gemini-1.5-pro"


def test_route_without_model_tier_or_default_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance(default_model=None).route(request())
    assert type(info.value) is InvalidRequestError
    assert info.value.data["field"] == "model"


def test_disallowed_model_is_refused_naming_the_field() -> None:
    with pytest.raises(ModelNotAllowedError) as info:
        governance(["gpt-4.1-mini"]).route(request(model="gpt-5"))
    assert info.value.data == {"field": "model", "model": "gpt-5"}
    assert "gpt-5" in info.value.message


def test_disallowed_model_is_refused_by_its_dated_id_too() -> None:
    with pytest.raises(ModelNotAllowedError):
        governance(["gpt-4.1-mini"]).route(request(model="gpt-5-2025-08-07"))


def test_unknown_model_is_refused() -> None:
    with pytest.raises(UnknownModelError) as info:
        governance().route(request(model="gpt-7-ultra"))
    assert info.value.data["model"] == "gpt-7-ultra"


def test_disallowed_default_model_is_refused() -> None:
    with pytest.raises(ModelNotAllowedError):
        governance(["gpt-5"], default_model="gpt-4.1-mini").route(request())


def test_allowed_models_naming_a_model_outside_the_catalog_is_refused_at_construction() -> None:
    with pytest.raises(ValueError, match="gpt-7-ultra"):
        Governance(CATALOG, ["gpt-4.1", "gpt-7-ultra"])


def test_allowed_models_given_by_dated_id_allow_the_model() -> None:
    gov = governance(["claude-3-5-sonnet-20241022"])
    assert gov.allowed == frozenset({"claude-3-5-sonnet"})
    assert gov.is_allowed("claude-3-5-sonnet")
    assert gov.is_allowed("claude-3-5-sonnet-latest")
    assert not gov.is_allowed("claude-3-5-sonnet-20240620")
    assert not gov.is_allowed("not-a-model")


def test_check_returns_the_entry_and_names_the_requested_field() -> None:
    gov = governance(["gpt-4.1"])
    assert gov.check("gpt-4.1-2025-04-14").name == "gpt-4.1"
    with pytest.raises(ModelNotAllowedError) as info:
        gov.check("gpt-5", field="fallback_models")
    assert info.value.data["field"] == "fallback_models"


def test_allowed_models_lists_catalog_entries() -> None:
    assert [m.name for m in governance(["gpt-5", "gemini-2.0-flash"]).allowed_models()] == [
        "gpt-5",
        "gemini-2.0-flash",
    ]


# Fitting the model


def test_max_tokens_at_the_model_limit_is_accepted() -> None:
    route = governance().route(request(model="claude-3-5-haiku", max_tokens=8192))
    assert route.model.name == "claude-3-5-haiku"


def test_max_tokens_over_the_model_limit_is_refused_naming_max_tokens() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-3-5-haiku", max_tokens=8193))
    assert type(info.value) is InvalidRequestError
    assert info.value.data == {"field": "max_tokens", "limit": 8192}


def test_prompt_over_the_context_window_is_refused() -> None:
    prompt = "x" * (200_000 * 4)
    with pytest.raises(ContextLengthExceededError) as info:
        governance().route(request(model="claude-3-5-sonnet", messages=[{"role": "user", "content": prompt}]))
    assert info.value.data == {"field": "messages", "limit": 200_000}


def test_max_tokens_counts_toward_the_context_window() -> None:
    messages = [{"role": "user", "content": "x" * (195_000 * 4)}]
    gov = governance()
    assert gov.route(request(model="claude-3-5-sonnet", messages=messages)).model.name == "claude-3-5-sonnet"
    with pytest.raises(ContextLengthExceededError):
        gov.route(request(model="claude-3-5-sonnet", messages=messages, max_tokens=8000))


def test_the_same_prompt_fits_a_larger_window() -> None:
    messages = [{"role": "user", "content": "x" * (200_000 * 4)}]
    assert (
        governance().route(request(model="gemini-1.5-pro", messages=messages)).model.name == "gemini-1.5-pro"
    )


def test_prompt_estimate_counts_characters_and_messages() -> None:
    assert estimate_prompt_tokens(request(messages=[{"role": "user", "content": ""}])) == 4
    two = request(messages=[{"role": "system", "content": "a" * 40}, {"role": "user", "content": "b" * 40}])
    assert estimate_prompt_tokens(two) == 80 // 4 + 8


# Failover


def test_request_fallback_models_form_the_chain() -> None:
    route = governance().route(
        request(model="gpt-4.1", fallback_models=["gemini-1.5-pro", "claude-3-5-sonnet"])
    )
    assert [m.name for m in route.fallbacks] == ["gemini-1.5-pro", "claude-3-5-sonnet"]


def test_request_fallback_chain_drops_the_primary_and_duplicates() -> None:
    route = governance().route(
        request(model="gpt-4.1", fallback_models=["gpt-4.1-2025-04-14", "gpt-5", "gpt-5-2025-08-07", "gpt-5"])
    )
    assert [m.name for m in route.fallbacks] == ["gpt-5"]


def test_request_fallback_with_a_disallowed_model_is_refused_naming_fallback_models() -> None:
    with pytest.raises(ModelNotAllowedError) as info:
        governance(["gpt-4.1", "gpt-5"]).route(
            request(model="gpt-4.1", fallback_models=["gpt-5", "gemini-1.5-pro"])
        )
    assert info.value.data == {"field": "fallback_models", "model": "gemini-1.5-pro"}


def test_request_fallback_with_an_unknown_model_is_refused_naming_fallback_models() -> None:
    with pytest.raises(UnknownModelError) as info:
        governance().route(request(model="gpt-4.1", fallback_models=["gpt-7-ultra"]))
    assert info.value.data["field"] == "fallback_models"


def test_configured_failover_is_used_when_the_request_gives_none() -> None:
    gov = governance(failover={"gpt-4.1": ["gemini-1.5-pro", "claude-3-5-sonnet"]})
    route = gov.route(request(model="gpt-4.1-2025-04-14"))
    assert [m.name for m in route.fallbacks] == ["gemini-1.5-pro", "claude-3-5-sonnet"]


def test_configured_failover_skips_disallowed_unknown_and_primary_models() -> None:
    gov = governance(
        ["gpt-4.1", "claude-3-5-sonnet"],
        failover={"gpt-4.1": ["gemini-1.5-pro", "gpt-7-ultra", "gpt-4.1", "claude-3-5-sonnet-latest"]},
    )
    route = gov.route(request(model="gpt-4.1"))
    assert [m.name for m in route.fallbacks] == ["claude-3-5-sonnet"]


def test_request_fallback_models_replace_the_configured_failover() -> None:
    gov = governance(failover={"gpt-4.1": ["gemini-1.5-pro"]})
    route = gov.route(request(model="gpt-4.1", fallback_models=["claude-3-5-sonnet"]))
    assert [m.name for m in route.fallbacks] == ["claude-3-5-sonnet"]


def test_configured_failover_of_another_model_does_not_apply() -> None:
    gov = governance(failover={"gpt-5": ["gemini-1.5-pro"]})
    assert gov.route(request(model="gpt-4.1")).fallbacks == ()


# Selecting by tier


def test_selector_picks_the_first_allowed_preference() -> None:
    gov = governance(["gpt-4.1-mini", "claude-3-5-haiku", "gpt-4.1"])
    assert gov.selector.select("fast").name == "gpt-4.1-mini"
    assert gov.route(request(tier="fast")).model.name == "gpt-4.1-mini"


def test_selector_skips_preferences_missing_from_the_catalog() -> None:
    gov = governance(tier_models={"fast": ["no-such-model", "claude-3-5-haiku-latest"]})
    assert gov.selector.select("fast").name == "claude-3-5-haiku"


def test_selector_falls_back_to_the_cheapest_allowed_model_of_the_tier() -> None:
    gov = governance(
        ["claude-3-5-haiku", "gemini-1.5-flash", "gpt-5"], tier_models={"fast": ["gpt-4.1-mini"]}
    )
    assert gov.selector.select("fast").name == "gemini-1.5-flash"


def test_selector_without_preferences_takes_the_cheapest_of_each_tier() -> None:
    selector = ModelSelector(CATALOG, frozenset(DEFAULT_ALLOWED_MODELS), {})
    assert selector.choices() == {
        "fast": "gemini-1.5-flash",
        "balanced": "gemini-1.5-pro",
        "premium": "gpt-5",
    }


def test_selector_breaks_price_ties_by_name() -> None:
    # Both Sonnet snapshots cost the same; the lower name wins.
    selector = ModelSelector(CATALOG, frozenset({"claude-3-5-sonnet-20240620", "claude-3-5-sonnet"}), {})
    assert selector.select("premium").name == "claude-3-5-sonnet"


def test_tier_without_an_allowed_model_is_refused() -> None:
    gov = governance(["gpt-4.1-mini", "gemini-2.0-flash"])
    assert gov.selector.choices() == {"fast": "gemini-2.0-flash"}
    with pytest.raises(ModelNotAllowedError) as info:
        gov.route(request(tier="premium"))
    assert info.value.data == {"field": "tier", "tier": "premium"}


def test_governance_from_settings() -> None:
    settings = Settings(
        _env_file=None,
        catalog_file=None,
        allowed_models=["gpt-4.1", "gemini-1.5-pro", "claude-3-5-haiku"],
        default_model="claude-3-5-haiku",
        tier_models={"balanced": ["gemini-1.5-pro"]},
        failover={"gpt-4.1": ["gemini-1.5-pro"]},
    )
    gov = Governance.from_settings(settings)
    assert gov.allowed == frozenset({"gpt-4.1", "gemini-1.5-pro", "claude-3-5-haiku"})
    assert gov.route(request()).model.name == "claude-3-5-haiku"
    assert gov.route(request(tier="balanced")).model.name == "gemini-1.5-pro"
    assert [m.name for m in gov.route(request(model="gpt-4.1")).fallbacks] == ["gemini-1.5-pro"]


def test_governance_from_settings_refuses_a_non_catalog_allowed_model() -> None:
    settings = Settings(_env_file=None, catalog_file=None, allowed_models=["gpt-4.1", "made-up"])
    with pytest.raises(ValueError, match="made-up"):
        Governance.from_settings(settings)


def test_a_default_model_outside_the_allowed_list_is_announced_at_start() -> None:
    from structlog.testing import capture_logs

    from llmrelay.shared.catalog import Catalog

    with capture_logs() as logs:
        Governance(Catalog.load(), ["gemini-2.0-flash"], default_model="gpt-4.1-mini")
    assert [e["default_model"] for e in logs if "LLM_DEFAULT_MODEL" in e["event"]] == ["gpt-4.1-mini"]


# Per-provider parameter bounds


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1.0])
def test_anthropic_takes_temperatures_in_its_range(temperature: float) -> None:
    assert (
        governance().route(request(model="claude-3-5-haiku", temperature=temperature)).provider == "anthropic"
    )


def test_anthropic_refuses_a_temperature_over_one_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-3-5-haiku", temperature=1.5))
    assert info.value.data["field"] == "temperature"
    assert info.value.data["max"] == 1.0 and info.value.data["provider"] == "anthropic"
    assert "temperature 1.5" in info.value.message and "0..1" in info.value.message


def test_anthropic_refuses_a_seed_naming_it() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(request(model="claude-3-5-haiku", seed=3))
    assert info.value.data["field"] == "seed"
    assert "seed is not supported by anthropic" in info.value.message


@pytest.mark.parametrize("model", ["gpt-4.1-mini", "gemini-2.0-flash"])
def test_other_providers_take_the_whole_contract_range_and_a_seed(model: str) -> None:
    assert governance().route(request(model=model, temperature=1.8, seed=3)).model.name == model


def test_a_fallback_model_that_cannot_take_the_parameters_is_refused() -> None:
    with pytest.raises(InvalidRequestError) as info:
        governance().route(
            request(model="gpt-4.1-mini", temperature=1.5, fallback_models=["claude-3-5-haiku"])
        )
    assert info.value.data["field"] == "temperature" and info.value.data["via"] == "fallback_models"


def test_a_configured_failover_model_that_cannot_take_the_parameters_is_skipped() -> None:
    gov = governance(failover={"gpt-4.1-mini": ["claude-3-5-haiku", "gemini-2.0-flash"]})
    assert [m.name for m in gov.route(request(model="gpt-4.1-mini", seed=1)).fallbacks] == [
        "gemini-2.0-flash"
    ]
    assert [m.name for m in gov.route(request(model="gpt-4.1-mini")).fallbacks] == [
        "claude-3-5-haiku",
        "gemini-2.0-flash",
    ]
