"""Two deployments on one Redis server, in two DBs: pub/sub ignores the DB, so their channel names
must not meet, or a caller in one hears the events of the other's request of the same id."""

from __future__ import annotations

import asyncio

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, RequestCancelledError, Settings, keys
from llmrelay.shared.events import StreamEvent, TokenEvent
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import OPENAI_MODEL, poll, rdb


def req(text: str, request_id: str) -> LLMRequest:
    return LLMRequest(
        model=OPENAI_MODEL,
        messages=[{"role": "user", "content": text}],  # type: ignore[list-item]
        request_id=request_id,
    )


def test_channel_names_carry_the_db_of_the_deployment() -> None:
    assert keys.namespace("redis://127.0.0.1:6379/0") == keys.namespace("redis://127.0.0.1:6379") == ""
    assert keys.namespace("rediss://:pw@host:6380/3") == "db3"
    assert keys.namespace("unix:///run/redis.sock?db=5") == "db5"
    # DB 0 keeps the names deployments have always used; another DB has its own.
    assert keys.channel("openai", "r-1", namespace="") == "llmrelay:ch:openai:r-1"
    assert keys.channel("openai", "r-1", namespace="db3") == "llmrelay:ch:db3:openai:r-1"
    assert keys.control_channel("gemini", namespace="") == "llmrelay:ctl:gemini"
    assert keys.control_channel("gemini", namespace="db3") == "llmrelay:ctl:db3:gemini"


async def _collect(events: object) -> list[StreamEvent]:
    return [event async for event in events]  # type: ignore[attr-defined]


async def test_two_deployments_on_one_server_hear_only_their_own_events(
    settings: Settings, sim: SimulatorServer, other_redis_url: str
) -> None:
    theirs = settings.model_copy(update={"redis_url": other_redis_url})
    assert keys.namespace(settings.redis_url) != keys.namespace(theirs.redis_url)
    mine_text, their_text = "mine [[sim:tokens=12]]", "theirs [[sim:tokens=12]]"
    async with LLMProducer(settings) as mine, LLMProducer(theirs) as other:
        # My caller listens for its request while no worker of mine runs.
        waiting = asyncio.create_task(_collect(mine.events(req(mine_text, "same-id"))))
        state = keys.state("openai", "same-id")
        await poll(lambda: rdb(settings.redis_url).hget(state, "status") == b"queued", timeout=30)
        their_worker = Worker(theirs, providers=["openai"], concurrency=4)
        await their_worker.start()
        try:
            # The other deployment runs a request of the same id, publishing while my caller listens.
            their_events = await asyncio.wait_for(_collect(other.events(req(their_text, "same-id"))), 60)
        finally:
            await their_worker.stop(grace=2)
        my_worker = Worker(settings, providers=["openai"], concurrency=4)
        await my_worker.start()
        try:
            my_events = await asyncio.wait_for(waiting, 60)
        finally:
            await my_worker.stop(grace=2)
    assert _text(their_events) == "".join(reply_for(their_text, 12))
    assert _text(my_events) == "".join(reply_for(mine_text, 12))
    assert my_events[-1].response.content == "".join(reply_for(mine_text, 12))  # type: ignore[attr-defined]
    assert [e.index for e in my_events] == list(range(1, len(my_events) + 1))  # no foreign event in it


async def test_a_cancel_in_one_deployment_leaves_the_others_job_running(
    settings: Settings, sim: SimulatorServer, other_redis_url: str
) -> None:
    theirs = settings.model_copy(update={"redis_url": other_redis_url})
    slow = "slow [[sim:tokens=20 tps=10]]"
    workers = [Worker(s, providers=["openai"], concurrency=4) for s in (settings, theirs)]
    async with LLMProducer(settings) as mine, LLMProducer(theirs) as other:
        for worker in workers:
            await worker.start()
        try:
            my_job = asyncio.create_task(mine.complete(req(slow, "cancel-me")))
            their_job = asyncio.create_task(other.complete(req(slow, "cancel-me")))
            state = keys.state("openai", "cancel-me")
            for url in (settings.redis_url, other_redis_url):
                await poll(lambda u=url: rdb(u).hget(state, "status") == b"running", timeout=30)
            assert await other.cancel("cancel-me")
            with pytest.raises(RequestCancelledError):
                await asyncio.wait_for(their_job, 30)
            response = await asyncio.wait_for(my_job, 60)
        finally:
            for worker in workers:
                await worker.stop(grace=2)
    assert response.content == "".join(reply_for(slow, 20))


def _text(events: list[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TokenEvent))
