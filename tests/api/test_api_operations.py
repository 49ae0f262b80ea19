"""Operations: llm.metrics and /metrics after traffic, llm.health and /health, the app's lifecycle."""

from __future__ import annotations

import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import orjson
import pytest
import redis
from api_support import chat, rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import admin, create_app
from llmrelay.producer.api.__main__ import main as api_main
from llmrelay.producer.api.server import build_server
from llmrelay.shared import Settings, keys
from llmrelay.shared.payloads import decode_metrics_snapshot
from llmrelay.worker.service import Worker
from tests.support import poll

Serve = Callable[..., Awaitable[Any]]


async def call(client: httpx2.AsyncClient, method: str) -> Any:
    return (await client.post("/jsonrpc", json=rpc(method))).json()["result"]


async def test_metrics_snapshot_after_traffic(client: httpx2.AsyncClient, worker: Worker) -> None:
    for i in range(6):
        await client.post("/jsonrpc", json=rpc("llm.complete", chat(f"traffic {i} [[sim:tokens=5]]")))
    await client.post(
        "/jsonrpc", json=rpc("llm.complete", chat("fail [[sim:fault=503]]", model="gemini-3.8-flash"))
    )
    await client.post("/v1/chat/completions", json=chat("via openai", model="claude-haiku-5-5"))
    await worker._heartbeat_once()  # publish the worker's snapshot now rather than at its next beat

    snapshot = await call(client, "llm.metrics")
    assert snapshot["workers"]["alive"] == 1
    openai_model = snapshot["providers"]["openai"]["models"]["gpt-6.1-terra"]
    assert openai_model["requests"] == 6
    assert openai_model["outcomes"] == {"ok": 6}
    assert openai_model["tokens"]["out"] == 30 and openai_model["tokens"]["in"] > 0
    assert openai_model["cost_usd"] > 0
    for field in ("latency_ms", "ttft_ms"):
        figures = openai_model[field]
        assert figures["count"] == 6
        assert 0 < figures["p50"] <= figures["p95"] <= figures["p99"]
    gemini = snapshot["providers"]["gemini"]["models"]["gemini-3.8-flash"]
    assert gemini["errors"] == {"ProviderUnavailableError": 1}
    assert snapshot["providers"]["gemini"]["errors"] == 1
    assert snapshot["providers"]["anthropic"]["requests"] == 1
    queues = {(q["provider"], q["lane"]): q for q in snapshot["queues"]}
    assert set(queues) == {(p, lane) for p in ("openai", "anthropic", "gemini") for lane in keys.LANES}
    assert set(queues["openai", "interactive"]) >= {"depth", "pending", "lag", "oldest_age_s", "stream"}
    facade = snapshot["facade"]
    assert facade["calls"]["llm.complete"]["ok"] == 6
    assert facade["calls"]["llm.complete"]["-32020"] == 1
    assert facade["calls"]["chat.completions"]["ok"] == 1
    assert facade["http"]["/jsonrpc"]["200"] >= 7


async def test_prometheus_text_has_facade_queue_and_worker_metrics(
    client: httpx2.AsyncClient, worker: Worker
) -> None:
    await client.post("/jsonrpc", json=rpc("llm.complete", chat("scrape me")))
    await worker._heartbeat_once()
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'llmrelay_api_http_requests_total{route="/jsonrpc",status="200"}' in text
    assert 'llmrelay_api_calls_total{method="llm.complete",outcome="ok"} 1.0' in text
    assert "llmrelay_api_streams_inflight 0.0" in text
    assert 'llmrelay_queue_depth{lane="interactive",provider="openai"}' in text
    assert 'llmrelay_queue_lag{lane="batch",provider="gemini"}' in text
    assert "llmrelay_queue_oldest_age_seconds" in text and "llmrelay_queue_pending" in text
    assert "llmrelay_workers_alive 1.0" in text
    assert "llmrelay_api_redis_up 1.0" in text
    assert "# TYPE llmrelay_request_latency_seconds histogram" in text
    assert 'llmrelay_requests_total{model="gpt-6.1-terra",outcome="ok",provider="openai"} 1.0' in text


