"""A thousand concurrent requests for one provider, through one producer and one worker process."""

from __future__ import annotations

import asyncio

import pytest
import redis

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, RequestCancelledError, Settings
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.queue.conftest import poll

pytestmark = pytest.mark.slow

N = 1000


async def test_a_thousand_concurrent_streams_share_a_few_connections(
    settings: Settings, sim: SimulatorServer
) -> None:
    # The provider holds every request long enough for all of them to be in flight together, however
    # slowly this machine starts them; then they are cancelled, which also frees every slot.
    text = "many at once [[sim:ttft_ms=20000 tokens=10]]"
    worker = Worker(settings, providers=["openai"], concurrency=N)
    await worker.start()
    try:
        async with LLMProducer(settings) as producer:

            async def one(i: int) -> str:
                request = LLMRequest(
                    model="gpt-4.1", request_id=f"many-{i}", messages=[{"role": "user", "content": text}]
                )
                return "".join([t async for t in producer.stream(request)])

            tasks = [asyncio.create_task(one(i)) for i in range(N)]
            await poll(lambda: sim.health()["open_streams"] >= N, timeout=60, interval=0.1)
            db = int(settings.redis_url.rsplit("/", 1)[1])
            clients = redis.Redis.from_url(settings.redis_url).client_list()
            ours = [c for c in clients if int(c.get("db", -1)) == db]
            cancelled = await asyncio.gather(*(producer.cancel(f"many-{i}") for i in range(N)))
            outcomes = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=60)
            await poll(lambda: not worker._running["openai"], timeout=20)
            # and the freed slots serve the next request at once
            quick = LLMRequest(model="gpt-4.1", messages=[{"role": "user", "content": "after the crowd"}])
            assert (await producer.complete(quick)).content == "".join(reply_for("after the crowd", 20))
    finally:
        await worker.stop(grace=5)
    assert all(cancelled)
    assert all(isinstance(o, RequestCancelledError) for o in outcomes)
    # One pool and one pub/sub connection per process, not a connection per request.
    assert len(ours) < 200
