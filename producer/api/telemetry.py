"""The façade's own Prometheus metrics, the queue gauges it exports, and the workers' merged samples.

One scrape of ``/metrics`` is a complete picture of the service: the façade's requests, calls and open
streams; the work streams' depth, pending, lag and oldest age (for alerts and KEDA); and the workers'
counters and histograms summed across the live workers (workers serve no HTTP of their own).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric

from llmrelay.producer.api.admin import Samples, StreamStats
from llmrelay.shared.metrics import LATENCY_BUCKETS, QueueMetrics

#: Label values of ``method``: anything else a client sends is counted as "other" (bounded cardinality).
KNOWN_CALLS = frozenset(
    {
        "llm.complete",
        "llm.stream",
        "llm.submit",
        "llm.result",
        "llm.status",
        "llm.cancel",
        "llm.models",
        "llm.metrics",
        "llm.health",
        "chat.completions",
        "llm.embed",
        "embeddings",
    }
)


class ApiMetrics:
    """The façade's registry: HTTP requests, calls by method and outcome, open streams, queue gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "llmrelay_api_http_requests", "HTTP requests by route and status", ["route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "llmrelay_api_http_request_seconds",
            "HTTP request duration (streams: until the stream ends)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.calls = Counter(
            "llmrelay_api_calls",
            "JSON-RPC and OpenAI-compatible calls by method and outcome (ok or error code)",
            ["method", "outcome"],
            registry=r,
        )
        self.call_latency = Histogram(
            "llmrelay_api_call_seconds",
            "Call duration by method (streams: until the stream is set up)",
            ["method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.streams = Gauge("llmrelay_api_streams_inflight", "Event streams open", registry=r)
        self.redis_up = Gauge("llmrelay_api_redis_up", "Whether the last scrape reached Redis", registry=r)
        self.queue = QueueMetrics.create(r)
        # Label children by label values: ``labels()`` costs more than the increment it leads to.
        self._children: dict[tuple[Any, ...], Any] = {}

    def _child(self, metric: Any, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def observe_call(self, method: str, outcome: str, seconds: float) -> None:
        name = method if method in KNOWN_CALLS else "other"
        self._child(self.calls, name, outcome).inc()
        self._child(self.call_latency, name).observe(seconds)

    def observe_http(self, route: str, status: int, seconds: float) -> None:
        self._child(self.http_requests, route, str(status)).inc()
        self._child(self.http_latency, route).observe(seconds)

    def set_queues(self, stats: Iterable[StreamStats], workers_alive: int) -> None:
        for s in stats:
            self.queue.depth.labels(s.provider, s.lane).set(s.depth)
            self.queue.pending.labels(s.provider, s.lane).set(s.pending)
            self.queue.lag.labels(s.provider, s.lane).set(s.lag)
            self.queue.oldest_age.labels(s.provider, s.lane).set(s.oldest_age_s)
        self.queue.workers.set(workers_alive)

    def snapshot(self) -> dict[str, Any]:
        """The façade's counters as plain JSON, for ``llm.metrics``."""
        calls: dict[str, dict[str, int]] = {}
        http: dict[str, dict[str, int]] = {}
        streams = 0.0
        for metric in self.registry.collect():
            for sample in metric.samples:
                if sample.name == "llmrelay_api_calls_total":
                    per = calls.setdefault(sample.labels["method"], {})
                    per[sample.labels["outcome"]] = int(sample.value)
                elif sample.name == "llmrelay_api_http_requests_total":
                    per = http.setdefault(sample.labels["route"], {})
                    per[sample.labels["status"]] = int(sample.value)
                elif sample.name == "llmrelay_api_streams_inflight":
                    streams = sample.value
        return {"calls": calls, "http": http, "streams_inflight": int(streams)}

    def render(self, worker_samples: Samples | None = None) -> bytes:
        """Prometheus text: this registry, then the workers' merged samples."""
        text = generate_latest(self.registry)
        if worker_samples:
            merged = CollectorRegistry(auto_describe=False)
            merged.register(_MergedSamples(worker_samples))
            text += generate_latest(merged)
        return text


class _MergedSamples:
    """A collector over merged worker samples, regrouped into families by their sample names."""

    def __init__(self, samples: Samples) -> None:
        self.samples = samples

    def collect(self) -> Iterator[Metric]:
        names = set(self.samples)
        families: dict[str, Metric] = {}
        for name in sorted(names):
            family, kind = _family_of(name, names)
            metric = families.get(family)
            if metric is None:
                metric = families[family] = Metric(family, f"{family}, summed over live workers", kind)
            for labels, value in self.samples[name].items():
                metric.add_sample(name, dict(labels), value)
        yield from families.values()


def _family_of(name: str, names: set[str]) -> tuple[str, str]:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            if base + "_bucket" in names:
                return base, "histogram"
    if name.endswith("_total"):
        return name[: -len("_total")], "counter"
    return name, "gauge"
