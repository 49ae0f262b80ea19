"""Lua scripts: each compiles on the real server, LuaScript reloads a lost one, events are ours."""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from llmrelay.shared import events, keys, scripts
from llmrelay.shared.errors import ProviderUnavailableError, RequestCancelledError
from llmrelay.shared.queue import cancel_request
from llmrelay.shared.scripts import LuaScript

SOURCES = {
    name: getattr(scripts, name)
    for name in ("ENQUEUE", "BEGIN", "RELAY", "FINISH", "CANCEL", "ACQUIRE", "RECONCILE", "PAUSE")
}


class ScriptCache:
    """Just enough of a Redis client to watch SCRIPT LOAD and EVALSHA."""

    def __init__(self) -> None:
        self.loaded: dict[str, str] = {}
        self.loads = 0
        self.calls: list[tuple[str, int, tuple[Any, ...]]] = []

    async def script_load(self, source: str) -> str:
        self.loads += 1
        sha = hashlib.sha1(source.encode()).hexdigest()
        self.loaded[sha] = source
        return sha

    async def evalsha(self, sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        if sha not in self.loaded:
            raise NoScriptError("NOSCRIPT No matching script.")
        self.calls.append((sha, numkeys, keys_and_args))
        return "ok"

    def flush(self) -> None:
        self.loaded.clear()


async def test_script_is_loaded_once_and_called_by_sha() -> None:
    server = ScriptCache()
    script = LuaScript("return 1")
    assert await script(server, ["k1", "k2"], ["a", 1]) == "ok"  # type: ignore[arg-type]
    assert await script(server, ["k1"], []) == "ok"  # type: ignore[arg-type]
    assert server.loads == 1
    sha = hashlib.sha1(b"return 1").hexdigest()
    assert script.sha == sha
    assert server.calls == [(sha, 2, ("k1", "k2", "a", 1)), (sha, 1, ("k1",))]


async def test_script_is_loaded_again_when_the_server_lost_it() -> None:
    server = ScriptCache()
    script = LuaScript("return 2")
    await script(server, [], [])  # type: ignore[arg-type]
    server.flush()  # a restart or a failover to a replica without the script
    assert await script(server, ["k"], ["v"]) == "ok"  # type: ignore[arg-type]
    assert server.loads == 2
    assert len(server.calls) == 2


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_every_script_compiles_on_redis(redis_url: str, name: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    try:
        sha = await client.script_load(SOURCES[name])
    finally:
        await client.aclose()
    assert sha == hashlib.sha1(SOURCES[name].encode()).hexdigest()


async def test_pause_script_extends_but_never_shortens(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    pause = LuaScript(scripts.PAUSE)
    try:
        assert await pause(client, ["{llmrelay:openai}:pause"], [5000]) == 1
        assert await pause(client, ["{llmrelay:openai}:pause"], [100]) == 1
        assert await client.pttl("{llmrelay:openai}:pause") > 1000
    finally:
        await client.aclose()


# -- the scripts write the events shared.events encodes ---------------------------------------------

STATE, EVENTS = keys.state("openai", "r-1"), keys.events("openai", "r-1")
WORK, DEAD = keys.work_stream("openai", "interactive"), keys.dead_letter("openai")
CONTEXT = {"trace_id": "t-1", "source_agent": 'the "planner"'}


async def _enqueue(client: aioredis.Redis, suffix: bytes) -> bytes:
    enqueue = LuaScript(scripts.ENQUEUE)
    outcome, sid = await enqueue(client, [STATE, WORK], ["r-1", b"{}", 100, 9e9, 60_000, suffix])
    assert outcome == b"queued"
    return bytes(sid)


async def test_finish_joins_head_and_tail_around_the_index_after_the_log(redis_url: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    suffix = events.context_suffix(CONTEXT)
    error = ProviderUnavailableError("down")
    try:
        sid = await _enqueue(client, suffix)
        await client.xadd(EVENTS, {"e": b"x"}, id="0-7")  # an event the writer did not count
        head, tail = events.split(events.ErrorEvent.of(3, error), suffix)
        args = ["ch", 3, head, tail, "failed", orjson.dumps(error.to_dict()), "", sid, "g", 60_000, b""]
        assert await LuaScript(scripts.FINISH)(client, [STATE, EVENTS, WORK, DEAD], args) == 1
        (entry_id, fields), *_ = await client.xrevrange(EVENTS, count=1)
    finally:
        await client.aclose()
    assert entry_id == b"0-8"
    assert fields[b"e"] == events.encode(events.ErrorEvent.of(8, error), suffix)
    decoded = events.decode(fields[b"e"])
    assert (decoded.index, decoded.context) == (8, CONTEXT)


@pytest.mark.parametrize("context", [{}, CONTEXT], ids=["no context", "context"])
async def test_cancel_of_a_queued_job_writes_the_encoded_error_with_its_context(
    redis_url: str, context: dict[str, str]
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    suffix = events.context_suffix(context)
    try:
        await _enqueue(client, suffix)
        assert await cancel_request(client, "openai", "r-1", 60, namespace="")
        entries = await client.xrange(EVENTS)
    finally:
        await client.aclose()
    [(entry_id, fields)] = entries
    assert entry_id == b"0-1"
    expected = events.ErrorEvent.of(1, RequestCancelledError("cancelled by the caller"))
    assert fields[b"e"] == events.encode(expected, suffix)
    decoded = events.decode(fields[b"e"])
    assert isinstance(decoded, events.ErrorEvent) and decoded.context == context
    assert type(decoded.exception()) is RequestCancelledError
