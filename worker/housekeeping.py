"""Cluster-wide housekeeping, run once a minute by exactly one worker through arq's cron.

Every worker process runs a small arq worker beside its stream consumers. arq enqueues each cron run
under a job id derived from its scheduled time (``unique=True``), so whichever worker claims it runs it
and the others skip it: the cluster does each round once, and it keeps doing it as long as any worker
lives. The hot path does not go through arq: its sorted-set polling would add latency to every job.

Each housekeeping round:
- removes consumers that own no pending job and were idle longer than ``STALE_CONSUMER_SECONDS``
  (Redis never removes dead consumers by itself; a consumer that still owns jobs is left for reclaim);
- drops registry entries of workers that stopped beating;
- trims dead-letter entries older than ``DEAD_LETTER_DAYS`` (by MINID: a dead-letter stream has no
  consumers, so trimming it cannot lose work in flight).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable
from typing import Any

import structlog
from arq.connections import ArqRedis, RedisSettings
from arq.cron import cron
from arq.worker import Worker as ArqWorker
from arq.worker import func
from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from llmrelay.shared import keys
from llmrelay.shared.batch import ARQ_QUEUE, FEED_FUNCTION
from llmrelay.shared.governance import Governance
from llmrelay.shared.scripts import LuaScript
from llmrelay.shared.settings import Settings
from llmrelay.worker.batch import ROUND_SECONDS, feed_batch

log = structlog.get_logger("llmrelay.housekeeping")

STALE_CONSUMER_SECONDS = 3600
STALE_WORKER_SECONDS = 60
DEAD_LETTER_DAYS = 7
QUEUE_NAME = ARQ_QUEUE
RUNS_KEY = f"{keys.PREFIX}:housekeeping:runs"
#: A feeding round runs at most ROUND_SECONDS; arq retries one whose worker died after this long.
FEED_TIMEOUT_SECONDS = int(ROUND_SECONDS * 3)

_DELETE_IF_IDLE = LuaScript(
    """
local owned = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #owned > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""
)


async def delete_consumer_if_idle(redis: Redis, stream: str, consumer: str) -> bool:
    """Remove a consumer from the group only if it owns no pending entry (checked atomically).

    XGROUP DELCONSUMER discards the consumer's pending entries: used blindly it would lose jobs.
    """
    try:
        return bool(await _DELETE_IF_IDLE(redis, [stream], [keys.GROUP, consumer]))
    except ResponseError as exc:
        if "NOGROUP" in str(exc):
            return False
        raise


async def sweep(redis: Redis, providers: Iterable[str], *, now: float | None = None) -> dict[str, int]:
    """One housekeeping round; returns what it removed."""
    now = time.time() if now is None else now
    removed = {"consumers": 0, "workers": 0, "dead_letters": 0}
    for provider in providers:
        for lane in keys.LANES:
            stream = keys.work_stream(provider, lane)
            try:
                consumers = await redis.xinfo_consumers(stream, keys.GROUP)
            except ResponseError:
                continue  # no stream or no group yet
            for consumer in consumers:
                idle_s = int(consumer["idle"]) / 1000
                if int(consumer["pending"]) == 0 and idle_s > STALE_CONSUMER_SECONDS:
                    name = consumer["name"]
                    name = name.decode() if isinstance(name, bytes) else str(name)
                    removed["consumers"] += await delete_consumer_if_idle(redis, stream, name)
        min_id = f"{int((now - DEAD_LETTER_DAYS * 86400) * 1000)}-0"
        removed["dead_letters"] += int(
            await redis.xtrim(keys.dead_letter(provider), minid=min_id, approximate=False)
        )
    removed["workers"] = int(
        await redis.zremrangebyscore(keys.WORKERS_REGISTRY, "-inf", now - STALE_WORKER_SECONDS)
    )
    await redis.incr(RUNS_KEY)
    if any(removed.values()):
        log.info("housekeeping", **removed)
    return removed


async def _cron_sweep(ctx: dict[str, Any]) -> dict[str, int]:
    return await sweep(ctx["redis"], ctx["providers"])


def housekeeper(
    settings: Settings, providers: list[str], governance: Governance, *, second: int | set[int] = 0
) -> ArqWorker:
    """The arq worker of a worker process: ``sweep`` once a minute (at ``second``) for the whole
    cluster, and the feeding rounds of batches (``worker.batch.feed_batch``)."""
    return ArqWorker(
        functions=[func(feed_batch, name=FEED_FUNCTION, timeout=FEED_TIMEOUT_SECONDS, max_tries=20)],
        cron_jobs=[
            cron(_cron_sweep, name="llmrelay-sweep", second=second, unique=True, run_at_startup=False)
        ],
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        queue_name=QUEUE_NAME,
        handle_signals=False,
        max_jobs=4,
        keep_result=60,
        poll_delay=1.0,
        ctx={"providers": providers, "settings": settings, "governance": governance},
        log_results=False,
    )


async def close_housekeeper(worker: ArqWorker) -> None:
    with contextlib.suppress(RedisError, OSError, RuntimeError):
        await worker.close()


__all__ = ["ArqRedis", "close_housekeeper", "delete_consumer_if_idle", "housekeeper", "sweep"]
