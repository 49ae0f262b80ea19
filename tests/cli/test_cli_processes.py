"""`llmrelay simulator`, `llmrelay worker` and `llmrelay api` start, serve, and exit 0 on SIGTERM."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from clitools import Spawned, clean_env, free_port, http_ok

from llmrelay.shared import keys
from llmrelay.shared.payloads import WorkerHeartbeat, decode_each, decode_heartbeat
from tests.support import heartbeat_pids, wait_for

pytestmark = pytest.mark.slow

TIMEOUT = 60.0


def test_simulator_command_serves_and_stops(spawn: Callable[..., Spawned], tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    sim = spawn(
        ["simulator", "--port", "0", "--port-file", str(port_file), "--reply-tokens", "3"], name="sim"
    )
    wait_for(port_file.exists, timeout=TIMEOUT, what="the port file", proc=sim.proc, log=sim.log)
    url = f"http://127.0.0.1:{port_file.read_text().strip()}"
    wait_for(lambda: http_ok(f"{url}/_sim/health"), timeout=TIMEOUT, what="the simulator", proc=sim.proc)
    import httpx2

    with httpx2.Client(timeout=10, trust_env=False) as client:
        config = client.get(f"{url}/_sim/config").json()
    assert config["reply_tokens"] == 3
    assert sim.stop(signal.SIGTERM, timeout=TIMEOUT) == 0


def _heartbeats(client: redis.Redis) -> list[WorkerHeartbeat]:
    ids = client.zrange(keys.WORKERS_REGISTRY, 0, -1)
    return decode_each(
        decode_heartbeat, client.mget([keys.worker_heartbeat(i.decode()) for i in ids]) if ids else []
    )


def test_worker_command_registers_and_drains_on_sigterm(
    spawn: Callable[..., Spawned], redis_url: str
) -> None:
    env = clean_env(REDIS_URL=redis_url, LLMRELAY_SHUTDOWN_GRACE="5")
    worker = spawn(["worker", "--providers", "openai,gemini", "--concurrency", "4"], env, name="worker")
    client = redis.Redis.from_url(redis_url)
    try:
        wait_for(
            lambda: worker.proc.pid in heartbeat_pids(client),
            timeout=TIMEOUT,
            what="the worker's heartbeat",
            proc=worker.proc,
            log=worker.log,
        )
        [beat] = _heartbeats(client)
        assert sorted(beat["providers"]) == ["gemini", "openai"]
        assert beat["concurrency"] == 4
        assert worker.stop(signal.SIGTERM, timeout=TIMEOUT) == 0, worker.output()
        assert worker.proc.pid not in heartbeat_pids(client)
    finally:
        client.close()


def test_api_command_serves_health_and_stops(spawn: Callable[..., Spawned], redis_url: str) -> None:
    port = free_port()
    api = spawn(["api", "--port", str(port)], clean_env(REDIS_URL=redis_url), name="api")
    wait_for(
        lambda: http_ok(f"http://127.0.0.1:{port}/health"),
        timeout=TIMEOUT,
        what="the façade's /health",
        proc=api.proc,
        log=api.log,
    )
    assert api.stop(signal.SIGTERM, timeout=TIMEOUT) == 0, api.output()
