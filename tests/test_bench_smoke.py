"""The benchmarks still run end to end (tiny sizes; the figures themselves come from full runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import facade, queue, relay, selection

pytestmark = pytest.mark.slow


def test_selection_benchmark_writes_its_figures(tmp_path: Path) -> None:
    out = tmp_path / "selection.json"
    assert selection.main(["--n", "2000", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["us_per_call"]["provider_for(model)"]["p50"] > 0


def test_queue_benchmark_measures_its_baseline_in_the_same_run(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "queue.json"
    args = ["--n", "10", "--concurrency", "5", "--rounds", "1", "--jobs", "20", "--relay-tokens", "20"]
    assert queue.main([*args, "--provider-ttft-ms", "10", "--redis-url", redis_url, "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["sequential"]["direct_sdk"]["n"] == 10
    assert data["sequential"]["queue_complete"]["n"] == 10
    assert data["throughput_jobs_per_s"]["one_worker_process"] > 0


def test_facade_benchmark_measures_its_baseline_in_the_same_run(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "facade.json"
    args = ["--n", "10", "--concurrency", "5", "--rounds", "1", "--redis-url", redis_url, "--json", str(out)]
    assert facade.main(args) == 0
    data = json.loads(out.read_text())
    assert data["concurrency_1"]["latency_ms"]["direct_sdk"]["n"] == 10
    assert data["concurrency_1"]["ttft_ms"]["facade_stream"]["p50"] > 0


def test_relay_benchmark_times_tool_deltas_beside_text_tokens(tmp_path: Path, redis_url: str) -> None:
    out = tmp_path / "relay.json"
    args = ["--rounds", "3", "--warmup", "1", "--deltas", "20", "--redis-url", redis_url, "--json", str(out)]
    assert relay.main(args) == 0
    data = json.loads(out.read_text())
    for mode in ("paced", "burst"):
        assert data["ms_per_delta"][mode]["text_token"]["n"] == 3
        assert data["ms_per_delta"][mode]["tool_call_delta"]["n"] == 3
    assert data["round_ms"]["tool"]["p50"] > data["round_ms"]["empty"]["p50"] > 0
    assert data["ratio_tool_to_text"]["paced"]["p50"] > 0
    assert "loadavg_end" in data["machine"]
