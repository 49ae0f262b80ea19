"""Prometheus metric names and their definitions, shared by workers and the façade."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TTFT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass
class WorkerMetrics:
    """The metrics one worker process exports, labelled by provider and model."""

    requests: Counter
    latency: Histogram
    ttft: Histogram
    tokens: Counter
    cost: Counter
    errors: Counter
    retries: Counter
    rate_limit_waits: Counter
    rate_limit_wait_seconds: Counter
    inflight: Gauge
    dead_letters: Counter
    reclaimed: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry) -> WorkerMetrics:
        pm = ["provider", "model"]
        return cls(
            requests=Counter(
                "llmrelay_requests", "Finished jobs by outcome", [*pm, "outcome"], registry=registry
            ),
            latency=Histogram(
                "llmrelay_request_latency_seconds",
                "Job latency from enqueue to result",
                pm,
                buckets=LATENCY_BUCKETS,
                registry=registry,
            ),
            ttft=Histogram(
                "llmrelay_ttft_seconds",
                "Time from enqueue to first token",
                pm,
                buckets=TTFT_BUCKETS,
                registry=registry,
            ),
            tokens=Counter("llmrelay_tokens", "Tokens used", [*pm, "direction"], registry=registry),
            cost=Counter("llmrelay_cost_usd", "Cost in USD at list prices", pm, registry=registry),
            errors=Counter(
                "llmrelay_errors", "Failed provider attempts by error type", [*pm, "error"], registry=registry
            ),
            retries=Counter(
                "llmrelay_retries", "Provider attempts retried", [*pm, "reason"], registry=registry
            ),
            rate_limit_waits=Counter(
                "llmrelay_rate_limit_waits",
                "Times a job waited for a rate limit",
                ["provider"],
                registry=registry,
            ),
            rate_limit_wait_seconds=Counter(
                "llmrelay_rate_limit_wait_seconds",
                "Time spent waiting for rate limits",
                ["provider"],
                registry=registry,
            ),
            inflight=Gauge(
                "llmrelay_inflight_jobs",
                "Jobs running in this worker",
                ["provider", "lane"],
                registry=registry,
            ),
            dead_letters=Counter(
                "llmrelay_dead_letters",
                "Jobs moved to the dead-letter stream",
                ["provider"],
                registry=registry,
            ),
            reclaimed=Counter(
                "llmrelay_reclaimed",
                "Jobs reclaimed from dead or stalled workers",
                ["provider"],
                registry=registry,
            ),
        )


@dataclass
class QueueMetrics:
    """Gauges of the work streams, exported by whoever scrapes Redis (the façade) for alerts and KEDA."""

    depth: Gauge
    pending: Gauge
    lag: Gauge
    oldest_age: Gauge
    workers: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> QueueMetrics:
        def per_stream(name: str, documentation: str) -> Gauge:
            return Gauge(name, documentation, ["provider", "lane"], registry=registry)

        return cls(
            depth=per_stream("llmrelay_queue_depth", "Entries in the work stream (queued and in flight)"),
            pending=per_stream("llmrelay_queue_pending", "Delivered but unacknowledged jobs"),
            lag=per_stream("llmrelay_queue_lag", "Jobs not yet delivered to any worker"),
            oldest_age=per_stream("llmrelay_queue_oldest_age_seconds", "Age of the oldest job in the stream"),
            workers=Gauge("llmrelay_workers_alive", "Workers with a live heartbeat", registry=registry),
        )
