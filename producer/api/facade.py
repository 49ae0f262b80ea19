"""The façade's shared state: its producer and its lifecycle, metrics, open streams, JSON-RPC dispatcher.

The route modules (``routes_jsonrpc``, ``routes_openai``, ``routes_operations``) hold the handlers and
read everything they share from one :class:`Facade`. A producer the façade created is started by the
app's lifespan, or by the first request where lifespans do not run; one passed in is the caller's.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.routing import Route

from llmrelay.producer.api.guard import CALLER_KEY
from llmrelay.producer.api.jsonrpc import Dispatcher
from llmrelay.producer.api.methods import METHODS, POSITIONAL, STREAMING, Context
from llmrelay.producer.api.streams import StreamRegistry
from llmrelay.producer.api.telemetry import ApiMetrics
from llmrelay.producer.sdk import LLMProducer
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.redaction import register_secrets
from llmrelay.shared.settings import Settings

log = structlog.get_logger("llmrelay.api")

A2A_HEADERS = {b"x-trace-id": "trace_id", b"x-source-agent": "source_agent", b"x-session-id": "session_id"}


class Facade:
    """What every route of one app shares; ``create_app`` builds one and hands it to the route modules."""

    def __init__(self, settings: Settings, producer: LLMProducer | None = None) -> None:
        self.settings = settings
        self.owns_producer = producer is None
        self.producer = producer if producer is not None else LLMProducer(settings)
        self.metrics = ApiMetrics()
        self.streams = StreamRegistry(
            settings.max_streams_per_caller, self.producer.cancel, lambda: self.producer.redis
        )
        self.dispatcher = Dispatcher(
            METHODS, positional=POSITIONAL, streaming=STREAMING, observer=self.metrics.observe_call
        )
        self._started = not self.owns_producer
        self._start_lock = asyncio.Lock()
        register_secrets(settings.secret_values())

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.ensure_started()
        try:
            yield
        finally:
            await self.aclose()

    async def ensure_started(self) -> bool:
        """Start the producer if it is ours and not started; False when Redis does not answer."""
        if self._started:
            return True
        async with self._start_lock:
            if not self._started:
                try:
                    await self.producer.start()
                except LLMRelayError as err:
                    log.warning(
                        "the producer could not start; retrying on the next request", error=err.message
                    )
                    return False
                self._started = True
        return True

    async def aclose(self) -> None:
        await self.streams.aclose()
        # Under the start lock and marked stopped before the producer closes: a request arriving
        # meanwhile waits, then starts it afresh, instead of using one that is being taken apart.
        async with self._start_lock:
            if self.owns_producer and self._started:
                self._started = False
                await self.producer.aclose()

    def context(self, request: Request, *, last_event_id: str | None = None) -> Context:
        """What a method runs with for this HTTP request: its caller and the A2A context of its headers."""
        a2a: dict[str, str] = {}
        for name, value in request.scope["headers"]:
            field = A2A_HEADERS.get(name)
            if field is not None:
                a2a[field] = bytes(value).decode("latin-1")
        return Context(
            producer=self.producer,
            settings=self.settings,
            caller=request.scope.get(CALLER_KEY, "unknown"),
            a2a=a2a,
            last_event_id=last_event_id,
            facade=self.metrics,
        )


class RouteGroup(ABC):
    """The handlers of one route module, bound to the façade they serve."""

    def __init__(self, facade: Facade) -> None:
        self.facade = facade

    @abstractmethod
    def routes(self) -> list[Route]:
        """The routes this module serves."""


__all__ = ["Facade", "RouteGroup"]
