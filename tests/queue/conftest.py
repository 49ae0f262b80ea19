"""Fixtures for the queue: the simulator, settings pointing at it, in-process and subprocess workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis

from llmrelay.producer import LLMProducer
from llmrelay.shared import Settings, keys
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import poll  # noqa: F401 - re-exported for the tests of this package

ROOT = Path(__file__).resolve().parents[2]

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
    """The environment a worker process of these tests runs with."""
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


def rdb(url: str) -> redis.Redis:
    return redis.Redis.from_url(url)


class WorkerProcess:
    """A `python -m llmrelay.worker` subprocess, for the tests that kill or signal a worker."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        full_env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "ANTHROPIC", "GEMINI"))
        }
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llmrelay.worker", *args],
            cwd=ROOT,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        self.url = env["REDIS_URL"]

    def wait_ready(self, timeout: float = 20.0) -> None:
        client = rdb(self.url)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early: {self.stderr()}")
            for member in client.zrange(keys.WORKERS_REGISTRY, 0, -1):
                info = client.get(keys.worker_heartbeat(member.decode()))
                if info and f'"pid":{self.proc.pid}'.encode() in info:
                    return
            time.sleep(0.05)
        raise TimeoutError("worker did not register")

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def stderr(self) -> str:
        if self.proc.stderr is None:
            return ""
        if self.proc.poll() is None:
            return ""
        return self.proc.stderr.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


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
