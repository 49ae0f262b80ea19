"""The runner's dispatch on what BEGIN says of a delivered entry: skip, cancelled, and a reply it does
not know (the other outcomes are pinned end to end in test_queue)."""

from __future__ import annotations

from typing import Any

import pytest

from llmrelay.producer import LLMProducer
from llmrelay.shared import LLMRequest, RequestCancelledError, Settings, keys
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker import runner as runner_module
from llmrelay.worker.runner import Running
from llmrelay.worker.service import Worker
from tests.support import poll, rdb

STREAM = keys.work_stream("openai", "interactive")


def _req(text: str, request_id: str) -> LLMRequest:
    return LLMRequest(
        model="gpt-6.1-terra",
        messages=[{"role": "user", "content": text}],  # type: ignore[list-item]
        request_id=request_id,
    )


async def _queued(
    settings: Settings, producer: LLMProducer, request_id: str
) -> tuple[str, dict[bytes, bytes]]:
    """Submit with no worker reading openai; returns the work stream entry the job became."""
    await producer.submit(_req(f"job {request_id}", request_id))
    [(entry_id, fields)] = rdb(settings.redis_url).xrange(STREAM)
    return entry_id.decode(), fields


async def test_a_cancel_that_lands_between_read_and_begin_ends_the_job_unrun(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    await _queued(settings, producer, "begin-cancel")
    # The caller's cancel raced the read: the flag is set while the entry is still in the stream.
    rdb(settings.redis_url).hset(keys.state("openai", "begin-cancel"), "cancel", "1")
    w = Worker(settings, providers=["openai"], concurrency=2)
    await w.start()
    try:
        with pytest.raises(RequestCancelledError):
            await producer.result("begin-cancel", timeout=10)
    finally:
        await w.stop(grace=1)
    assert sim.requests() == []
    assert rdb(settings.redis_url).xlen(STREAM) == 0


async def test_an_entry_of_a_finished_job_is_dropped_without_running_again(
    settings: Settings, producer: LLMProducer, sim: SimulatorServer
) -> None:
    _entry_id, fields = await _queued(settings, producer, "begin-skip")
    client = rdb(settings.redis_url)
    state = keys.state("openai", "begin-skip")
    w = Worker(settings, providers=["openai"], concurrency=2)
    await w.start()
    try:
        first = await producer.result("begin-skip", timeout=10)
        stored = client.hgetall(state)
        calls = len(sim.requests())
        client.xadd(STREAM, fields)  # the same job delivered once more
        await poll(lambda: client.xlen(STREAM) == 0)
    finally:
        await w.stop(grace=1)
    assert len(sim.requests()) == calls == 1
    assert client.hgetall(state) == stored
    assert stored[b"status"] == b"done"
    assert (await producer.result("begin-skip", timeout=5)).content == first.content


async def test_a_begin_reply_of_no_known_shape_is_refused(
    settings: Settings, producer: LLMProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry_id, fields = await _queued(settings, producer, "begin-odd")

    async def odd_begin(*_args: Any) -> list[Any]:
        return [b"run", 0, 1]  # "run" without the pause: a script and runner out of step

    monkeypatch.setattr(runner_module, "_BEGIN", odd_begin)
    w = Worker(settings, providers=["anthropic"], concurrency=2)  # leaves the openai entry alone
    await w.start()
    try:
        running = Running(request_id="begin-odd", entry_id=entry_id, lane="interactive")
        with pytest.raises(RuntimeError, match="unexpected reply from the BEGIN script"):
            await w.runner.run("openai", "interactive", entry_id, fields, running)
    finally:
        await w.stop(grace=1)
