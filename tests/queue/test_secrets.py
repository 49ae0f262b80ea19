"""A canary key planted in the settings shows up nowhere: logs, Redis, responses, errors, metrics."""

from __future__ import annotations

import io
import uuid

import pytest
import redis
from prometheus_client import generate_latest

from llmrelay.producer import LLMProducer
from llmrelay.shared import AuthenticationError, LLMRequest, Settings
from llmrelay.shared.logging import configure_logging
from llmrelay.worker.service import Worker


def _dump_redis(url: str) -> bytes:
    """Every key and value of the test DB, whatever its type."""
    client = redis.Redis.from_url(url)
    out = []
    for key in client.scan_iter(count=1000):
        out.append(key)
        kind = client.type(key)
        if kind == b"string":
            out.append(client.get(key) or b"")
        elif kind == b"hash":
            for k, v in client.hgetall(key).items():
                out += [k, v]
        elif kind == b"stream":
            for _id, fields in client.xrange(key):
                for k, v in fields.items():
                    out += [k, v]
        elif kind == b"zset":
            out += [m for m, _ in client.zrange(key, 0, -1, withscores=True)]
    return b"\n".join(out)


@pytest.mark.parametrize(
    ("model", "env_name", "canary"),
    [
        ("gpt-6.1-terra", "OPENAI_API_KEY", f"sk-proj-canary{uuid.uuid4().hex}"),
        ("claude-haiku-5-5", "ANTHROPIC_API_KEY", f"sk-ant-api03-canary{uuid.uuid4().hex}"),
        ("gemini-3.8-flash", "GEMINI_API_KEY", f"AIzaCanary{uuid.uuid4().hex[:29]}"),
    ],
)
async def test_canary_key_leaks_nowhere(model: str, env_name: str, canary: str, env: dict[str, str]) -> None:
    settings = Settings(_env_file=None, **{**env, env_name: canary, "LLMRELAY_LOG_LEVEL": "DEBUG"})  # type: ignore[arg-type]
    logs = io.StringIO()
    configure_logging(settings, stream=logs)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    try:
        async with LLMProducer(settings) as producer:
            ok = await producer.complete(
                LLMRequest(model=model, messages=[{"role": "user", "content": "hi"}])
            )
            with pytest.raises(AuthenticationError) as refused:
                await producer.complete(
                    LLMRequest(model=model, messages=[{"role": "user", "content": "[[sim:fault=401]]"}])
                )
            streamed = [
                t
                async for t in producer.stream(
                    LLMRequest(model=model, messages=[{"role": "user", "content": "s"}])
                )
            ]
        await worker._heartbeat_once()  # the metrics snapshot goes to Redis too
    finally:
        await worker.stop(grace=2)
    secret = canary.encode()
    assert secret not in ok.model_dump_json().encode()
    assert canary not in "".join(streamed)
    err = refused.value
    assert canary not in str(err)
    assert canary not in repr(err)
    assert canary not in str(err.to_dict())
    assert secret not in _dump_redis(settings.redis_url)
    assert secret not in generate_latest(worker.registry)
    text = logs.getvalue()
    assert "request failed" in text  # the failure was logged, with the key masked
    assert canary not in text
    assert canary not in repr(settings)
