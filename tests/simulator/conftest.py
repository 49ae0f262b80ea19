"""Fixtures: one simulator subprocess per test module, reset before each test, and the three official SDK
clients pointed at it (SDK retries off)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import anthropic
import httpx2
import openai
import pytest
from google import genai
from google.genai import types

from llmrelay.simulator import SimulatorServer

OPENAI_KEY = "sk-sim-openai-0123456789"
ANTHROPIC_KEY = "sk-ant-sim-0123456789"
GEMINI_KEY = "AIza-sim-gemini-0123456789"


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def sim(sim_server: SimulatorServer) -> SimulatorServer:
    """The module's simulator, with no recorded requests, no faults and the start configuration."""
    sim_server.reset()
    return sim_server


@pytest.fixture
async def openai_client(sim: SimulatorServer) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=sim.openai_base_url, api_key=OPENAI_KEY, max_retries=0, timeout=10)
    yield client
    await client.close()


@pytest.fixture
async def anthropic_client(sim: SimulatorServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    client = anthropic.AsyncAnthropic(
        base_url=sim.anthropic_base_url, api_key=ANTHROPIC_KEY, max_retries=0, timeout=10
    )
    yield client
    await client.close()


@pytest.fixture
async def genai_client(sim: SimulatorServer) -> AsyncIterator[genai.Client]:
    # The transport the worker gives the SDK: an httpx2 client of its own. Without one google-genai would
    # switch to aiohttp wherever aiohttp is installed (litellm, in the compat extra, brings it).
    transport = httpx2.AsyncClient(timeout=10)
    client = genai.Client(
        api_key=GEMINI_KEY,
        http_options=types.HttpOptions(
            base_url=sim.gemini_base_url, api_version="v1beta", timeout=10_000, httpx_async_client=transport
        ),
    )
    yield client
    await client.aio.aclose()
    await transport.aclose()
