"""The operations routes: `GET /metrics` (Prometheus text) and `GET /health`, read from Redis by admin."""

from __future__ import annotations

import orjson
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmrelay.producer.api import admin
from llmrelay.producer.api.facade import RouteGroup
from llmrelay.producer.api.methods import serving_providers
from llmrelay.producer.backend import REDIS_FAILURES
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.errors import LLMRelayError


class OperationsRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            Route("/metrics", self.prometheus, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]

    async def prometheus(self, request: Request) -> Response:
        """The façade's own metrics, the queues', and the live workers' merged; ``redis_up`` says if read."""
        facade = self.facade
        samples: admin.Samples | None = None
        try:
            if not await facade.ensure_started():
                raise ConnectionError("Redis is not reachable")
            redis = facade.producer.redis
            workers = await admin.live_workers(redis)
            stats = await admin.stream_stats(redis, PROVIDERS)
            samples = await admin.worker_samples(redis, [str(w["worker_id"]) for w in workers])
            facade.metrics.set_queues(stats, len(workers))
            facade.metrics.redis_up.set(1)
        except (*REDIS_FAILURES, LLMRelayError):
            # Scraped all the same: a scrape that fails says nothing about what is down.
            facade.metrics.redis_up.set(0)
        return Response(facade.metrics.render(samples), media_type=CONTENT_TYPE_LATEST)

    async def health(self, request: Request) -> Response:
        facade = self.facade
        if await facade.ensure_started():
            report = await admin.health(facade.producer.redis, serving_providers(facade.producer))
        else:
            report = {"status": "down", "redis": {"ok": False, "error": "BackendUnavailableError"}}
        report["facade"] = {
            "streams_inflight": facade.streams.inflight,
            "pending_cancels": len(facade.streams.pending()),
        }
        status = 503 if report["status"] == "down" else 200
        return Response(orjson.dumps(report), status_code=status, media_type="application/json")


__all__ = ["OperationsRoutes"]
