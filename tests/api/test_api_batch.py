"""The llm.batch.* methods through POST /jsonrpc: submit, follow, page through results, cancel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from api_support import chat, rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.shared import Settings, keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import poll

MODELS = ["gpt-6.1-terra", "claude-haiku-5-5", "gemini-3.8-flash"]


async def call(client: httpx2.AsyncClient, method: str, params: Any = None, **headers: str) -> dict[str, Any]:
    response = await client.post("/jsonrpc", json=rpc(method, params), headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def finished(client: httpx2.AsyncClient, batch_id: str) -> dict[str, Any] | None:
    status: dict[str, Any] = (await call(client, "llm.batch.status", {"batch_id": batch_id}))["result"]
    return status if status["finished"] else None


async def test_a_batch_runs_every_item_and_returns_them_in_order(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer
) -> None:
    prompts = [f"item {n}: name a colour" for n in range(12)]
    requests = [chat(p, MODELS[n % 3]) for n, p in enumerate(prompts)]
    requests[5]["trace_id"] = "own-trace"
    submitted = await call(
        client,
        "llm.batch.submit",
        {"requests": requests, "batch_id": "colours"},
        **{"X-Trace-Id": "from-header"},
    )
    assert submitted["result"] == {"batch_id": "colours", "total": 12}

    status = await poll(lambda: finished(client, "colours"), timeout=15)
    assert status["state"] == "done"
    assert (status["total"], status["completed"], status["fed"]) == (12, 12, 12)
    assert status["counts"] == {"done": 12}
    assert status["progress"] == 1.0

    page = (await call(client, "llm.batch.results", {"batch_id": "colours"}))["result"]
    assert page["next_offset"] is None
    items = page["items"]
    assert [item["index"] for item in items] == list(range(12))
    assert [item["request_id"] for item in items] == [f"colours-{n:06d}" for n in range(12)]
    assert all(item["status"] == "done" and item["error"] is None for item in items)
    responses = [item["response"] for item in items]
    assert [r["content"] for r in responses] == ["".join(reply_for(p, 20)) for p in prompts]
    assert [r["model"] for r in responses] == [MODELS[n % 3] for n in range(12)]
    assert [r["provider"] for r in responses[:3]] == ["openai", "anthropic", "gemini"]
    assert [r["trace_id"] for r in responses] == ["from-header"] * 5 + ["own-trace"] + ["from-header"] * 6
    assert len(sim.requests()) == 12


async def test_results_come_in_pages_until_next_offset_is_null(client: httpx2.AsyncClient) -> None:
    # No worker: the items stay pending, which is enough to page through them.
    requests = [chat(f"page item {n}") for n in range(12)]
    await call(client, "llm.batch.submit", {"requests": requests, "batch_id": "paged"})
    seen: list[dict[str, Any]] = []
    offsets: list[int | None] = [0]
    while offsets[-1] is not None:
        params = {"batch_id": "paged", "offset": offsets[-1], "limit": 5}
        page = (await call(client, "llm.batch.results", params))["result"]
        seen += page["items"]
        offsets.append(page["next_offset"])
    assert offsets == [0, 5, 10, None]
    assert [item["index"] for item in seen] == list(range(12))
    assert {item["status"] for item in seen} == {"pending"}
    beyond = (await call(client, "llm.batch.results", {"batch_id": "paged", "offset": 50}))["result"]
    assert beyond == {"items": [], "next_offset": None}
    status = (await call(client, "llm.batch.status", {"batch_id": "paged"}))["result"]
    assert (status["finished"], status["progress"], status["counts"]) == (False, 0.0, {"pending": 12})


async def test_a_refused_item_is_named_by_index_and_nothing_is_queued(
    make_settings: Callable[..., Settings], sim: SimulatorServer
) -> None:
    settings = make_settings(ALLOWED_MODELS=",".join(MODELS))
    requests = [chat(f"item {n}", MODELS[n % 3]) for n in range(6)]
    requests[3]["model"] = "gpt-6.1-sol"
    async with LLMProducer(settings) as producer:
        transport = httpx2.ASGITransport(app=create_app(settings, producer=producer))
        async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as client:
            body = await call(client, "llm.batch.submit", {"requests": requests, "batch_id": "refused"})
            status = await call(client, "llm.batch.status", {"batch_id": "refused"})
        stored = await producer.redis.keys("*")
        queued = [await producer.redis.xlen(keys.work_stream(p, "batch")) for p in PROVIDERS]
    error = body["error"]
    assert error["code"] == -32002
    assert error["data"]["type"] == "ModelNotAllowedError"
    assert error["data"]["data"]["index"] == 3
    assert error["data"]["data"]["model"] == "gpt-6.1-sol"
    assert status["error"]["code"] == -32033
    assert [k for k in stored if b"refused" in k] == []
    assert queued == [0, 0, 0]
    assert sim.requests() == []


async def test_duplicate_request_ids_are_refused_with_the_index_of_the_second(
    client: httpx2.AsyncClient,
) -> None:
    requests = [chat("a", request_id="same"), chat("b"), chat("c", request_id="same")]
    body = await call(client, "llm.batch.submit", {"requests": requests})
    assert body["error"]["code"] == -32001
    assert body["error"]["data"]["data"]["index"] == 2


async def test_cancel_stops_a_batch_of_slow_items(client: httpx2.AsyncClient, worker: Worker) -> None:
    # Each item streams for 100 s: only the cancellation can end them within the test, on any machine.
    requests = [chat(f"slow {n} [[sim:tokens=2000 tps=20]]", MODELS[n % 3]) for n in range(6)]
    await call(client, "llm.batch.submit", {"requests": requests, "batch_id": "slow"})

    async def some_running() -> bool:
        status = (await call(client, "llm.batch.status", {"batch_id": "slow"}))["result"]
        return bool(status["counts"].get("running"))

    await poll(some_running, timeout=10)
    cancelled = (await call(client, "llm.batch.cancel", {"batch_id": "slow"}))["result"]
    assert cancelled["batch_id"] == "slow"
    assert 0 < cancelled["cancelled"] <= 6
    status = await poll(lambda: finished(client, "slow"), timeout=10)
    assert status["state"] == "cancelled"
    assert status["counts"] == {"cancelled": 6}
    items = (await call(client, "llm.batch.results", {"batch_id": "slow"}))["result"]["items"]
    assert {item["status"] for item in items} == {"cancelled"}
    assert all(item["response"] is None for item in items)


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("llm.batch.status", {"batch_id": "never-submitted"}),
        ("llm.batch.results", {"batch_id": "never-submitted"}),
        ("llm.batch.cancel", {"batch_id": "never-submitted"}),
    ],
)
async def test_an_unknown_batch_is_job_not_found(
    client: httpx2.AsyncClient, method: str, params: dict[str, Any]
) -> None:
    body = await call(client, method, params)
    assert body["error"]["code"] == -32033


@pytest.mark.parametrize(
    ("method", "params", "loc"),
    [
        ("llm.batch.submit", {}, ["requests"]),
        ("llm.batch.submit", {"requests": []}, ["requests"]),
        ("llm.batch.submit", {"requests": [chat("a"), "not an object"]}, ["requests", 1]),
        (
            "llm.batch.submit",
            {"requests": [chat("a"), chat("b", max_tokens=0)]},
            ["requests", 1, "max_tokens"],
        ),
        ("llm.batch.submit", {"requests": [chat("a", colour="red")]}, ["requests", 0, "colour"]),
        ("llm.batch.submit", {"requests": [chat("a")], "batch_id": "has spaces"}, ["batch_id"]),
        ("llm.batch.submit", {"requests": [chat("a")], "extra": 1}, ["extra"]),
        ("llm.batch.status", {}, ["batch_id"]),
        ("llm.batch.status", {"batch_id": "x" * 129}, ["batch_id"]),
        ("llm.batch.results", {"batch_id": "b", "offset": -1}, ["offset"]),
        ("llm.batch.results", {"batch_id": "b", "limit": 0}, ["limit"]),
        ("llm.batch.results", {"batch_id": "b", "limit": 1001}, ["limit"]),
        ("llm.batch.results", {"batch_id": "b", "limit": "10"}, ["limit"]),
        ("llm.batch.cancel", {"batch_id": 7}, ["batch_id"]),
        ("llm.batch.cancel", ["b"], []),
    ],
)
async def test_bad_params_are_invalid_params_at_their_place(
    client: httpx2.AsyncClient, method: str, params: Any, loc: list[Any]
) -> None:
    body = await call(client, method, params)
    assert body["error"]["code"] == -32602
    assert loc in [e["loc"] for e in body["error"]["data"]["errors"]]
