"""Fixtures for the provider adapter tests: the simulator, settings against it, adapters."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest
from provider_test_support import sim_settings_for

from llmrelay.shared.settings import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ADAPTERS, ProviderAdapter


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        assert server.url.startswith("http://127.0.0.1:")
        yield server


@pytest.fixture
def sim_settings(sim: SimulatorServer) -> Settings:
    return sim_settings_for(sim)


@pytest.fixture
async def make_adapter(sim_settings: Settings) -> AsyncIterator[Callable[..., ProviderAdapter]]:
    """Builds adapters (against the simulator unless told otherwise) and closes them after the test."""
    built: list[ProviderAdapter] = []

    def make(provider: str, settings: Settings | None = None) -> ProviderAdapter:
        adapter: ProviderAdapter = ADAPTERS[provider](settings or sim_settings)
        built.append(adapter)
        return adapter

    yield make
    for adapter in built:
        await adapter.aclose()
