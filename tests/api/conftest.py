"""Fixtures for the façade: the simulator, settings against it, an in-process worker, and the app served
in-process (ASGI transport) or by uvicorn on a free port (for streams, disconnects and the openai SDK)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx2
import pytest
import uvicorn
from api_support import KEYS
from starlette.applications import Starlette

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.shared import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker


@pytest.fixture(scope="session")
def sim() -> Iterator[SimulatorServer]:
    with SimulatorServer() as server:
        yield server


@pytest.fixture
def make_settings(sim: SimulatorServer, redis_url: str) -> Callable[..., Settings]:
    sim.reset()

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            **KEYS,
            "REDIS_URL": redis_url,
            "OPENAI_BASE_URL": sim.openai_base_url,
            "ANTHROPIC_BASE_URL": sim.anthropic_base_url,
            "GEMINI_BASE_URL": sim.gemini_base_url,
            "LLM_MAX_RETRIES": 0,
            "LLMRELAY_LEASE_SECONDS": 2.0,
            "LLMRELAY_HTTP_POOL_SIZE": 8,
            "LLMRELAY_LOG_FORMAT": "json",
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Worker]:
    w = Worker(settings, concurrency=32)
    await w.start()
    yield w
    await w.stop(grace=2)


@pytest.fixture
async def producer(settings: Settings) -> AsyncIterator[LLMProducer]:
    async with LLMProducer(settings) as p:
        yield p


@pytest.fixture
async def client(settings: Settings, producer: LLMProducer) -> AsyncIterator[httpx2.AsyncClient]:
    """The app in-process over an ASGI transport (responses are buffered: no live streams here)."""
    app = create_app(settings, producer=producer)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as c:
        yield c


@dataclass
class LiveServer:
    app: Starlette
    server: uvicorn.Server
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **kwargs: Any) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(base_url=self.url, timeout=20, **kwargs)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[LiveServer]]]:
    """Serve ``create_app(settings, ...)`` with uvicorn on a free loopback port, lifespan included."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(settings: Settings, **kwargs: Any) -> LiveServer:
        app = create_app(settings, **kwargs)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(
            app,
            http="httptools",
            lifespan="on",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        task = asyncio.create_task(server.serve(sockets=[sock]))
        running.append((server, task))
        deadline = time.monotonic() + 10
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the façade did not start")
            await asyncio.sleep(0.01)
        return LiveServer(app, server, sock.getsockname()[1])

    yield start
    for server, _task in running:
        server.should_exit = True
    for _server, task in running:
        await asyncio.wait_for(task, 10)
