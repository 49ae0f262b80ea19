"""Housekeeping: stale consumers and workers go, consumers that own jobs stay, one run per schedule."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from llmrelay.shared import Governance, Settings, keys
from llmrelay.shared.jobs import ENTRY_ID, ENTRY_JOB
from llmrelay.worker.housekeeping import RUNS_KEY, close_housekeeper, housekeeper, sweep


@pytest.fixture
async def client(redis_url: str) -> Redis:
    r = Redis.from_url(redis_url)
    yield r
    await r.aclose()


async def test_sweep_removes_idle_consumers_but_keeps_owners_of_pending_jobs(
    client: Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = keys.work_stream("openai", "interactive")
    await client.xgroup_create(stream, keys.GROUP, id="0", mkstream=True)
    await client.xgroup_createconsumer(stream, keys.GROUP, "gone-idle")
    await client.xadd(stream, {ENTRY_ID: "x", ENTRY_JOB: "{}"})
    await client.xreadgroup(keys.GROUP, "owner-of-a-job", {stream: ">"}, count=1)
    monkeypatch.setattr("llmrelay.worker.housekeeping.STALE_CONSUMER_SECONDS", -1)
    removed = await sweep(client, ["openai"])
    names = {c["name"] for c in await client.xinfo_consumers(stream, keys.GROUP)}
    assert names == {b"owner-of-a-job"}
    assert removed["consumers"] == 1


async def test_sweep_drops_stale_workers_and_old_dead_letters(client: Redis) -> None:
    now = time.time()
    await client.zadd(keys.WORKERS_REGISTRY, {"alive": now, "long-gone": now - 3600})
    dead = keys.dead_letter("gemini")
    await client.xadd(dead, {"id": "old"}, id=f"{int((now - 30 * 86400) * 1000)}-0")
    await client.xadd(dead, {"id": "new"})
    removed = await sweep(client, ["gemini"], now=now)
    assert removed == {"consumers": 0, "workers": 1, "dead_letters": 1}
    assert await client.zrange(keys.WORKERS_REGISTRY, 0, -1) == [b"alive"]
    assert [f[b"id"] for _, f in await client.xrange(dead)] == [b"new"]


async def test_two_workers_run_each_scheduled_round_once(redis_url: str, client: Redis) -> None:
    settings = Settings(_env_file=None, REDIS_URL=redis_url)  # type: ignore[call-arg]
    governance = Governance.from_settings(settings)
    workers = [housekeeper(settings, ["openai"], governance, second=set(range(60))) for _ in range(2)]
    tasks = [asyncio.create_task(w.async_run()) for w in workers]
    try:
        await asyncio.sleep(3.5)  # the behaviour under test: rounds are due every second for 3.5 s
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for w in workers:
            await close_housekeeper(w)
    runs = int(await client.get(RUNS_KEY) or 0)
    assert 2 <= runs <= 4  # one per second, not one per worker per second
