"""At start a worker lists each provider's models with the official SDKs (against the simulator, in each
provider's wire format) and warns for every allowed catalog model the provider no longer serves; a
failure to list is logged and never stops the worker."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from provider_test_support import sim_settings_for
from structlog.testing import capture_logs

from llmrelay.shared.errors import AuthenticationError, ProviderUnavailableError
from llmrelay.shared.governance import Governance
from llmrelay.shared.settings import Settings
from llmrelay.simulator import models as simulated
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderAdapter
from llmrelay.worker.served_models import check_served_models
from llmrelay.worker.service import Worker
from tests.support import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL, poll

GHOST_ROW = """
[models."gpt-ghost"]
provider = "openai"
api_id = "gpt-ghost-2026-01-01"
input_per_mtok = 1.0
output_per_mtok = 2.0
context_window = 1000
max_output_tokens = 100
tier = "fast"
"""
MISSING = "an allowed catalog model is not among the models the provider serves"


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("provider", "expected"),
    [
        ("openai", set(simulated.OPENAI_MODELS)),
        ("anthropic", set(simulated.ANTHROPIC_MODELS)),
        ("gemini", set(simulated.GEMINI_MODELS)),
    ],
)
async def test_each_adapter_lists_the_provider_models_with_its_sdk(
    make_adapter: Callable[..., ProviderAdapter], sim: SimulatorServer, provider: str, expected: set[str]
) -> None:
    listed = await make_adapter(provider).served_models()
    assert listed == expected
    assert {OPENAI_MODEL, ANTHROPIC_MODEL, GEMINI_MODEL} & listed  # the live test models are listed


async def test_listing_without_a_key_or_a_reachable_provider_is_a_shared_error(
    make_adapter: Callable[..., ProviderAdapter], sim: SimulatorServer
) -> None:
    keyless = Settings(_env_file=None, OPENAI_BASE_URL=sim.openai_base_url)  # type: ignore[call-arg]
    with pytest.raises(AuthenticationError):
        await make_adapter("openai", keyless).served_models()
    unreachable = sim_settings_for(sim, ANTHROPIC_BASE_URL=_closed_port_url(), LLM_REQUEST_TIMEOUT=5)
    with pytest.raises(ProviderUnavailableError):
        await make_adapter("anthropic", unreachable).served_models()


async def test_allowed_models_the_provider_does_not_list_are_warned_about(
    make_adapter: Callable[..., ProviderAdapter], sim: SimulatorServer, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(GHOST_ROW, encoding="utf-8")
    settings = sim_settings_for(
        sim,
        LLMRELAY_CATALOG_FILE=str(catalog),
        ALLOWED_MODELS=f"gpt-ghost,{OPENAI_MODEL},{ANTHROPIC_MODEL},{GEMINI_MODEL}",
        GEMINI_BASE_URL=_closed_port_url(),
        LLM_REQUEST_TIMEOUT=5,
    )
    adapters: dict[str, ProviderAdapter] = {}

    def adapter_for(provider: str) -> ProviderAdapter:
        return adapters.setdefault(provider, make_adapter(provider, settings))

    with capture_logs() as logs:
        await check_served_models(
            settings, Governance.from_settings(settings), adapter_for, ["openai", "anthropic", "gemini"]
        )
    missing = [(e["provider"], e["model"], e["api_id"]) for e in logs if e["event"] == MISSING]
    assert missing == [("openai", "gpt-ghost", "gpt-ghost-2026-01-01")]
    failed = [e for e in logs if e["event"] == "could not list the provider's models"]
    assert [e["provider"] for e in failed] == ["gemini"]
    assert all(e["log_level"] == "warning" for e in logs)


async def test_providers_without_a_key_are_not_listed(sim: SimulatorServer) -> None:
    settings = sim_settings_for(sim, OPENAI_API_KEY="", ANTHROPIC_API_KEY="", GEMINI_API_KEY="")
    asked: list[str] = []

    def adapter_for(provider: str) -> Any:
        asked.append(provider)
        raise AssertionError("no adapter is needed for a provider without a key")

    with capture_logs() as logs:
        await check_served_models(settings, Governance.from_settings(settings), adapter_for, ["openai"])
    assert (asked, logs) == ([], [])


async def test_a_worker_warns_at_start_and_keeps_working_when_listing_fails(
    sim: SimulatorServer, redis_url: str, tmp_path: Path
) -> None:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(GHOST_ROW, encoding="utf-8")
    settings = sim_settings_for(
        sim,
        REDIS_URL=redis_url,
        LLMRELAY_CATALOG_FILE=str(catalog),
        ALLOWED_MODELS=f"gpt-ghost,{OPENAI_MODEL},{GEMINI_MODEL}",
        GEMINI_BASE_URL=_closed_port_url(),
        LLM_REQUEST_TIMEOUT=5,
    )
    worker = Worker(settings, providers=["openai", "gemini"], concurrency=2)
    with capture_logs() as logs:
        await worker.start()
        try:

            def events(name: str) -> list[dict[str, Any]]:
                return [e for e in logs if e["event"] == name]

            await poll(lambda: events(MISSING) and events("could not list the provider's models"), timeout=30)
            assert [e["model"] for e in events(MISSING)] == ["gpt-ghost"]
            assert not any(t.done() for t in worker._tasks if t.get_name().startswith("consume-"))
        finally:
            await worker.stop(grace=1)
