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
from tests.support import poll

pytestmark = pytest.mark.slow

N = 1000
#: Bounds, not expectations: how long a busy machine may take to open (and then close) them all.
OPEN_ALL_WITHIN = 300.0
HOLD_MS = int(OPEN_ALL_WITHIN * 2 * 1000)


@pytest.mark.timeout(OPEN_ALL_WITHIN * 2)
async def test_a_thousand_concurrent_streams_share_a_few_connections(settings: Settings) -> None:
    # The provider holds every request (and each request's deadline outlasts it) until all of them are
    # in flight together, however slowly this machine starts them; then they are cancelled, which
    # also frees every slot. On a quiet machine they are all open within seconds. The simulator is
    # this test's own: it goes on holding the requests it no longer has a client for, until it stops.
    text = f"many at once [[sim:ttft_ms={HOLD_MS} tokens=10]]"
    with SimulatorServer() as sim:
        own = settings.model_copy(update={"openai_base_url": sim.openai_base_url})
        worker = Worker(own, providers=["openai"], concurrency=N)
        await worker.start()
        try:
            async with LLMProducer(own) as producer:

                async def one(i: int) -> str:
                    request = LLMRequest(
                        model="gpt-6.1-terra",
                        request_id=f"many-{i}",
                        messages=[{"role": "user", "content": text}],
                        timeout=HOLD_MS / 1000,
                    )
                    return "".join([t async for t in producer.stream(request)])

                tasks = [asyncio.create_task(one(i)) for i in range(N)]
                try:
                    await poll(lambda: sim.health()["open_streams"] >= N, timeout=OPEN_ALL_WITHIN, interval=0.1)
                except AssertionError:
                    ended = [t for t in tasks if t.done()]
                    errors = sorted({repr(t.exception())[:200] for t in ended if t.exception()})
                    pytest.fail(
                        f"{sim.health()['open_streams']} of {N} streams open; {len(ended)} callers ended "
                        f"({errors[:5]}); the worker runs {len(worker._running['openai'])}"
                    )
                db = int(own.redis_url.rsplit("/", 1)[1])
                clients = redis.Redis.from_url(own.redis_url).client_list()
                ours = [c for c in clients if int(c.get("db", -1)) == db]
                cancelled = await asyncio.gather(*(producer.cancel(f"many-{i}") for i in range(N)))
                outcomes = await asyncio.wait_for(
                    asyncio.gather(*tasks, return_exceptions=True), timeout=OPEN_ALL_WITHIN
                )
                await poll(lambda: not worker._running["openai"], timeout=OPEN_ALL_WITHIN)
                # and the freed slots serve the next request at once
                quick = LLMRequest(model="gpt-6.1-terra", messages=[{"role": "user", "content": "after the crowd"}])
                assert (await producer.complete(quick)).content == "".join(reply_for("after the crowd", 20))
        finally:
            await worker.stop(grace=5)
    assert all(cancelled)
    assert all(isinstance(o, RequestCancelledError) for o in outcomes)
    # One pool and one pub/sub connection per process, not a connection per request.
    assert len(ours) < 200
