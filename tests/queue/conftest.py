"""Fixtures for the queue: the simulator, settings pointing at it, in-process and subprocess workers."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import WorkerProcess

KEYS = {
    "OPENAI_API_KEY": "sk-test-queue-0000000000000000",
    "ANTHROPIC_API_KEY": "sk-ant-test-queue-000000000000",
    "GEMINI_API_KEY": "AIzaTestQueue000000000000000000000000000",
}


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def env(sim: SimulatorServer, redis_url: str) -> dict[str, str]:
    """The environment a worker process of these tests runs with.

    The lease is short so that the tests of reclaim (a killed worker's jobs) end quickly. Leases are
    renewed from a thread of the worker's own, so a slow worker keeps its jobs, but a process the
    machine leaves wholly unscheduled for a lease loses them to another worker: tests that run many
    jobs on several workers without meaning to test reclaim give those workers
    ``tests.support.DEFAULT_LEASE`` instead.
    """
    sim.reset()
    return {
        **KEYS,
        "REDIS_URL": redis_url,
        "OPENAI_BASE_URL": sim.openai_base_url,
        "ANTHROPIC_BASE_URL": sim.anthropic_base_url,
        "GEMINI_BASE_URL": sim.gemini_base_url,
        "LLMRELAY_LEASE_SECONDS": "1.0",
        "LLMRELAY_BACKOFF_BASE": "0.05",
        "LLMRELAY_BACKOFF_MAX": "0.5",
        "LLMRELAY_SHUTDOWN_GRACE": "10",
        "LLMRELAY_LOG_FORMAT": "json",
    }


@pytest.fixture
def settings(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **env)  # type: ignore[arg-type]


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[LLMProducer]:
    async with LLMProducer(settings) as p:
        yield p


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(settings, concurrency=64)
    await w.start()
    yield w
    await w.stop(grace=5)


@pytest.fixture
def spawn(env: dict[str, str]) -> Iterator[Callable[..., WorkerProcess]]:
    procs: list[WorkerProcess] = []

    def start(*args: str, **extra_env: str) -> WorkerProcess:
        wp = WorkerProcess({**env, **extra_env}, *args)
        procs.append(wp)
        wp.wait_ready()
        return wp

    yield start
    for wp in procs:
        wp.stop()
