"""Settings read from the environment: names, parsing, defaults, and secrets that never print."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import AliasChoices, SecretStr, ValidationError

from llmrelay.shared.catalog import Provider
from llmrelay.shared.settings import DEFAULT_ALLOWED_MODELS, DEFAULT_TIER_MODELS, RateLimit, Settings

OPENAI_KEY = "sk-proj-canaryOPENAIcanary0123456789abcdef"
ANTHROPIC_KEY = "sk-ant-api03-canaryANTHROPICcanary0123456789"
GEMINI_KEY = "AIzaSyCanaryGEMINIcanary0123456789abcdefg"
API_TOKEN = "facade-token-canary-42"
REDIS_PASSWORD = "redis-pw-canary-77"


def env_names() -> set[str]:
    names: set[str] = set()
    for field in Settings.model_fields.values():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(str(choice) for choice in alias.choices)
    return names


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the developer's shell exports must not leak into these tests."""
    for name in env_names():
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def load() -> Settings:
    return Settings(_env_file=None)


def test_documented_environment_names_are_read() -> None:
    assert {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GEMINI_API_KEY",
        "OPENAI_BASE_URL",
        "ANTHROPIC_BASE_URL",
        "GEMINI_BASE_URL",
        "ALLOWED_MODELS",
        "LLM_DEFAULT_MODEL",
        "LLM_REQUEST_TIMEOUT",
        "LLM_MAX_RETRIES",
        "REDIS_URL",
        "LLMRELAY_API_TOKEN",
    } <= env_names()


def test_defaults_without_environment() -> None:
    settings = load()
    assert settings.request_timeout == 60.0
    assert settings.max_retries == 3
    assert settings.allowed_models == []
    assert settings.effective_allowed_models == DEFAULT_ALLOWED_MODELS
    assert settings.redis_url.startswith("redis://")
    assert all(settings.api_key(p) is None for p in ("openai", "anthropic", "gemini"))
    assert all(settings.base_url(p) is None for p in ("openai", "anthropic", "gemini"))
    assert settings.api_token is None
    assert settings.rate_limits == {}
    assert settings.failover == {}
    assert settings.tier_models == DEFAULT_TIER_MODELS
    assert settings.default_model == "gpt-6-luna"
    assert settings.secret_values() == []


