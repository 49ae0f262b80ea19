"""Leases under starvation: a worker whose event loop is blocked keeps its job (the provider is called
once), a hung one loses it after the stall bound, and a worker that lost a job never calls for it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, Settings, keys, scripts
from llmrelay.shared.errors import ProviderUnavailableError
from llmrelay.shared.models import Usage
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderCall, StreamEnd
from llmrelay.worker.providers.base import StreamItem
from llmrelay.worker.service import Worker
from tests.queue.scripted import ScriptedAdapter
from tests.support import OPENAI_MODEL, poll, rdb

pytestmark = pytest.mark.slow

T = TypeVar("T")
STREAM = keys.work_stream("openai", "interactive")


def req(text: str, request_id: str) -> LLMRequest:
    return LLMRequest(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": text}],  # type: ignore[list-item]
        request_id=request_id,
    )


class WorkerOnItsOwnLoop:
    """A worker whose event loop runs on a thread of its own, so that the test can block that loop
    (as CPU-bound code, a long GC pause or a starved core would) while everything else runs on."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="blockable-worker", daemon=True)
        self._thread.start()
        self.worker: Worker | None = None
        self.release = threading.Event()

    async def _on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, self.loop))

    async def start(self, settings: Settings) -> Worker:
        async def build() -> Worker:
            worker = Worker(settings, providers=["openai"], concurrency=4)
            await worker.start()
            return worker

        self.worker = await self._on_loop(build())
        return self.worker

    def block(self, seconds: float, *, busy: bool) -> Future[float]:
        """Block the worker's loop for ``seconds`` (or until ``release`` is set); ``busy`` spins on the
        CPU (holding the GIL but for the interpreter's switches) instead of waiting. The future ends with
        the monotonic time the block began."""
        began: Future[float] = Future()

        def hold() -> None:
            start = time.monotonic()
            began.set_result(start)
            if busy:
                while time.monotonic() - start < seconds and not self.release.is_set():
                    pass
            else:
                self.release.wait(seconds)

        self.loop.call_soon_threadsafe(hold)
        return began

    async def stop(self) -> None:
        self.release.set()
        if self.worker is not None:
            await self._on_loop(self.worker.stop(grace=2))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@pytest.fixture
async def two_workers() -> AsyncIterator[list[WorkerOnItsOwnLoop]]:
    pair = [WorkerOnItsOwnLoop(), WorkerOnItsOwnLoop()]
    yield pair
    for holder in pair:
        await holder.stop()


async def _owner_once_called(
    settings: Settings, sim: SimulatorServer, pair: list[WorkerOnItsOwnLoop], request_id: str
) -> tuple[WorkerOnItsOwnLoop, WorkerOnItsOwnLoop]:
    """The worker running the job once its provider call is under way, and the other one."""
    client = rdb(settings.redis_url)
    state = keys.state("openai", request_id)
    await poll(lambda: sim.requests() and client.hget(state, "status") == b"running", timeout=30)
    owner_id = client.hget(state, "owner")
    owner = next(h for h in pair if h.worker is not None and h.worker.worker_id.encode() == owner_id)
    return owner, next(h for h in pair if h is not owner)


async def test_a_worker_whose_loop_is_blocked_past_the_lease_keeps_its_job(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer, two_workers: list[WorkerOnItsOwnLoop]
) -> None:
    for holder in two_workers:
        await holder.start(settings)  # each reclaims, every half lease, what has been idle for a lease
    text = "starved [[sim:tokens=40 tps=10]]"
    await producer.submit(req(text, "starved-1"))
    owner, _other = await _owner_once_called(settings, sim, two_workers, "starved-1")
    await asyncio.wrap_future(owner.block(4 * settings.lease_seconds, busy=True))
    response = await producer.result("starved-1", timeout=60)
    state = rdb(settings.redis_url).hgetall(keys.state("openai", "starved-1"))
    assert len(sim.requests()) == 1  # the provider was called once, by the worker that was starved
    assert state[b"deliveries"] == b"1"
    assert owner.worker is not None and state[b"owner"].decode() == owner.worker.worker_id
    assert response.attempts == 1 and response.content == "".join(reply_for(text, 40))