async def test_queue_gauges_show_a_backlog(client: httpx2.AsyncClient, producer: LLMProducer) -> None:
    for i in range(3):
        await client.post("/jsonrpc", json=rpc("llm.submit", chat(f"backlog {i}")))
    time.sleep(0.01)  # the behaviour under test: the oldest entry ages
    stats = {(s.provider, s.lane): s for s in await admin.stream_stats(producer.redis)}
    backlog = stats["openai", "interactive"]
    assert backlog.depth == 3 and backlog.lag == 3 and backlog.pending == 0
    assert backlog.oldest_age_s > 0
    text = (await client.get("/metrics")).text
    assert 'llmrelay_queue_depth{lane="interactive",provider="openai"} 3.0' in text


async def test_health_is_ok_with_a_worker_and_degraded_without(
    client: httpx2.AsyncClient, settings: Settings
) -> None:
    report = await call(client, "llm.health")
    assert report["status"] == "degraded"
    assert report["workers"]["alive"] == 0
    assert report["providers"]["openai"]["status"] == "no_workers"

    worker = Worker(settings, concurrency=2)
    await worker.start()
    try:
        report = await call(client, "llm.health")
        assert report["status"] == "ok"
        assert report["redis"]["ok"] is True and report["redis"]["latency_ms"] >= 0
        assert report["workers"]["alive"] == 1
        assert report["workers"]["list"][0]["worker_id"] == worker.worker_id
        assert all(p["status"] == "ok" and p["workers"] == 1 for p in report["providers"].values())
        assert "lag" in report["providers"]["anthropic"]
        response = await client.get("/health")
        assert response.status_code == 200
        assert response.json()["facade"] == {"streams_inflight": 0, "pending_cancels": 0}
    finally:
        await worker.stop(grace=1)


async def test_a_paused_provider_makes_health_degraded(client: httpx2.AsyncClient, worker: Worker) -> None:
    await worker.redis.set(keys.pause("anthropic"), 1, px=5000)
    report = await call(client, "llm.health")
    assert report["status"] == "degraded"
    assert report["providers"]["anthropic"]["status"] == "paused"
    assert 0 < report["providers"]["anthropic"]["paused_for_s"] <= 5


def test_registry_members_without_a_heartbeat_are_not_alive(redis_url: str) -> None:
    import asyncio

    from redis.asyncio import Redis

    client = redis.Redis.from_url(redis_url)
    client.zadd(keys.WORKERS_REGISTRY, {"gone": time.time() - 3600, "garbled": time.time()})
    client.set(keys.worker_heartbeat("garbled"), b"not json")

    async def run() -> list[dict[str, Any]]:
        r = Redis.from_url(redis_url)
        try:
            return await admin.live_workers(r)
        finally:
            await r.aclose()

    assert asyncio.run(run()) == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_redis_is_503_on_health_and_an_error_on_calls(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(settings)
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://facade"
    ) as client:
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["status"] == "down"
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "llmrelay_api_redis_up 0.0" in metrics.text
        body = (await client.post("/jsonrpc", json=rpc("llm.complete", chat("x")))).json()
        assert body["error"]["code"] == -32040
        chat_response = await client.post("/v1/chat/completions", json=chat("x"))
        assert chat_response.status_code == 503


async def test_redis_failing_after_start_reports_down(
    make_settings: Callable[..., Settings], producer: LLMProducer
) -> None:
    settings = make_settings()
    report = await admin.health(_BrokenRedis(), ["openai"])  # type: ignore[arg-type]
    assert report["status"] == "down" and report["redis"]["ok"] is False
    app = create_app(settings, producer=_BrokenProducer(producer))  # type: ignore[arg-type]
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://facade"
    ) as client:
        body = (await client.post("/jsonrpc", json=rpc("llm.metrics"))).json()
        assert body["error"]["code"] == -32040


