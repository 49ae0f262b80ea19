"""The model catalog: the seed models and today's, their providers, prices, lifecycles and capabilities,
costs (cached input included), and overrides."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from llmrelay.shared.catalog import CAPABILITIES, PROVIDERS, TIERS, Catalog, ModelInfo
from llmrelay.shared.errors import UnknownModelError
from llmrelay.shared.settings import DEFAULT_ALLOWED_MODELS, DEFAULT_TIER_MODELS
from tests.support import ANTHROPIC_MODEL, GEMINI_MODEL, MODEL_OF, OPENAI_MODEL, OPENAI_REASONING_MODEL

#: The date the catalog's lifecycles were read (the catalog's ``prices_as_of``).
READ_ON = date(2026, 12, 1)

# The seed's table (PROVIDERS.md): name, dated id, provider, input, output, context window.
SEED = [
    ("gpt-4.1", "gpt-4.1-2025-04-14", "openai", 2.00, 8.00, 1_047_576),
    ("gpt-4.1-mini", "gpt-4.1-mini-2025-04-14", "openai", 0.40, 1.60, 1_047_576),
    ("gpt-5", "gpt-5-2025-08-07", "openai", 1.25, 10.00, 400_000),
    ("gpt-5-mini", "gpt-5-mini-2025-08-07", "openai", 0.25, 2.00, 400_000),
    ("claude-3-5-sonnet", "claude-3-5-sonnet-20241022", "anthropic", 3.00, 15.00, 200_000),
    ("claude-3-5-sonnet-20240620", "claude-3-5-sonnet-20240620", "anthropic", 3.00, 15.00, 200_000),
    ("claude-3-5-haiku", "claude-3-5-haiku-20241022", "anthropic", 0.80, 4.00, 200_000),
    ("gemini-2.0-flash", "gemini-2.0-flash-001", "gemini", 0.10, 0.40, 1_048_576),
    ("gemini-1.5-pro", "gemini-1.5-pro-002", "gemini", 1.25, 5.00, 2_097_152),
    ("gemini-1.5-flash", "gemini-1.5-flash-002", "gemini", 0.075, 0.30, 1_048_576),
]

MINIMAL_ENTRY: dict[str, Any] = {
    "provider": "openai",
    "api_id": "custom-1",
    "input_per_mtok": 1.0,
    "output_per_mtok": 2.0,
    "context_window": 1000,
    "max_output_tokens": 100,
    "tier": "fast",
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return Catalog.load()


def test_packaged_catalog_loads_with_a_price_date(catalog: Catalog) -> None:
    assert catalog.prices_as_of == READ_ON.isoformat()
    assert catalog.batch_discount == 0.5
    assert {row[0] for row in SEED} <= set(catalog.models)


# The seed's models stay, each with the lifecycle its provider announced (and a live successor).
SEED_LIFECYCLE = {
    "gpt-4.1": ("deprecated", date(2027, 1, 14), "gpt-6.1-sol"),
    "gpt-4.1-mini": ("deprecated", date(2027, 1, 14), "gpt-6-luna"),
    "gpt-5": ("deprecated", date(2026, 12, 11), "gpt-6.1-sol"),
    "gpt-5-mini": ("deprecated", date(2026, 12, 11), "gpt-6.1-terra"),
    "claude-3-5-sonnet": ("retired", date(2025, 10, 22), "claude-sonnet-5-5"),
    "claude-3-5-sonnet-20240620": ("retired", date(2025, 10, 22), "claude-sonnet-5-5"),
    "claude-3-5-haiku": ("retired", date(2026, 2, 19), "claude-haiku-4-5"),
    "gemini-2.0-flash": ("retired", date(2026, 6, 1), "gemini-3.5-flash-lite"),
    "gemini-1.5-pro": ("retired", date(2025, 9, 24), "gemini-3.8-flash"),
    "gemini-1.5-flash": ("retired", date(2025, 9, 24), "gemini-3.5-flash-lite"),
}


@pytest.mark.parametrize("name", sorted(SEED_LIFECYCLE))
def test_seed_model_keeps_its_lifecycle_and_names_a_live_successor(catalog: Catalog, name: str) -> None:
    state, retires_on, successor = SEED_LIFECYCLE[name]
    info = catalog.resolve(name)
    assert (info.lifecycle(READ_ON), info.retires_on, info.successor) == (state, retires_on, successor)
    assert catalog.resolve(successor).lifecycle(READ_ON) == "live"


def test_lifecycle_follows_the_dates() -> None:
    entry = {**MINIMAL_ENTRY, "deprecated_on": date(2026, 6, 11), "retires_on": "2026-12-11"}
    info = Catalog.from_dict({"models": {"custom": entry}}).resolve("custom")
    assert info.lifecycle(date(2026, 6, 10)) == "live"
    assert info.lifecycle(date(2026, 6, 11)) == "deprecated"
    assert info.lifecycle(date(2026, 12, 10)) == "deprecated"
    assert info.lifecycle(date(2026, 12, 11)) == "retired"  # the shutdown date is the first day it fails
    announced = Catalog.from_dict({"models": {"c": {**MINIMAL_ENTRY, "retires_on": "2030-01-01"}}})
    assert announced.resolve("c").lifecycle(READ_ON) == "deprecated"
    assert Catalog.from_dict({"models": {"c": MINIMAL_ENTRY}}).resolve("c").lifecycle(READ_ON) == "live"


def test_the_test_models_are_live_and_capable(catalog: Catalog) -> None:
    for name in {OPENAI_MODEL, OPENAI_REASONING_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL, *MODEL_OF.values()}:
        info = catalog.resolve(name)
        assert info.lifecycle(READ_ON) == "live", name
        assert all(info.capabilities().values()), name
    assert catalog.resolve(OPENAI_MODEL).api == "chat"
    assert catalog.resolve(OPENAI_REASONING_MODEL).api == "responses"


def test_every_live_provider_has_a_live_model_in_each_tier(catalog: Catalog) -> None:
    live = [m for m in catalog.models.values() if m.kind == "chat" and m.lifecycle(READ_ON) == "live"]
    assert {m.provider for m in live} == set(PROVIDERS)
    assert {m.tier for m in live} == set(TIERS)


def test_embedding_rows_have_an_input_price_and_dimensions(catalog: Catalog) -> None:
    embeddings = {m.name: m for m in catalog.models.values() if m.kind == "embedding"}
    assert set(embeddings) == {"text-embedding-3-small", "text-embedding-3-large", "gemini-embedding-001"}
    assert {n: (m.input_per_mtok, m.dimensions) for n, m in embeddings.items()} == {
        "text-embedding-3-small": (0.02, 1536),
        "text-embedding-3-large": (0.13, 3072),
        "gemini-embedding-001": (0.15, 3072),
    }
    assert all(m.output_per_mtok == 0.0 and m.tier is None for m in embeddings.values())
    assert embeddings["text-embedding-3-small"].cost(1_000_000, 0) == pytest.approx(0.02)
    public = embeddings["gemini-embedding-001"].public(READ_ON)
    assert public["kind"] == "embedding" and public["dimensions"] == 3072 and "capabilities" not in public


def test_embedding_row_needs_dimensions() -> None:
    entry = {"kind": "embedding", "provider": "openai", "api_id": "e", "input_per_mtok": 0.1, "context_window": 10}
    with pytest.raises(ValueError, match=r"e1.*dimensions"):
        Catalog.from_dict({"models": {"e1": entry}})
    assert Catalog.from_dict({"models": {"e1": {**entry, "dimensions": 8}}}).resolve("e1").dimensions == 8


@pytest.mark.parametrize(
    ("name", "api_id", "provider", "inp", "out", "window"), SEED, ids=[r[0] for r in SEED]
)
def test_seed_model_resolves_by_name_and_dated_id(
    catalog: Catalog, name: str, api_id: str, provider: str, inp: float, out: float, window: int
) -> None:
    by_name = catalog.resolve(name)
    by_id = catalog.resolve(api_id)
    assert by_name is by_id
    assert by_name.name == name
    assert by_name.api_id == api_id
    assert by_name.provider == provider
    assert catalog.provider_for(api_id) == provider
    assert (by_name.input_per_mtok, by_name.output_per_mtok) == (inp, out)
    assert by_name.context_window == window
    assert 0 < by_name.max_output_tokens <= by_name.context_window


def test_gpt5_family_has_the_documented_output_cap(catalog: Catalog) -> None:
    assert catalog.resolve("gpt-5").max_output_tokens == 128_000
    assert catalog.resolve("gpt-5-mini").max_output_tokens == 128_000
    assert catalog.resolve("gpt-6.2-sol").max_output_tokens == 128_000


def test_anthropic_latest_aliases_resolve(catalog: Catalog) -> None:
    assert catalog.resolve("claude-3-5-sonnet-latest").name == "claude-3-5-sonnet"
    assert catalog.resolve("claude-3-5-haiku-latest").name == "claude-3-5-haiku"


def test_both_sonnet_snapshots_are_distinct_entries(catalog: Catalog) -> None:
    assert catalog.resolve("claude-3-5-sonnet-20241022").name == "claude-3-5-sonnet"
    assert catalog.resolve("claude-3-5-sonnet-20240620").name == "claude-3-5-sonnet-20240620"


def test_no_alias_points_at_two_models() -> None:
    catalog = Catalog.load()
    seen: dict[str, str] = {}
    for info in catalog.models.values():
        for key in {info.name, info.api_id, *info.aliases}:
            assert seen.setdefault(key, info.name) == info.name, key


def test_unknown_model_error_names_the_model(catalog: Catalog) -> None:
    with pytest.raises(UnknownModelError) as info:
        catalog.resolve("gpt-7-ultra")
    assert "gpt-7-ultra" in info.value.message
    assert info.value.data == {"field": "model", "model": "gpt-7-ultra"}
    with pytest.raises(UnknownModelError):
        catalog.provider_for("gpt-7-ultra")


def test_get_returns_none_for_an_unknown_model(catalog: Catalog) -> None:
    assert catalog.get("nope") is None
    assert catalog.get("gpt-4.1-2025-04-14") is catalog.models["gpt-4.1"]


def test_by_tier_partitions_the_chat_models(catalog: Catalog) -> None:
    names = [m.name for tier in TIERS for m in catalog.by_tier(tier)]
    assert sorted(names) == sorted(m.name for m in catalog.models.values() if m.kind == "chat")
    assert all(m.tier == "premium" for m in catalog.by_tier("premium"))


def test_default_tier_preferences_name_live_models_of_that_tier(catalog: Catalog) -> None:
    for tier, names in DEFAULT_TIER_MODELS.items():
        assert all(catalog.resolve(name).tier == tier for name in names), tier
        assert all(catalog.resolve(name).lifecycle(READ_ON) == "live" for name in names), tier


def test_default_allowed_models_are_the_live_models_of_the_packaged_catalog(catalog: Catalog) -> None:
    live = [m.name for m in catalog.models.values() if m.lifecycle(READ_ON) == "live"]
    assert sorted(DEFAULT_ALLOWED_MODELS) == sorted(live)


def test_catalog_covers_every_provider_and_tier(catalog: Catalog) -> None:
    assert {m.provider for m in catalog.models.values()} == set(PROVIDERS)
    assert all(catalog.by_tier(tier) for tier in TIERS)


def test_public_view_of_a_model(catalog: Catalog) -> None:
    assert catalog.resolve("gpt-4.1").public(READ_ON) == {
        "id": "gpt-4.1",
        "provider": "openai",
        "kind": "chat",
        "api_id": "gpt-4.1-2025-04-14",
        "aliases": ["gpt-4.1-2025-04-14"],
        "tier": "balanced",
        "input_per_mtok": 2.0,
        "cached_input_per_mtok": 0.5,
        "output_per_mtok": 8.0,
        "context_window": 1_047_576,
        "max_output_tokens": 32_768,
        "lifecycle": "deprecated",
        "deprecated_on": "2026-10-14",
        "retires_on": "2027-01-14",
        "successor": "gpt-6.1-sol",
        "served": False,
        "capabilities": {
            "tools": True, "vision": True, "documents": True, "json_schema": True, "reasoning": False,
        },
    }  # fmt: skip
    assert set(catalog.resolve("gpt-4.1").capabilities()) == set(CAPABILITIES)


# Cost


def test_cost_at_list_prices(catalog: Catalog) -> None:
    assert catalog.resolve("gpt-4.1").cost(1_000, 500) == pytest.approx(0.006)
    assert catalog.resolve("claude-3-5-haiku").cost(1_000_000, 1_000_000) == pytest.approx(4.80)
    assert catalog.resolve("gemini-1.5-flash").cost(0, 0) == 0.0


def test_cached_prompt_tokens_are_billed_at_the_cached_input_price(catalog: Catalog) -> None:
    sol = catalog.resolve("gpt-6.2-sol")  # $2 in, $0.10 cached, $10 out
    # 10,000 prompt tokens of which 8,000 were read from the cache, and 1,000 completion tokens.
    assert sol.cost(10_000, 1_000, cached_prompt_tokens=8_000) == pytest.approx(
        (2_000 * 2.00 + 8_000 * 0.10 + 1_000 * 10.00) / 1e6
    )
    assert sol.cost(10_000, 1_000, cached_prompt_tokens=8_000) == pytest.approx(0.0148)
    assert sol.cost(10_000, 1_000) == pytest.approx(0.03)
    # Past 272K input tokens, the long-context rates apply to cached tokens too ($0.20).
    assert sol.cost(300_000, 0, cached_prompt_tokens=100_000) == pytest.approx(
        (200_000 * 4.00 + 100_000 * 0.20) / 1e6
    )
    haiku = catalog.resolve("claude-haiku-5-5")
    assert haiku.cost(50_000, 0, cached_prompt_tokens=50_000) == pytest.approx(50_000 * 0.01 / 1e6)
    # The batch discount applies to the cached part as well.
    assert sol.cost(10_000, 1_000, cached_prompt_tokens=8_000, discount=0.5) == pytest.approx(0.0074)


def test_cached_tokens_cost_the_input_price_where_no_cached_price_is_known(catalog: Catalog) -> None:
    terra = catalog.resolve("gpt-6.1-terra")
    assert terra.cached_input_per_mtok is None
    assert terra.cost(10_000, 0, cached_prompt_tokens=10_000) == terra.cost(10_000, 0) == pytest.approx(0.01)
    # More cached tokens than prompt tokens (a provider's miscount) never bills below zero.
    assert catalog.resolve("gpt-6.2-sol").cost(100, 0, cached_prompt_tokens=500) == pytest.approx(100 * 0.10 / 1e6)


def test_batch_discount_halves_the_cost(catalog: Catalog) -> None:
    info = catalog.resolve("gpt-5")
    full = info.cost(10_000, 2_000)
    assert full == pytest.approx(0.0325)
    assert info.cost(10_000, 2_000, discount=catalog.batch_discount) == pytest.approx(full / 2)


def test_long_context_prices_apply_only_past_the_threshold(catalog: Catalog) -> None:
    pro = catalog.resolve("gemini-1.5-pro")
    assert pro.long_context_threshold == 128_000
    assert pro.cost(128_000, 1_000) == pytest.approx((128_000 * 1.25 + 1_000 * 5.00) / 1e6)
    assert pro.cost(128_001, 1_000) == pytest.approx((128_001 * 2.50 + 1_000 * 10.00) / 1e6)
    flash = catalog.resolve("gemini-1.5-flash")
    assert flash.cost(200_000, 0) == pytest.approx(200_000 * 0.15 / 1e6)
    assert flash.cost(200_000, 0, discount=0.5) == pytest.approx(200_000 * 0.15 / 2e6)


def test_models_without_a_threshold_keep_one_price(catalog: Catalog) -> None:
    info = catalog.resolve("gpt-4.1")
    assert info.long_context_threshold is None
    assert info.cost(1_000_000, 0) == pytest.approx(2.0)


def test_long_context_falls_back_to_the_standard_price_where_no_long_price_is_set() -> None:
    entry = {**MINIMAL_ENTRY, "long_context_threshold": 10, "input_per_mtok_long": 3.0}
    info = Catalog.from_dict({"models": {"custom": entry}}).resolve("custom")
    assert info.cost(1_000_000, 1_000_000) == pytest.approx(3.0 + 2.0)


def test_override_file_merges_field_by_field(tmp_path: Path) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text(
        'prices_as_of = "2027-01-01"\n'
        "batch_discount = 0.4\n"
        '[models."gpt-4.1"]\n'
        "input_per_mtok = 1.5\n"
        'aliases = ["gpt-4.1-2025-04-14", "house-default"]\n'
        '[models."custom-model"]\n'
        'provider = "gemini"\n'
        'api_id = "custom-model-001"\n'
        "input_per_mtok = 0.01\n"
        "output_per_mtok = 0.02\n"
        "context_window = 32000\n"
        "max_output_tokens = 4096\n"
        'tier = "fast"\n',
        encoding="utf-8",
    )
    merged = Catalog.load(override)
    gpt = merged.resolve("house-default")
    assert gpt.name == "gpt-4.1"
    assert gpt.input_per_mtok == 1.5
    assert (gpt.output_per_mtok, gpt.api_id, gpt.context_window, gpt.tier) == (
        8.0,
        "gpt-4.1-2025-04-14",
        1_047_576,
        "balanced",
    )
    assert merged.resolve("custom-model-001").provider == "gemini"
    assert (merged.prices_as_of, merged.batch_discount) == ("2027-01-01", 0.4)
    assert merged.resolve("claude-3-5-haiku") == Catalog.load().resolve("claude-3-5-haiku")


def test_override_file_may_mark_a_retired_model_served(tmp_path: Path) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text('[models."claude-3-5-sonnet"]\nserved = true\n', encoding="utf-8")
    info = Catalog.load(override).resolve("claude-3-5-sonnet")
    assert (info.served, info.lifecycle(READ_ON), info.successor) == (True, "retired", "claude-sonnet-5-5")
    assert info.public(READ_ON)["served"] is True


def test_override_file_may_set_only_models(tmp_path: Path) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text('[models."gpt-5"]\noutput_per_mtok = 9.0\n', encoding="utf-8")
    merged = Catalog.load(str(override))
    assert merged.resolve("gpt-5").output_per_mtok == 9.0
    assert merged.batch_discount == 0.5
    assert merged.prices_as_of == Catalog.load().prices_as_of


def test_override_entry_with_an_unknown_field_is_refused(tmp_path: Path) -> None:
    override = tmp_path / "catalog.toml"
    override.write_text('[models."gpt-5"]\nprice = 9.0\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"gpt-5.*price"):
        Catalog.load(override)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "unknown fields"),
        ({"name": "x"}, "unknown fields"),
        ({"provider": "mistral"}, "provider"),
        ({"provider": None}, "provider"),
        ({"tier": "cheap"}, "tier"),
        ({"kind": "image"}, "kind"),
        ({"tools": "yes"}, "tools"),
        ({"served": 1}, "served"),
        ({"retires_on": "soon"}, "retires_on"),
        ({"deprecated_on": 20260101}, "deprecated_on"),
        ({"successor": "nowhere"}, "successor"),
        ({"cached_input_per_mtok": "cheap"}, "cached_input_per_mtok"),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(change: dict[str, Any], message: str) -> None:
    entry = {k: v for k, v in {**MINIMAL_ENTRY, **change}.items() if v is not None}
    with pytest.raises(ValueError, match=message) as info:
        Catalog.from_dict({"models": {"custom": entry}})
    assert "custom" in str(info.value)


def test_entry_missing_a_required_field_is_refused_naming_the_entry() -> None:
    entry = {k: v for k, v in MINIMAL_ENTRY.items() if k != "api_id"}
    with pytest.raises(ValueError, match="custom"):
        Catalog.from_dict({"models": {"custom": entry}})


def test_entry_with_a_non_numeric_price_is_refused() -> None:
    entry = {**MINIMAL_ENTRY, "input_per_mtok": "cheap"}
    with pytest.raises(ValueError, match="custom"):
        Catalog.from_dict({"models": {"custom": entry}})


def test_from_dict_defaults() -> None:
    catalog = Catalog.from_dict({})
    assert catalog.models == {}
    assert (catalog.prices_as_of, catalog.batch_discount) == ("", 0.5)


def test_aliases_are_stored_as_a_tuple() -> None:
    entry = {**MINIMAL_ENTRY, "aliases": ["c1", "c2"]}
    info = Catalog.from_dict({"models": {"custom": entry}}).resolve("c2")
    assert isinstance(info, ModelInfo)
    assert info.aliases == ("c1", "c2")
