"""The llm.* methods through POST /jsonrpc: results, errors and what reaches the provider."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest
from api_support import rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import METHODS, Context, create_app
from llmrelay.shared import Settings
from llmrelay.simulator.reply import reply_for
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import poll


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": text}]


async def call(client: httpx2.AsyncClient, method: str, params: Any = None, **headers: str) -> dict[str, Any]:
    response = await client.post("/jsonrpc", json=rpc(method, params), headers=headers)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_complete_returns_content_usage_and_cost(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer
) -> None:
    prompt = "Name three colours [[sim:tokens=7]]"
    body = await call(client, "llm.complete", {"model": "claude-haiku-5-5", "messages": messages(prompt)})
    result = body["result"]
    assert result["content"] == "".join(reply_for(prompt, 7))
    assert result["provider"] == "anthropic"
    assert result["usage"]["completion_tokens"] == 7
    assert result["usage"]["total_tokens"] == result["usage"]["prompt_tokens"] + 7
    assert result["cost_usd"] > 0
    assert result["finish_reason"] == "stop"


async def test_a2a_context_comes_from_headers_and_params_win(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer
) -> None:
    sim.clear()
    params = {"model": "gpt-6.1-terra", "messages": messages("who am i"), "session_id": "from-params"}
    headers = {"X-Trace-Id": "0af7651916cd43dd8448eb211c80319c", "X-Source-Agent": "planner",
               "X-Session-Id": "from-header"}  # fmt: skip
    result = (await call(client, "llm.complete", params, **headers))["result"]
    assert result["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert result["source_agent"] == "planner"
    assert result["session_id"] == "from-params"
    seen = {k.lower(): v for k, v in sim.requests("openai")[-1]["headers"].items()}
    assert seen["x-trace-id"] == "0af7651916cd43dd8448eb211c80319c"
    assert seen["x-source-agent"] == "planner"
    assert seen["x-session-id"] == "from-params"
    assert seen["traceparent"].startswith("00-0af7651916cd43dd8448eb211c80319c-")


async def test_disallowed_model_is_refused_and_nothing_reaches_the_provider(
    make_settings: Callable[..., Settings], sim: SimulatorServer
) -> None:
    settings = make_settings(ALLOWED_MODELS="gpt-6.1-terra,claude-haiku-5-5,gemini-3.8-flash")
    sim.clear()
    async with LLMProducer(settings) as producer:
        transport = httpx2.ASGITransport(app=create_app(settings, producer=producer))
        async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as client:
            body = await call(client, "llm.complete", {"model": "gpt-6.1-sol", "messages": messages("hi")})
            models = (await call(client, "llm.models"))["result"]
    assert body["error"]["code"] == -32002
    assert body["error"]["data"]["type"] == "ModelNotAllowedError"
    assert body["error"]["data"]["data"]["model"] == "gpt-6.1-sol"
    assert sim.requests() == []
    assert sorted(m["id"] for m in models["models"]) == [
        "claude-haiku-5-5",
        "gemini-3.8-flash",
        "gpt-6.1-terra",
    ]


async def test_unknown_model_has_its_own_code(client: httpx2.AsyncClient) -> None:
    body = await call(client, "llm.complete", {"model": "gpt-0", "messages": messages("hi")})
    assert body["error"]["code"] == -32003


async def test_bad_params_are_invalid_params_with_details_and_no_input_values(
    client: httpx2.AsyncClient,
) -> None:
    secret = "do-not-echo-this-value"
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "wizard", "content": "x"}], "max_tokens": "lots",
              "bogus": secret}  # fmt: skip
    body = await call(client, "llm.complete", params)
    error = body["error"]
    assert error["code"] == -32602
    locs = {tuple(e["loc"]) for e in error["data"]["errors"]}
    assert ("messages", 0, "role") in locs
    assert ("max_tokens",) in locs
    assert ("bogus",) in locs
    assert all(set(e) == {"loc", "msg", "type"} for e in error["data"]["errors"])
    assert secret not in str(body)


async def test_result_status_and_cancel_params_are_validated(client: httpx2.AsyncClient) -> None:
    for method in ("llm.status", "llm.cancel", "llm.result"):
        body = await call(client, method, {"request_id": "bad id with spaces"})
        assert body["error"]["code"] == -32602, method
    body = await call(client, "llm.models", {"unexpected": 1})
    assert body["error"]["code"] == -32602


async def test_submit_then_result_and_status(client: httpx2.AsyncClient, worker: Worker) -> None:
    submitted = await call(client, "llm.submit", {"model": "gemini-3.8-flash", "messages": messages("later")})
    request_id = submitted["result"]["request_id"]
    result = (await call(client, "llm.result", {"request_id": request_id, "timeout": 10}))["result"]
    assert result["request_id"] == request_id
    assert result["provider"] == "gemini"
    status = (await call(client, "llm.status", {"request_id": request_id}))["result"]
    assert status == {"request_id": request_id, "status": "done"}


async def test_cancel_of_a_queued_request(client: httpx2.AsyncClient) -> None:
    # No worker runs: the request stays queued until cancelled.
    submitted = await call(client, "llm.submit", {"model": "gpt-6.1-terra", "messages": messages("wait")})
    request_id = submitted["result"]["request_id"]
    cancelled = (await call(client, "llm.cancel", [request_id]))["result"]
    assert cancelled == {"request_id": request_id, "cancelled": True}
    body = await call(client, "llm.result", {"request_id": request_id, "timeout": 2})
    assert body["error"]["code"] == -32031
    assert (await call(client, "llm.status", [request_id]))["result"]["status"] == "cancelled"


async def test_cancel_of_a_running_request_stops_it(client: httpx2.AsyncClient, worker: Worker) -> None:
    params = {"model": "gpt-6.1-terra", "messages": messages("long one [[sim:tokens=400 tps=40]]")}
    request_id = (await call(client, "llm.submit", params))["result"]["request_id"]
    await poll(lambda: call_status(client, request_id, "running"))
    assert (await call(client, "llm.cancel", {"request_id": request_id}))["result"]["cancelled"] is True
    await poll(lambda: call_status(client, request_id, "cancelled"))


async def call_status(client: httpx2.AsyncClient, request_id: str, wanted: str) -> bool:
    body = await call(client, "llm.status", {"request_id": request_id})
    return bool(body.get("result", {}).get("status") == wanted)


async def test_cancel_of_an_unknown_request_is_job_not_found(client: httpx2.AsyncClient) -> None:
    body = await call(client, "llm.cancel", {"request_id": "never-submitted"})
    assert body["error"]["code"] == -32033


async def test_models_lists_allowed_models_with_tiers_and_price_date(client: httpx2.AsyncClient) -> None:
    result = (await call(client, "llm.models"))["result"]
    names = {m["id"] for m in result["models"]}
    assert {"gpt-6.1-terra", "claude-haiku-5-5", "gemini-3.8-flash"} <= names
    first = result["models"][0]
    assert {"provider", "tier", "input_per_mtok", "output_per_mtok", "context_window"} <= set(first)
    assert set(result["tiers"]) == {"fast", "balanced", "premium"}
    assert result["prices_as_of"]
    assert result["default_model"] == "gpt-6-luna"
    by_name = {m["id"]: m for m in result["models"]}
    assert by_name["gpt-6.1-terra"]["lifecycle"] == "live"
    assert by_name["gpt-6.1-terra"]["capabilities"] == {
        "tools": True, "vision": True, "documents": True, "json_schema": True, "reasoning": True,
    }  # fmt: skip
    assert by_name["text-embedding-3-small"]["kind"] == "embedding"
    assert by_name["text-embedding-3-small"]["dimensions"] == 1536


async def test_methods_run_without_the_http_layer(producer: LLMProducer, settings: Settings) -> None:
    ctx = Context(producer=producer, settings=settings, caller="host")
    models = await METHODS["llm.models"](ctx, {})
    assert models["models"]
    health = await METHODS["llm.health"](ctx, {})
    assert health["redis"]["ok"] is True
    metrics = await METHODS["llm.metrics"](ctx, {})
    assert metrics["facade"] is None


@pytest.mark.parametrize("method", ["llm.complete", "llm.submit"])
async def test_a_request_id_in_params_is_kept(
    client: httpx2.AsyncClient, worker: Worker, method: str
) -> None:
    params = {"model": "gpt-6.1-terra", "messages": messages("idempotent"), "request_id": f"mine-{method}"}
    body = await call(client, method, params)
    assert body["result"]["request_id"] == f"mine-{method}"
