"""A worker's heartbeat and metrics snapshot: what is written is what is read, and garbage is refused."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from llmrelay.shared.metrics import WorkerMetrics
from llmrelay.shared.payloads import (
    PayloadError,
    WorkerHeartbeat,
    decode_each,
    decode_heartbeat,
    decode_metrics_snapshot,
    encode_heartbeat,
    encode_metrics_snapshot,
)


def heartbeat(**fields: Any) -> WorkerHeartbeat:
    beat = WorkerHeartbeat(
        worker_id="host-1234-abcdef",
        pid=1234,
        host="host",
        providers=["openai", "gemini"],
        concurrency=8,
        inflight={"openai": 2, "gemini": 0},
        jobs_done=17,
        ts=1_700_000_000.5,
    )
    beat.update(fields)  # type: ignore[typeddict-item]
    return beat


def test_heartbeat_round_trips() -> None:
    beat = heartbeat()
    assert decode_heartbeat(encode_heartbeat(beat)) == beat
    assert decode_heartbeat(encode_heartbeat(beat).decode()) == beat


def test_fields_a_reader_does_not_know_are_ignored() -> None:
    raw = orjson.dumps({**heartbeat(), "version": "2"})
    assert decode_heartbeat(raw) == heartbeat()


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b"null",
        orjson.dumps({k: v for k, v in heartbeat().items() if k != "pid"}),
        orjson.dumps({**heartbeat(), "pid": "a pid"}),
        orjson.dumps({**heartbeat(), "providers": "openai"}),
        orjson.dumps({**heartbeat(), "ts": None}),
    ],
    ids=["not-json", "list", "null", "no-pid", "pid-not-a-number", "providers-not-a-list", "no-time"],
)
def test_what_is_not_a_heartbeat_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="not a worker heartbeat"):
        decode_heartbeat(raw)


def test_decode_each_leaves_out_missing_and_garbled_values() -> None:
    first, second = heartbeat(pid=1), heartbeat(pid=2)
    raws = [encode_heartbeat(first), None, b"not json", encode_heartbeat(second)]
    assert decode_each(decode_heartbeat, raws) == [first, second]


def test_metrics_snapshot_round_trips_a_registry() -> None:
    registry = CollectorRegistry()
    metrics = WorkerMetrics.create(registry)
    metrics.requests.labels(provider="openai", model="gpt-6.1-terra", outcome="ok").inc(3)
    metrics.latency.labels(provider="openai", model="gpt-6.1-terra").observe(0.2)
    snapshot = decode_metrics_snapshot(encode_metrics_snapshot(registry))
    assert snapshot["llmrelay_requests_total"] == [
        ({"provider": "openai", "model": "gpt-6.1-terra", "outcome": "ok"}, 3.0)
    ]
    assert ({"provider": "openai", "model": "gpt-6.1-terra", "le": "0.25"}, 1.0) in snapshot[
        "llmrelay_request_latency_seconds_bucket"
    ]
    assert not any(name.endswith("_created") for name in snapshot)


def test_malformed_samples_are_left_out_of_a_snapshot() -> None:
    raw = orjson.dumps(
        {
            "x_total": [[{"p": "1"}, 2.0], "junk", [{"p": "2"}], [{"p": "3"}, None], [{"p": "4"}, True]],
            "y_total": "not a series",
            "z": [[{"n": 1}, 1]],
        }
    )
    snapshot = decode_metrics_snapshot(raw)
    assert snapshot["x_total"] == [({"p": "1"}, 2.0)]
    assert "y_total" not in snapshot
    assert snapshot["z"] == [({"n": "1"}, 1.0)]


@pytest.mark.parametrize("raw", [b"not json", b'"not a snapshot"', b"[1, 2]", b"null"])
def test_what_is_not_a_snapshot_is_refused(raw: bytes) -> None:
    with pytest.raises(PayloadError, match="a metrics snapshot is a JSON object"):
        decode_metrics_snapshot(raw)
