"""A retired model, or a capability the model lacks, is refused before any provider call on every path:
the SDK (complete, stream, submit, batch), JSON-RPC and ``/v1/chat/completions``; ``/v1/models`` and
``llm.models`` show each model's lifecycle and capabilities."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from api_support import chat, rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.shared import CapabilityNotSupportedError, LLMRequest, ModelRetiredError, Settings
from llmrelay.simulator.server import SimulatorServer

RETIRED, SUCCESSOR = "claude-3-5-sonnet", "claude-sonnet-5-5"
#: A chat model an operator added without declaring any capability.
PLAIN_ROW = """
[models."plain-chat"]
provider = "openai"
api_id = "plain-chat-1"
input_per_mtok = 1.0
output_per_mtok = 2.0
context_window = 100000
max_output_tokens = 1000
tier = "fast"
"""


async def call(client: httpx2.AsyncClient, method: str, params: Any = None) -> dict[str, Any]:
    response = await client.post("/jsonrpc", json=rpc(method, params))
    body: dict[str, Any] = response.json()
    return body


WEATHER = {"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}


@pytest.fixture
def settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    catalog = tmp_path / "catalog.toml"
    catalog.write_text(PLAIN_ROW, encoding="utf-8")
    return make_settings(
        ALLOWED_MODELS=f"{RETIRED},plain-chat,gpt-6.1-terra", LLMRELAY_CATALOG_FILE=str(catalog)
    )


@pytest.fixture
async def lifecycle_client(settings: Settings, producer: LLMProducer) -> AsyncIterator[httpx2.AsyncClient]:
    transport = httpx2.ASGITransport(app=create_app(settings, producer=producer))
    async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as c:
        yield c


def _retired(err: Any) -> None:
    assert err["data"]["successor"] == SUCCESSOR and err["data"]["field"] == "model"


async def test_a_retired_model_is_refused_on_every_path_before_the_provider(
    producer: LLMProducer, lifecycle_client: httpx2.AsyncClient, sim: SimulatorServer
) -> None:
    request = LLMRequest.model_validate({"model": RETIRED, "messages": [{"role": "user", "content": "hi"}]})
    for attempt in (producer.complete, producer.submit):
        with pytest.raises(ModelRetiredError) as info:
            await attempt(request)
        assert info.value.data["successor"] == SUCCESSOR
    with pytest.raises(ModelRetiredError):
        async for _ in producer.stream(request):
            pass
    with pytest.raises(ModelRetiredError):
        await producer.submit_batch([request])

    for method in ("llm.complete", "llm.submit"):
        body = await call(lifecycle_client, method, chat("hi", RETIRED))
        assert body["error"]["code"] == -32007
        _retired(body["error"]["data"])
    batch = await call(lifecycle_client, "llm.batch.submit", {"requests": [chat("hi", RETIRED)]})
    assert batch["error"]["data"]["data"]["successor"] == SUCCESSOR

    response = await lifecycle_client.post("/v1/chat/completions", json=chat("hi", RETIRED))
    assert response.status_code == 410
    error = response.json()["error"]
    assert error["code"] == "model_retired" and error["param"] == "model"
    assert SUCCESSOR in error["message"]
    assert sim.requests() == []


async def test_a_capability_the_model_lacks_is_refused_on_every_path_naming_the_field(
    producer: LLMProducer, lifecycle_client: httpx2.AsyncClient, sim: SimulatorServer
) -> None:
    request = LLMRequest.model_validate(
        {
            "model": "plain-chat",
            "messages": [{"role": "user", "content": "think"}],
            "reasoning": {"effort": "low"},
        }
    )
    with pytest.raises(CapabilityNotSupportedError) as info:
        await producer.complete(request)
    assert info.value.data["field"] == "reasoning"

    tools = {"tools": [{"name": "weather", "parameters": {"type": "object"}}]}
    body = await call(lifecycle_client, "llm.complete", chat("weather?", "plain-chat", **tools))
    assert body["error"]["code"] == -32008
    assert body["error"]["data"]["data"]["field"] == "tools"

    image = [
        {"type": "text", "text": "see"},
        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
    ]
    response = await lifecycle_client.post(
        "/v1/chat/completions", json={"model": "plain-chat", "messages": [{"role": "user", "content": image}]}
    )
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "messages"
    response = await lifecycle_client.post(
        "/v1/chat/completions", json=chat("w?", "plain-chat", tools=[WEATHER])
    )
    assert (response.status_code, response.json()["error"]["param"]) == (400, "tools")
    assert sim.requests() == []


async def test_models_show_lifecycle_and_capabilities(
    lifecycle_client: httpx2.AsyncClient, settings: Settings, serve: Any
) -> None:
    result = (await call(lifecycle_client, "llm.models"))["result"]
    by_name = {m["id"]: m for m in result["models"]}
    assert by_name[RETIRED]["lifecycle"] == "retired"
    assert by_name[RETIRED]["successor"] == SUCCESSOR
    assert by_name["plain-chat"]["capabilities"] == dict.fromkeys(
        ("tools", "vision", "documents", "json_schema", "reasoning"), False
    )

    live = await serve(settings)
    sdk = openai.AsyncOpenAI(base_url=f"{live.url}/v1", api_key="unused", max_retries=0)
    async with sdk:
        listed = {m.id: m for m in [m async for m in sdk.models.list()]}
        retired = listed[RETIRED].model_extra or {}
        assert (retired["lifecycle"], retired["retires_on"], retired["successor"]) == (
            "retired", "2025-10-22", SUCCESSOR,
        )  # fmt: skip
        terra = await sdk.models.retrieve("gpt-6.1-terra")
        assert (terra.model_extra or {})["capabilities"]["tools"] is True
        assert (terra.model_extra or {})["kind"] == "chat"
