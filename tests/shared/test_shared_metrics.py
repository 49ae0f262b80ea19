"""Prometheus metrics: the names dashboards, alerts and KEDA read are the ones the code exports."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from llmrelay.shared.metrics import LATENCY_BUCKETS, TTFT_BUCKETS, QueueMetrics, WorkerMetrics

WORKER_METRICS = [
    "llmrelay_requests_total",
    "llmrelay_request_latency_seconds",
    "llmrelay_ttft_seconds",
    "llmrelay_tokens_total",
    "llmrelay_cost_usd_total",
    "llmrelay_errors_total",
    "llmrelay_retries_total",
    "llmrelay_rate_limit_waits_total",
    "llmrelay_rate_limit_wait_seconds_total",
    "llmrelay_inflight_jobs",
    "llmrelay_dead_letters_total",
    "llmrelay_reclaimed_total",
]
QUEUE_METRICS = [
    "llmrelay_queue_depth",
    "llmrelay_queue_pending",
    "llmrelay_queue_lag",
    "llmrelay_queue_oldest_age_seconds",
    "llmrelay_workers_alive",
]


def exposition(registry: CollectorRegistry) -> str:
    return generate_latest(registry).decode()


@pytest.mark.parametrize("name", WORKER_METRICS)
def test_worker_metrics_expose_their_documented_names(name: str) -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    assert f"# TYPE {name} " in exposition(registry)


@pytest.mark.parametrize("name", QUEUE_METRICS)
def test_queue_metrics_expose_their_documented_names(name: str) -> None:
    registry = CollectorRegistry()
    QueueMetrics.create(registry)
    assert f"# TYPE {name} " in exposition(registry)


def test_worker_and_queue_metrics_share_one_registry() -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    QueueMetrics.create(registry)
    text = exposition(registry)
    assert all(f"# TYPE {name} " in text for name in WORKER_METRICS + QUEUE_METRICS)


def test_creating_twice_on_one_registry_is_refused() -> None:
    registry = CollectorRegistry()
    WorkerMetrics.create(registry)
    with pytest.raises(ValueError, match="Duplicated"):
        WorkerMetrics.create(registry)


def test_worker_metrics_are_labelled_by_provider_and_model() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.requests.labels(provider="openai", model="gpt-6.1-terra", outcome="ok").inc()
    metrics.latency.labels(provider="openai", model="gpt-6.1-terra").observe(0.2)
    metrics.ttft.labels(provider="openai", model="gpt-6.1-terra").observe(0.01)
    metrics.tokens.labels(provider="openai", model="gpt-6.1-terra", direction="output").inc(12)
    metrics.cost.labels(provider="openai", model="gpt-6.1-terra").inc(0.0001)
    metrics.errors.labels(provider="gemini", model="gemini-2.5-flash-lite", error="RateLimitedError").inc()
    metrics.retries.labels(provider="gemini", model="gemini-2.5-flash-lite", reason="rate_limited").inc()
    metrics.rate_limit_waits.labels(provider="anthropic").inc()
    metrics.rate_limit_wait_seconds.labels(provider="anthropic").inc(0.5)
    metrics.inflight.labels(provider="openai", lane="batch").set(3)
    metrics.dead_letters.labels(provider="openai").inc()
    metrics.reclaimed.labels(provider="openai").inc()
    text = exposition(registry)
    assert 'llmrelay_requests_total{model="gpt-6.1-terra",outcome="ok",provider="openai"} 1.0' in text
    assert 'llmrelay_tokens_total{direction="output",model="gpt-6.1-terra",provider="openai"} 12.0' in text
    assert 'llmrelay_inflight_jobs{lane="batch",provider="openai"} 3.0' in text
    assert 'llmrelay_request_latency_seconds_bucket{le="0.25",model="gpt-6.1-terra",provider="openai"} 1.0' in text


def test_queue_gauges_are_labelled_by_provider_and_lane() -> None:
    registry = CollectorRegistry()
    metrics = QueueMetrics.create(registry)
    metrics.depth.labels(provider="openai", lane="interactive").set(7)
    metrics.lag.labels(provider="openai", lane="interactive").set(2)
    metrics.workers.set(4)
    text = exposition(registry)
    assert 'llmrelay_queue_depth{lane="interactive",provider="openai"} 7.0' in text
    assert 'llmrelay_queue_lag{lane="interactive",provider="openai"} 2.0' in text
    assert "llmrelay_workers_alive 4.0" in text


def test_buckets_are_increasing() -> None:
    for buckets in (LATENCY_BUCKETS, TTFT_BUCKETS):
        assert list(buckets) == sorted(set(buckets))
