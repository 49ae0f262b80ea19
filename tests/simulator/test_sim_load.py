"""The simulator holds 3,000 concurrent open streams.

The load comes from raw ``httpx2.AsyncClient`` instances, one connection per stream. It is spread over
several clients because one httpx2 pool of 3,000 connections spends O(n) per request walking its pool
(about 20 s of client CPU for this test), which would measure the client instead of the simulator.
The client needs a few seconds of CPU to open 3,000 connections; each stream waits ``TTFT_MS`` before
its first token so that they are all open at once. The simulator counts the peak itself
(``open_streams_peak``): a poller in this event loop would be starved by the load it measures.
"""

from __future__ import annotations

import asyncio
import time

import httpx2
import orjson
import pytest

from llmrelay.simulator import SimulatorServer, reply_for

STREAMS = 3000
CLIENTS = 60
TOKENS = 10
TOKENS_PER_SECOND = 4.0
TTFT_MS = 1000.0
OPEN_FOR = TTFT_MS / 1000 + (TOKENS - 1) / TOKENS_PER_SECOND  # 3.25 s per stream


def _content(body: bytes) -> str:
    texts: list[str] = []
    for line in body.split(b"\n"):
        if line.startswith(b"data: {"):
            choices = orjson.loads(line[6:])["choices"]
            if choices:
                texts.append(choices[0]["delta"].get("content") or "")
    return "".join(texts)


@pytest.mark.slow
async def test_3000_concurrent_streams(sim: SimulatorServer) -> None:
    sim.configure(reply_tokens=TOKENS, tokens_per_second=TOKENS_PER_SECOND, ttft_ms=TTFT_MS, record=False)
    per_client = STREAMS // CLIENTS + 10
    limits = httpx2.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [httpx2.AsyncClient(limits=limits, timeout=60.0, verify=False) for _ in range(CLIENTS)]
    url = sim.openai_base_url + "/chat/completions"

    async def one(i: int) -> bool:
        prompt = f"load test stream number {i}"
        body = {"model": "gpt-6.1-terra", "stream": True, "messages": [{"role": "user", "content": prompt}]}
        async with clients[i % CLIENTS].stream("POST", url, json=body) as response:
            assert response.status_code == 200
            data = b"".join([part async for part in response.aiter_bytes()])
        assert data.endswith(b"data: [DONE]\n\n")
        return _content(data) == "".join(reply_for(prompt, TOKENS))

    start = time.perf_counter()
    try:
        results = await asyncio.gather(*(one(i) for i in range(STREAMS)))
    finally:
        elapsed = time.perf_counter() - start
        for client in clients:
            await client.aclose()

    assert results.count(True) == STREAMS
    assert elapsed >= OPEN_FOR * 0.9
    assert elapsed < 45, f"{STREAMS} streams took {elapsed:.1f}s"
    health = sim.health()
    assert health["open_streams"] == 0
    assert health["requests_total"] >= STREAMS
    assert health["open_streams_peak"] >= STREAMS * 0.75, f"only {health['open_streams_peak']} open at once"
