"""Cluster-wide rate limits (requests and tokens per minute, per provider and per model) in Redis.

Each check is one Lua script (GCRA: one key per limit holding its theoretical arrival time), so every
worker of the cluster draws on the same budget. Tokens are charged up front from an estimate and
reconciled with the provider's reported usage. A provider-wide pause key, set from a 429's retry-after
or from rate-limit headers that say the budget is spent, holds every worker back, not just the one that
was told. aiolimiter shapes each process locally so that one process alone never bursts past a limit.
"""

from __future__ import annotations

import asyncio
import time

import structlog
from aiolimiter import AsyncLimiter
from redis.asyncio import Redis

from llmrelay.shared import keys, scripts
from llmrelay.shared.catalog import ModelInfo
from llmrelay.shared.errors import RequestTimeoutError
from llmrelay.shared.metrics import WorkerMetrics
from llmrelay.shared.scripts import LuaScript
from llmrelay.shared.settings import RateLimit, Settings

log = structlog.get_logger("llmrelay.worker")

_MINUTE_MS = 60_000.0


class RateLimiter:
    """Admits provider attempts under the configured limits; ``acquire`` waits until admitted."""

    def __init__(self, redis: Redis, settings: Settings, metrics: WorkerMetrics | None = None) -> None:
        self._redis = redis
        self._limits = settings.rate_limits
        self._metrics = metrics
        self._acquire = LuaScript(scripts.ACQUIRE)
        self._reconcile = LuaScript(scripts.RECONCILE)
        self._pause = LuaScript(scripts.PAUSE)
        self._local: dict[str, AsyncLimiter] = {}

    def _scopes(self, model: ModelInfo) -> list[tuple[str, RateLimit]]:
        out = []
        provider_limit = self._limits.get(model.provider)
        if provider_limit is not None:
            out.append(("*", provider_limit))
        model_limit = self._limits.get(f"{model.provider}:{model.name}") or self._limits.get(model.name)
        if model_limit is not None:
            out.append((model.name, model_limit))
        return out

    def _local_limiter(self, provider: str, rpm: int) -> AsyncLimiter:
        limiter = self._local.get(provider)
        if limiter is None:
            # A one-second bucket: smooths a process's own bursts without holding back the cluster budget.
            limiter = AsyncLimiter(max(1.0, rpm / 60.0), 1.0)
            self._local[provider] = limiter
        return limiter

    def _plan(self, model: ModelInfo, tokens: int) -> tuple[list[str], list[float]]:
        limit_keys = [keys.pause(model.provider)]
        args: list[float] = []
        for scope, limit in self._scopes(model):
            if limit.rpm:
                interval = _MINUTE_MS / limit.rpm
                limit_keys.append(keys.rate(model.provider, scope, "rpm"))
                # Tolerate about one second's worth of requests at once.
                args += [interval, interval * max(0, limit.rpm // 60 - 1), 1]
            if limit.tpm:
                interval = _MINUTE_MS / limit.tpm
                limit_keys.append(keys.rate(model.provider, scope, "tpm"))
                args += [interval, interval * max(0, limit.tpm // 60 - 1), tokens]
        return limit_keys, args

    async def acquire(
        self, model: ModelInfo, tokens: int, deadline: float, paused_ms: int | None = None
    ) -> float:
        """Wait until the attempt is admitted; returns the seconds waited. Gives up at ``deadline``.

        ``paused_ms`` is the provider's pause as just read elsewhere (the BEGIN script): with no limit
        configured for the model, a zero needs no further round trip.
        """
        limit_keys, args = self._plan(model, tokens)
        if paused_ms == 0 and len(limit_keys) == 1:
            return 0.0
        provider_limit = self._limits.get(model.provider)
        if provider_limit is not None and provider_limit.rpm:
            await self._local_limiter(model.provider, provider_limit.rpm).acquire()
        waited = 0.0
        while True:
            wait_ms = await self._acquire(self._redis, limit_keys, [time.time() * 1000, *args])
            if not wait_ms:
                if waited and self._metrics is not None:
                    self._metrics.rate_limit_waits.labels(model.provider).inc()
                    self._metrics.rate_limit_wait_seconds.labels(model.provider).inc(waited)
                return waited
            delay = int(wait_ms) / 1000.0
            if time.time() + delay >= deadline:
                raise RequestTimeoutError(
                    f"the {model.provider} rate limit would hold this request past its deadline",
                    data={"provider": model.provider, "wait_seconds": round(delay, 3)},
                )
            await asyncio.sleep(delay)
            waited += delay

    async def reconcile(self, model: ModelInfo, estimated: int, actual: int) -> None:
        """Correct the token charge of an attempt with the usage the provider reported."""
        delta = actual - estimated
        if delta == 0:
            return
        token_keys: list[str] = []
        args: list[float] = [time.time() * 1000]
        for scope, limit in self._scopes(model):
            if limit.tpm:
                token_keys.append(keys.rate(model.provider, scope, "tpm"))
                args += [_MINUTE_MS / limit.tpm, delta]
        if token_keys:
            await self._reconcile(self._redis, token_keys, args)

    async def pause(self, provider: str, seconds: float, reason: str) -> None:
        """Hold every worker back from ``provider`` for ``seconds`` (never shortens a longer pause)."""
        ms = max(1, int(seconds * 1000))
        await self._pause(self._redis, [keys.pause(provider)], [ms])
        log.warning("provider paused for all workers", provider=provider, seconds=seconds, reason=reason)
