"""Lua scripts: each one compiles on the real server, and LuaScript reloads a script the server lost."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError

from llmrelay.shared import scripts
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