def test_environment_values_are_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_DEFAULT_MODEL", "gemini-3.8-flash")
    monkeypatch.setenv("LLM_REQUEST_TIMEOUT", "12.5")
    monkeypatch.setenv("LLM_MAX_RETRIES", "0")
    monkeypatch.setenv("REDIS_URL", "rediss://cache.internal:6380/2")
    monkeypatch.setenv("LLMRELAY_LOG_FORMAT", "json")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8900/v1")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:8900")
    monkeypatch.setenv("GEMINI_BASE_URL", "")
    settings = load()
    assert settings.default_model == "gemini-3.8-flash"
    assert settings.request_timeout == 12.5
    assert settings.max_retries == 0
    assert settings.redis_url == "rediss://cache.internal:6380/2"
    assert settings.log_format == "json"
    assert settings.base_url("openai") == "http://127.0.0.1:8900/v1"
    assert settings.base_url("anthropic") == "http://127.0.0.1:8900"
    assert settings.base_url("gemini") is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LLM_REQUEST_TIMEOUT", "0"),
        ("LLM_REQUEST_TIMEOUT", "soon"),
        ("LLM_MAX_RETRIES", "-1"),
        ("LLM_MAX_RETRIES", "21"),
        ("LLMRELAY_LOG_FORMAT", "xml"),
        ("LLMRELAY_API_PORT", "70000"),
        ("LLMRELAY_BATCH_MAX_SHARE", "1.5"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        load()


def test_allowed_models_is_a_comma_list_ignoring_spaces_and_empties(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", " gpt-6.1-terra ,, gemini-3.8-flash,claude-haiku-5-5 , ")
    settings = load()
    assert settings.allowed_models == ["gpt-6.1-terra", "gemini-3.8-flash", "claude-haiku-5-5"]
    assert settings.effective_allowed_models == ("gpt-6.1-terra", "gemini-3.8-flash", "claude-haiku-5-5")


@pytest.mark.parametrize("value", ["", " ", ",", " , ,"])
def test_empty_allowed_models_means_the_defaults(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("ALLOWED_MODELS", value)
    settings = load()
    assert settings.allowed_models == []
    assert settings.effective_allowed_models == DEFAULT_ALLOWED_MODELS


def test_allowed_models_may_be_passed_as_a_list() -> None:
    settings = Settings(_env_file=None, allowed_models=["gpt-6.1-sol"])
    assert settings.effective_allowed_models == ("gpt-6.1-sol",)


def test_keys_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("LLMRELAY_API_TOKEN", API_TOKEN)
    settings = load()
    expected: list[tuple[Provider, str]] = [
        ("openai", OPENAI_KEY),
        ("anthropic", ANTHROPIC_KEY),
        ("gemini", GEMINI_KEY),
    ]
    for provider, key in expected:
        secret = settings.api_key(provider)
        assert isinstance(secret, SecretStr)
        assert secret.get_secret_value() == key
    assert isinstance(settings.api_token, SecretStr)


def test_keys_never_appear_when_settings_are_printed_or_dumped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("LLMRELAY_API_TOKEN", API_TOKEN)
    settings = load()
    renderings = [repr(settings), str(settings), settings.model_dump_json(), str(settings.model_dump())]
    for text in renderings:
        for key in (OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, API_TOKEN):
            assert key not in text
    assert "**********" in settings.model_dump_json()


def test_google_api_key_is_read_as_the_gemini_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", GEMINI_KEY)
    secret = load().api_key("gemini")
    assert secret is not None
    assert secret.get_secret_value() == GEMINI_KEY


def test_gemini_api_key_wins_over_google_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOOGLE_API_KEY", "AIza-the-other-one")
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    secret = load().api_key("gemini")
    assert secret is not None
    assert secret.get_secret_value() == GEMINI_KEY


def test_rate_limits_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "LLMRELAY_RATE_LIMITS", '{"openai": {"rpm": 500, "tpm": 200000}, "gpt-6.1-terra": {"tpm": 30000}}'
    )
    limits = load().rate_limits
    assert limits == {"openai": RateLimit(rpm=500, tpm=200_000), "gpt-6.1-terra": RateLimit(tpm=30_000)}
    assert limits["gpt-6.1-terra"].rpm is None


@pytest.mark.parametrize(
    "value",
    ['{"openai": {"rpm": 0}}', '{"openai": {"rpm": -5}}', '{"openai": {"burst": 3}}', "not json"],
)
def test_bad_rate_limits_are_refused(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LLMRELAY_RATE_LIMITS", value)
    with pytest.raises((ValidationError, ValueError)):
        load()


def test_failover_chains_are_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_FAILOVER", '{"gpt-6.1-terra": ["gemini-2.5-flash-lite", "claude-sonnet-5-5"]}')
    assert load().failover == {"gpt-6.1-terra": ["gemini-2.5-flash-lite", "claude-sonnet-5-5"]}


def test_tier_models_are_json_and_unset_tiers_keep_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMRELAY_TIER_MODELS", '{"fast": ["claude-haiku-5-5"]}')
    settings = load()
    assert settings.tier_preference("fast") == ["claude-haiku-5-5"]
    assert settings.tier_preference("premium") == DEFAULT_TIER_MODELS["premium"]


def test_tier_preference_is_a_copy() -> None:
    settings = load()
    settings.tier_preference("fast").append("mutated")
    assert "mutated" not in settings.tier_preference("fast")


def test_field_names_are_accepted_as_arguments() -> None:
    settings = Settings(
        _env_file=None, openai_api_key=OPENAI_KEY, default_model="gpt-6.1-sol", log_format="console"
    )
    assert settings.default_model == "gpt-6.1-sol"
    assert settings.log_format == "console"
    secret = settings.api_key("openai")
    assert secret is not None
    assert secret.get_secret_value() == OPENAI_KEY


def test_dotenv_file_is_read(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"OPENAI_API_KEY={OPENAI_KEY}\nALLOWED_MODELS=gpt-6.1-terra,gpt-6.1-sol\n", encoding="utf-8")
    settings = Settings(_env_file=env_file)
    assert settings.effective_allowed_models == ("gpt-6.1-terra", "gpt-6.1-sol")
    secret = settings.api_key("openai")
    assert secret is not None
    assert secret.get_secret_value() == OPENAI_KEY


def test_environment_wins_over_dotenv_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LLM_DEFAULT_MODEL=gpt-6.1-sol\n", encoding="utf-8")
    monkeypatch.setenv("LLM_DEFAULT_MODEL", "gpt-6.1-terra")
    assert Settings(_env_file=env_file).default_model == "gpt-6.1-terra"


def test_secret_values_include_keys_token_and_redis_password(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("ANTHROPIC_API_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.setenv("LLMRELAY_API_TOKEN", API_TOKEN)
    monkeypatch.setenv("REDIS_URL", f"rediss://default:{REDIS_PASSWORD}@cache.internal:6380/0")
    assert sorted(load().secret_values()) == sorted(
        [OPENAI_KEY, ANTHROPIC_KEY, GEMINI_KEY, API_TOKEN, REDIS_PASSWORD]
    )


def test_secret_values_skip_empty_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "")
    assert load().secret_values() == []


def test_redis_password_without_user_is_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", f"redis://:{REDIS_PASSWORD}@127.0.0.1:6379/0")
    assert load().secret_values() == [REDIS_PASSWORD]


def test_percent_encoded_redis_password_is_a_secret_as_redis_receives_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # redis-py unquotes the URL's password before sending it to the server.
    monkeypatch.setenv("REDIS_URL", "redis://:p%40ss%2Fw0rd@127.0.0.1:6379/0")
    assert "p@ss/w0rd" in load().secret_values()


@pytest.mark.parametrize(
    "url",
    ["redis://127.0.0.1:6379/0", "redis://user@127.0.0.1:6379", "redis://[::1:6379", "unix:///tmp/r.sock"],
)
def test_urls_without_a_password_add_no_secret(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("REDIS_URL", url)
    assert load().secret_values() == []


def test_catalog_is_loaded_from_the_configured_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    override = tmp_path / "prices.toml"
    override.write_text('[models."gpt-6.1-terra"]\ninput_per_mtok = 1.75\n', encoding="utf-8")
    monkeypatch.setenv("LLMRELAY_CATALOG_FILE", str(override))
    settings = load()
    assert settings.catalog_file == override
    assert settings.catalog.resolve("gpt-6.1-terra").input_per_mtok == 1.75
    assert settings.catalog is settings.catalog


def test_packaged_catalog_without_a_file() -> None:
    assert load().catalog.resolve("gpt-6.1-terra").input_per_mtok == 1.0


def test_the_redis_password_never_prints() -> None:
    settings = Settings(_env_file=None, REDIS_URL="redis://:hunter2-secret@cache:6379/0")  # type: ignore[call-arg]
    assert "hunter2-secret" not in repr(settings)
    assert "hunter2-secret" not in str(settings)
    assert settings.redis_url.endswith("@cache:6379/0")  # the value itself is intact for the client