class _BrokenRedis:
    async def ping(self) -> None:
        raise redis.ConnectionError("down")

    def __getattr__(self, name: str) -> Any:
        raise redis.ConnectionError("down")


class _BrokenProducer:
    def __init__(self, real: LLMProducer) -> None:
        self.real = real
        self.redis = _BrokenRedis()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


async def test_lifespan_starts_and_stops_its_own_producer(
    settings: Settings, worker: Worker, serve: Serve
) -> None:
    live = await serve(settings)
    facade = live.app.state.facade
    assert facade.owns_producer and facade._started
    async with live.client() as client:
        body = (await client.post("/jsonrpc", json=rpc("llm.complete", chat("lifespan")))).json()
        assert body["result"]["content"]
    live.server.should_exit = True
    await poll(lambda: facade.producer._redis is None)  # the lifespan's shutdown
    assert not facade._started


async def test_a_mounted_app_starts_its_producer_on_first_use(settings: Settings, worker: Worker) -> None:
    app = create_app(settings)  # no lifespan runs under ASGITransport
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://facade"
    ) as client:
        body = (await client.post("/jsonrpc", json=rpc("llm.complete", chat("lazy")))).json()
        assert body["result"]["content"]
    await app.state.facade.aclose()


def test_build_server_binds_loopback_8000_by_default(settings: Settings) -> None:
    server = build_server(settings)
    assert (server.config.host, server.config.port) == ("127.0.0.1", 8000)
    assert server.config.access_log is False
    assert server.config.http == "httptools" and server.config.loop == "uvloop"
    custom = build_server(settings, "0.0.0.0", 9001)
    assert (custom.config.host, custom.config.port) == ("0.0.0.0", 9001)


def test_module_entry_point_passes_host_and_port(monkeypatch: pytest.MonkeyPatch) -> None:
    from llmrelay.producer.api import __main__ as entry

    seen: dict[str, Any] = {}
    monkeypatch.setattr(entry, "serve", lambda settings, host, port: seen.update(host=host, port=port))
    api_main(["--host", "127.0.0.2", "--port", "8123"])
    assert seen == {"host": "127.0.0.2", "port": 8123}


def test_worker_snapshots_merge_and_percentiles() -> None:
    a = {"x_total": [[{"p": "1"}, 2.0]], "h_bucket": [[{"le": "0.1"}, 1.0], [{"le": "+Inf"}, 2.0]]}
    b = {"x_total": [[{"p": "1"}, 3.0], "junk"], "h_bucket": [[{"le": "0.1"}, 1.0], [{"le": "+Inf"}, 2.0]]}
    merged = admin.merge_snapshots(decode_metrics_snapshot(orjson.dumps(s)) for s in (a, b))
    assert merged["x_total"] == {(("p", "1"),): 5.0}
    buckets = [(0.1, 2.0), (float("inf"), 4.0)]
    assert admin.histogram_quantile(0.5, buckets) == pytest.approx(0.1)
    assert admin.histogram_quantile(0.99, buckets) == pytest.approx(0.1)
    assert admin.histogram_quantile(0.25, [(0.1, 2.0), (0.2, 4.0)]) == pytest.approx(0.05)
    assert admin.histogram_quantile(0.5, []) is None
    assert admin.histogram_quantile(0.5, [(0.1, 0.0), (float("inf"), 0.0)]) is None
    assert orjson.dumps(admin.summarize(merged))


def test_serve_configures_logging_then_runs_the_server(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from llmrelay.producer.api import server as api_server

    calls: list[str] = []

    class Stub:
        config = SimpleNamespace(host="127.0.0.1", port=8000)

        def run(self) -> None:
            calls.append("run")

    monkeypatch.setattr(api_server, "configure_logging", lambda _settings: calls.append("logging"))
    monkeypatch.setattr(api_server, "build_server", lambda *_args: Stub())
    api_server.serve(settings)
    assert calls == ["logging", "run"]
