"""Running one worker process: uvloop, signal handling (SIGTERM/SIGINT drain), exit code 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable

from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.logging import configure_logging
from llmrelay.shared.settings import Settings
from llmrelay.worker.service import Worker


async def serve_worker(
    settings: Settings, providers: Iterable[str] = PROVIDERS, concurrency: int | None = None
) -> Worker:
    """Run a worker until SIGTERM or SIGINT, then drain it; returns the stopped worker."""
    worker = Worker(settings, providers=providers, concurrency=concurrency)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await worker.start()
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        await worker.stop()
    return worker


def run_worker(
    settings: Settings | None = None, providers: Iterable[str] = PROVIDERS, concurrency: int | None = None
) -> None:
    """The `llmrelay worker` entry point."""
    settings = settings or Settings()
    configure_logging(settings)
    try:
        import uvloop

        uvloop.run(serve_worker(settings, list(providers), concurrency))
    except ImportError:  # pragma: no cover - uvloop is a dependency on every supported platform
        asyncio.run(serve_worker(settings, list(providers), concurrency))
