"""What the façade reads from Redis about the service: queues, live workers, merged worker metrics, health.

Everything here only reads. Workers enumerate themselves in the registry zset and prove they are alive
with a heartbeat key that expires; the workers' housekeeping prunes members that stopped beating.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from llmrelay.shared import keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.payloads import (
    MetricsSnapshot,
    WorkerHeartbeat,
    decode_each,
    decode_heartbeat,
    decode_metrics_snapshot,
)

QUANTILES = (0.5, 0.95, 0.99)

#: Merged samples: sample name -> label set (sorted items) -> value summed over workers.
Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


@dataclass(slots=True)
class StreamStats:
    """One work stream: entries in it, delivered-but-unacknowledged, undelivered, age of the oldest."""

    provider: str
    lane: str
    stream: str
    depth: int = 0
    pending: int = 0
    lag: int = 0
    oldest_age_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


async def stream_stats(redis: Redis, providers: Iterable[str] = PROVIDERS) -> list[StreamStats]:
    """XLEN, XINFO GROUPS (pending, lag) and the oldest entry of every provider's work streams."""
    stats = [
        StreamStats(provider, lane, keys.work_stream(provider, lane))
        for provider in providers
        for lane in keys.LANES
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for s in stats:
            pipe.xlen(s.stream)
            pipe.xinfo_groups(s.stream)
            pipe.xrange(s.stream, "-", "+", count=1)
        replies = await pipe.execute(raise_on_error=False)
    now_ms = time.time() * 1000
    for i, s in enumerate(stats):
        depth, groups, first = replies[3 * i : 3 * i + 3]
        s.depth = depth if isinstance(depth, int) else 0
        group = _our_group(groups)
        if group is not None:
            s.pending = int(group.get("pending") or 0)
            lag = group.get("lag")
            # Redis reports no lag when it cannot tell (entries deleted mid-history): bound it instead.
            s.lag = int(lag) if isinstance(lag, int) else max(0, s.depth - s.pending)
        else:
            s.lag = s.depth
        if isinstance(first, list) and first:
            entry_ms = int(_text(first[0][0]).split("-", 1)[0])
            s.oldest_age_s = round(max(0.0, now_ms - entry_ms) / 1000, 3)
    return stats


def _our_group(groups: Any) -> dict[str, Any] | None:
    if not isinstance(groups, list):
        return None
    for group in groups:
        if isinstance(group, dict) and _text(group.get("name", b"")) == keys.GROUP:
            return group
    return None


async def live_workers(redis: Redis) -> list[WorkerHeartbeat]:
    """The heartbeat of every worker whose heartbeat key is present, oldest registration first."""
    members = await redis.zrange(keys.WORKERS_REGISTRY, 0, -1)
    if not members:
        return []
    beats = await redis.mget([keys.worker_heartbeat(_text(member)) for member in members])
    return decode_each(decode_heartbeat, beats)


async def worker_samples(redis: Redis, worker_ids: Sequence[str]) -> Samples:
    """The metrics snapshots the given workers published, merged (summed) across workers."""
    if not worker_ids:
        return {}
    blobs = await redis.mget([keys.worker_metrics(worker_id) for worker_id in worker_ids])
    return merge_snapshots(decode_each(decode_metrics_snapshot, blobs))


def merge_snapshots(snapshots: Iterable[MetricsSnapshot]) -> Samples:
    """Sum snapshots sample by sample and label set by label set."""
    merged: Samples = {}
    for snapshot in snapshots:
        for name, series in snapshot.items():
            target = merged.setdefault(name, {})
            for labels, value in series:
                key = tuple(sorted(labels.items()))
                target[key] = target.get(key, 0.0) + value
    return merged


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The q-quantile of a cumulative histogram ``[(upper bound, count), ...]``, as Prometheus computes it.

    Linear interpolation inside the bucket that holds the rank; a rank in the +Inf bucket answers the
    highest finite bound. None when the histogram is empty.
    """
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    total = ordered[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank:
            if math.isinf(bound):
                return lower
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower  # pragma: no cover - the last bucket always holds the rank


def _percentiles_ms(buckets: Sequence[tuple[float, float]], total: float, count: float) -> dict[str, Any]:
    out: dict[str, Any] = {"count": int(count)}
    out["mean"] = round(total / count * 1000, 3) if count else None
    for q in QUANTILES:
        value = histogram_quantile(q, buckets)
        out[f"p{round(q * 100)}"] = round(value * 1000, 3) if value is not None else None
    return out


def summarize(samples: Samples) -> dict[str, Any]:
    """Per provider and model: outcomes, errors by type, tokens in/out, cost, latency and TTFT percentiles."""
    models: dict[tuple[str, str], dict[str, Any]] = {}

    def entry(labels: dict[str, str]) -> dict[str, Any] | None:
        provider, model = labels.get("provider"), labels.get("model")
        if not provider or not model:
            return None
        return models.setdefault(
            (provider, model),
            {
                "requests": 0,
                "outcomes": {},
                "errors": {},
                "retries": 0,
                "tokens": {"in": 0, "out": 0},
                "cost_usd": 0.0,
                "latency_ms": None,
                "ttft_ms": None,
            },
        )

    def series(name: str) -> Iterator[tuple[dict[str, str], dict[str, Any], float]]:
        """The samples of a per-model metric: their labels, their model's entry, their value."""
        for key, value in samples.get(name, {}).items():
            labels = dict(key)
            e = entry(labels)
            if e is not None:
                yield labels, e, value

    for labels, e, value in series("llmrelay_requests_total"):
        outcome = labels.get("outcome", "unknown")
        e["outcomes"][outcome] = e["outcomes"].get(outcome, 0) + int(value)
        e["requests"] += int(value)
    for labels, e, value in series("llmrelay_errors_total"):
        kind = labels.get("error", "unknown")
        e["errors"][kind] = e["errors"].get(kind, 0) + int(value)
    for _, e, value in series("llmrelay_retries_total"):
        e["retries"] += int(value)
    for labels, e, value in series("llmrelay_tokens_total"):
        side = "in" if labels.get("direction") == "prompt" else "out"
        e["tokens"][side] += int(value)
    for _, e, value in series("llmrelay_cost_usd_total"):
        e["cost_usd"] = round(e["cost_usd"] + value, 10)
    for field, base in (
        ("latency_ms", "llmrelay_request_latency_seconds"),
        ("ttft_ms", "llmrelay_ttft_seconds"),
    ):
        for (provider, model), buckets in _histograms(samples, base).items():
            figures = entry({"provider": provider, "model": model})
            if figures is not None:
                figures[field] = buckets

    providers: dict[str, Any] = {}
    for (provider, model), e in sorted(models.items()):
        p = providers.setdefault(
            provider,
            {"requests": 0, "errors": 0, "tokens": {"in": 0, "out": 0}, "cost_usd": 0.0, "models": {}},
        )
        p["requests"] += e["requests"]
        p["errors"] += sum(e["errors"].values())
        p["tokens"]["in"] += e["tokens"]["in"]
        p["tokens"]["out"] += e["tokens"]["out"]
        p["cost_usd"] = round(p["cost_usd"] + e["cost_usd"], 10)
        p["models"][model] = e
    return providers


def _histograms(samples: Samples, base: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Percentiles (ms) per (provider, model) from a histogram's merged ``_bucket/_sum/_count`` samples."""
    buckets: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for key, value in samples.get(base + "_bucket", {}).items():
        labels = dict(key)
        try:
            bound = float(labels.get("le", "nan"))
        except ValueError:
            continue
        if math.isnan(bound):
            continue
        ident = (labels.get("provider", ""), labels.get("model", ""))
        buckets.setdefault(ident, []).append((bound, value))
    sums = {_ident(key): value for key, value in samples.get(base + "_sum", {}).items()}
    counts = {_ident(key): value for key, value in samples.get(base + "_count", {}).items()}
    return {
        ident: _percentiles_ms(series, sums.get(ident, 0.0), counts.get(ident, 0.0))
        for ident, series in buckets.items()
    }


def _ident(key: tuple[tuple[str, str], ...]) -> tuple[str, str]:
    labels = dict(key)
    return labels.get("provider", ""), labels.get("model", "")


async def ping_ms(redis: Redis) -> float:
    started = time.perf_counter()
    await redis.ping()
    return round((time.perf_counter() - started) * 1000, 3)


async def pauses(redis: Redis, providers: Iterable[str] = PROVIDERS) -> dict[str, float | None]:
    """Seconds left of each provider's pause (a provider asked every worker to wait), or None."""
    names = list(providers)
    async with redis.pipeline(transaction=False) as pipe:
        for provider in names:
            pipe.pttl(keys.pause(provider))
        ttls = await pipe.execute()
    return {p: (round(ms / 1000, 3) if ms > 0 else None) for p, ms in zip(names, ttls, strict=True)}


def _worker_view(beat: WorkerHeartbeat, now: float) -> dict[str, Any]:
    return {
        "worker_id": beat["worker_id"],
        "host": beat["host"],
        "pid": beat["pid"],
        "providers": beat["providers"],
        "inflight": beat["inflight"],
        "jobs_done": beat["jobs_done"],
        "heartbeat_age_s": round(now - beat["ts"], 3),
    }


async def health(redis: Redis, providers: Iterable[str]) -> dict[str, Any]:
    """Redis, live workers, each provider's state and queues; ``status`` is ok, degraded or down.

    Degraded: a provider that serves allowed models has no live worker, or is paused by a 429.
    Down: Redis does not answer (nothing can be queued).
    """
    names = list(providers)
    now = time.time()
    try:
        latency = await ping_ms(redis)
        workers = await live_workers(redis)
        paused = await pauses(redis, names)
        queues = await stream_stats(redis, names)
    except (RedisError, OSError) as exc:
        return {
            "status": "down",
            "redis": {"ok": False, "error": type(exc).__name__},
            "workers": {"alive": 0, "list": []},
            "providers": {},
            "queues": [],
            "checked_at": now,
        }
    provider_states: dict[str, Any] = {}
    degraded = False
    for provider in names:
        serving = sum(1 for w in workers if provider in w["providers"])
        lanes = [q for q in queues if q.provider == provider]
        state = "ok"
        if serving == 0:
            state = "no_workers"
        elif paused[provider] is not None:
            state = "paused"
        degraded = degraded or state != "ok"
        provider_states[provider] = {
            "status": state,
            "workers": serving,
            "paused_for_s": paused[provider],
            "lag": sum(q.lag for q in lanes),
            "pending": sum(q.pending for q in lanes),
            "depth": sum(q.depth for q in lanes),
            "oldest_age_s": max((q.oldest_age_s for q in lanes), default=0.0),
        }
    return {
        "status": "degraded" if degraded else "ok",
        "redis": {"ok": True, "latency_ms": latency},
        "workers": {"alive": len(workers), "list": [_worker_view(w, now) for w in workers]},
        "providers": provider_states,
        "queues": [q.as_dict() for q in queues],
        "checked_at": now,
    }


async def metrics(redis: Redis, providers: Iterable[str] = PROVIDERS) -> dict[str, Any]:
    """One snapshot across the live workers: per provider and model figures, queues, workers."""
    workers = await live_workers(redis)
    ids = [w["worker_id"] for w in workers]
    samples = await worker_samples(redis, ids)
    queues = await stream_stats(redis, providers)
    return {
        "generated_at": time.time(),
        "workers": {"alive": len(workers), "ids": ids},
        "providers": summarize(samples),
        "queues": [q.as_dict() for q in queues],
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


__all__ = [
    "Samples",
    "StreamStats",
    "health",
    "histogram_quantile",
    "live_workers",
    "merge_snapshots",
    "metrics",
    "pauses",
    "ping_ms",
    "stream_stats",
    "summarize",
    "worker_samples",
]
