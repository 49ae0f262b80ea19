"""Embeddings through the façade: ``POST /v1/embeddings`` with the official openai SDK, and ``llm.embed``."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
import pytest
from api_support import CANARY, rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.shared import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import GEMINI_EMBEDDING_MODEL, OPENAI_EMBEDDING_MODEL, OPENAI_MODEL

Serve = Callable[..., Awaitable[Any]]
EMBEDDING_MODELS = [OPENAI_EMBEDDING_MODEL, GEMINI_EMBEDDING_MODEL]


@pytest.fixture
async def sdk(settings: Settings, worker: Worker, serve: Serve) -> AsyncIterator[openai.AsyncOpenAI]:
    live = await serve(settings)
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0) as client:
        yield client


@pytest.mark.parametrize("model", EMBEDDING_MODELS)
async def test_openai_sdk_embeds_as_floats_and_as_its_default_base64(
    sdk: openai.AsyncOpenAI, settings: Settings, model: str
) -> None:
    texts = ["the first text", "and a second one"]
    floats = await sdk.embeddings.create(model=model, input=texts, encoding_format="float")
    default = await sdk.embeddings.create(model=model, input=texts)  # the SDK asks base64 and decodes it
    dimension = settings.catalog.resolve(model).dimensions
    assert [d.index for d in floats.data] == [0, 1]
    assert [len(d.embedding) for d in floats.data] == [dimension, dimension]
    assert [d.embedding for d in default.data] == [d.embedding for d in floats.data]
    assert math.isclose(sum(x * x for x in floats.data[0].embedding), 1.0, rel_tol=1e-5)
    assert floats.model == model and floats.object == "list"
    assert floats.usage.prompt_tokens == floats.usage.total_tokens > 0


async def test_a_string_input_dimensions_user_and_context_are_honoured(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    sim.clear()
    result = await sdk.embeddings.create(
        model=OPENAI_EMBEDDING_MODEL,
        input="one text",
        dimensions=64,
        user="user-7",
        extra_headers={"X-Trace-Id": "trace-emb", "X-Source-Agent": "indexer"},
    )
    assert len(result.data) == 1 and len(result.data[0].embedding) == 64
    [seen] = sim.requests("openai")
    assert seen["body"]["dimensions"] == 64 and seen["body"]["input"] == ["one text"]
    assert seen["headers"]["x-trace-id"] == "trace-emb" and seen["headers"]["x-source-agent"] == "indexer"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"input": [[1, 2, 3]]}, "input"),
        ({"input": [1, 2, 3]}, "input"),
        ({"input": []}, "input"),
        ({"input": ["ok", ""]}, "input.1"),
        ({"input": "x", "encoding_format": "int8"}, "encoding_format"),
        ({"input": "x", "dimensions": 0}, "dimensions"),
        ({"input": "x", "truncate": True}, "truncate"),
        ({"input": "x", "metadata": "not an object"}, "metadata"),
    ],
)
async def test_what_cannot_be_honoured_is_400_naming_the_parameter(
    client: httpx2.AsyncClient, body: dict[str, Any], param: str, sim: SimulatorServer
) -> None:
    sim.clear()
    response = await client.post("/v1/embeddings", json={"model": OPENAI_EMBEDDING_MODEL, **body})
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert sim.requests() == []


@pytest.mark.parametrize(
    ("model", "text", "status", "code", "param"),
    [
        (OPENAI_MODEL, "x", 400, -32001, "model"),  # a chat model
        (OPENAI_EMBEDDING_MODEL, "x", 403, -32002, "model"),  # not allowed here
        ("no-such-model", "x", 404, -32003, "model"),
        (GEMINI_EMBEDDING_MODEL, "word " * 2000, 400, -32004, "input[0]"),  # past 2048 tokens
    ],
)
async def test_governance_refusals_are_in_openai_shape(
    make_settings: Callable[..., Settings],
    sim: SimulatorServer,
    model: str,
    text: str,
    status: int,
    code: int,
    param: str,
) -> None:
    settings = make_settings(ALLOWED_MODELS=f"{OPENAI_MODEL},{GEMINI_EMBEDDING_MODEL}")
    sim.clear()
    async with LLMProducer(settings) as producer:
        transport = httpx2.ASGITransport(app=create_app(settings, producer=producer))
        async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as client:
            response = await client.post("/v1/embeddings", json={"model": model, "input": [text]})
            rpc_reply = await client.post(
                "/jsonrpc", json=rpc("llm.embed", {"model": model, "input": [text]})
            )
    assert response.status_code == status, response.text
    assert response.json()["error"]["param"] == param
    error = rpc_reply.json()["error"]
    assert error["data"]["data"]["field"] == param
    assert error["code"] == code
    assert sim.requests() == []


async def test_llm_embed_returns_an_embedding_response(client: httpx2.AsyncClient, worker: Worker) -> None:
    params = {
        "model": GEMINI_EMBEDDING_MODEL,
        "input": ["a", "b", "a"],
        "dimensions": 32,
        "session_id": "s-2",
    }
    body = (await client.post("/jsonrpc", json=rpc("llm.embed", params))).json()
    result = body["result"]
    assert [len(v) for v in result["vectors"]] == [32, 32, 32]
    assert result["vectors"][0] == result["vectors"][2] != result["vectors"][1]
    assert result["provider"] == "gemini" and result["session_id"] == "s-2"
    assert result["usage"]["prompt_tokens"] == result["usage"]["total_tokens"] > 0
    assert result["request_id"]


@pytest.mark.parametrize(
    "params",
    [
        {"model": OPENAI_EMBEDDING_MODEL, "input": []},
        {"model": OPENAI_EMBEDDING_MODEL, "input": "not a list"},
        {"model": OPENAI_EMBEDDING_MODEL, "input": ["x"], "unknown": 1},
        {"model": OPENAI_EMBEDDING_MODEL, "input": [3]},
    ],
)
async def test_llm_embed_with_bad_params_is_invalid_params(client: httpx2.AsyncClient, params: Any) -> None:
    body = (await client.post("/jsonrpc", json=rpc("llm.embed", params))).json()
    assert body["error"]["code"] == -32602


async def test_a_provider_refusal_carries_no_key(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer
) -> None:
    sim.add_fault(401, provider="openai")
    response = await client.post("/v1/embeddings", json={"model": OPENAI_EMBEDDING_MODEL, "input": "x"})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert CANARY not in response.text
    sim.add_fault(401, provider="openai")
    reply = await client.post(
        "/jsonrpc", json=rpc("llm.embed", {"model": OPENAI_EMBEDDING_MODEL, "input": ["x"]})
    )
    assert reply.json()["error"]["code"] == -32005
    assert CANARY not in reply.text


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]"])
async def test_a_body_that_is_not_a_json_object_is_400(client: httpx2.AsyncClient, raw: bytes) -> None:
    response = await client.post("/v1/embeddings", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