async def test_a_hung_worker_loses_its_job_after_the_stall_bound(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer, two_workers: list[WorkerOnItsOwnLoop]
) -> None:
    stall = 3 * settings.lease_seconds
    for holder in two_workers:
        await holder.start(settings.model_copy(update={"stall_seconds": stall}))
    text = "hung [[sim:tokens=40 tps=10]]"
    await producer.submit(req(text, "hung-1"))
    owner, heir = await _owner_once_called(settings, sim, two_workers, "hung-1")
    began = await asyncio.wrap_future(owner.block(120, busy=False))
    client = rdb(settings.redis_url)
    state = keys.state("openai", "hung-1")
    assert heir.worker is not None
    heir_id = heir.worker.worker_id.encode()
    await poll(lambda: client.hget(state, "owner") == heir_id, timeout=60)
    reclaimed_after = time.monotonic() - began
    owner.release.set()
    response = await producer.result("hung-1", timeout=60)
    assert reclaimed_after >= stall  # a lease was not enough: only the stall bound let it go
    assert client.hget(state, "deliveries") == b"2"
    assert len(sim.requests()) == 2
    assert response.content == "".join(reply_for(text, 40))


END = StreamEnd("stop", Usage.of(3, 2))


class RivalBeginsDuringTheFirstCall(ScriptedAdapter):
    """Its first call fails after another worker began the job (as a reclaim would have while this
    worker was stopped); a second call would answer."""

    def __init__(self, settings: Settings, request_id: str) -> None:
        super().__init__([ProviderUnavailableError("cut")], ["an ", "answer", END])
        self._client = rdb(settings.redis_url)
        self._state = keys.state("openai", request_id)

    async def _stream(self, call: ProviderCall) -> AsyncIterator[StreamItem]:
        if self.calls == 0:
            self._client.hincrby(self._state, "deliveries", 1)
        async for item in super()._stream(call):
            yield item


async def test_a_worker_that_lost_its_job_does_not_call_the_provider_again(
    settings: Settings, producer: LLMProducer
) -> None:
    adapter = RivalBeginsDuringTheFirstCall(settings, "lost-1")
    # A long lease: this worker's own reclaim must not pick the job up again during the test.
    worker = Worker(
        settings.model_copy(update={"lease_seconds": 30.0}),
        providers=["openai"],
        concurrency=2,
        adapters={"openai": adapter},
    )
    await worker.start()
    try:
        await producer.submit(req("lost", "lost-1"))
        await poll(lambda: worker.jobs_done == 1, timeout=30)  # the delivery ended (it lost the job)
    finally:
        await worker.stop(grace=1)
    assert adapter.calls == 1  # the retry saw the newer delivery and made no second call
    assert rdb(settings.redis_url).hget(keys.state("openai", "lost-1"), "status") == b"running"


async def test_renewal_leaves_alone_an_entry_another_consumer_reclaimed(settings: Settings) -> None:
    client = rdb(settings.redis_url)
    client.xgroup_create(STREAM, keys.GROUP, id="0", mkstream=True)
    client.xadd(STREAM, {"id": "r-1", "j": "{}"})
    [(_stream, [(entry_id, _fields)])] = client.xreadgroup(keys.GROUP, "first", {STREAM: ">"}, count=1)
    client.xclaim(STREAM, keys.GROUP, "heir", 0, [entry_id], idle=5000, justid=True)
    renew = client.register_script(scripts.RENEW)
    assert renew(keys=[STREAM], args=[keys.GROUP, "first", entry_id]) == 0
    [pending] = client.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=10)
    assert pending["consumer"] == b"heir" and pending["time_since_delivered"] >= 5000
    assert renew(keys=[STREAM], args=[keys.GROUP, "heir", entry_id]) == 1
    [pending] = client.xpending_range(STREAM, keys.GROUP, min="-", max="+", count=10)
    assert pending["consumer"] == b"heir" and pending["time_since_delivered"] < 5000
    assert pending["times_delivered"] == 1  # renewing is not a delivery


async def test_the_lease_thread_outlives_a_redis_it_cannot_reach() -> None:
    from structlog.testing import capture_logs

    from llmrelay.worker.leases import LeaseKeeper

    keeper = LeaseKeeper("redis://127.0.0.1:1/0", "lonely", lease_seconds=0.15, stall_seconds=60)
    keeper.add(STREAM, "1-0")
    with capture_logs() as logs:

        def failures() -> list[dict[str, Any]]:
            return [e for e in logs if e["event"] == "lease renewal failed"]

        keeper.start()
        try:
            await poll(lambda: len(failures()) >= 2, timeout=30)  # it failed, and tried again
        finally:
            await asyncio.to_thread(keeper.stop)
    assert failures()[0]["error"] == "ConnectionError"
