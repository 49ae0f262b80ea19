"""A thousand concurrent requests for one provider, through one producer and one worker process."""

from __future__ import annotations

import asyncio

import pytest
import redis

from producer import LLMProducer
from shared import LLMRequest, Settings
from simulator.reply import reply_for
from simulator.server import SimulatorServer
from worker.service import Worker

pytestmark = pytest.mark.slow

N = 1000


async def test_a_thousand_concurrent_streams_share_a_few_connections(
    settings: Settings, sim: SimulatorServer
) -> None:
    text = "many at once [[sim:ttft_ms=4000 tokens=10 tps=20]]"
    worker = Worker(settings, providers=["openai"], concurrency=N)
    await worker.start()
    try:
        async with LLMProducer(settings) as producer:

            async def one(i: int) -> str:
                request = LLMRequest(model="gpt-4.1", messages=[{"role": "user", "content": text}])
                return "".join([t async for t in producer.stream(request)])

            tasks = [asyncio.create_task(one(i)) for i in range(N)]
            await asyncio.sleep(2.5)  # the requests are waiting on the provider now
            db = int(settings.redis_url.rsplit("/", 1)[1])
            clients = redis.Redis.from_url(settings.redis_url).client_list()
            ours = [c for c in clients if int(c.get("db", -1)) == db]
            results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=90)
    finally:
        await worker.stop(grace=5)
    assert results == ["".join(reply_for(text, 10))] * N
    assert sim.health()["open_streams_peak"] >= N * 0.9  # they really were in flight together
    # One pool and one pub/sub connection per process, not a connection per request.
    assert len(ours) < 200
