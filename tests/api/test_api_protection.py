"""Protection: the bearer token, the body size limit, the last-resort handler, and no key in any output."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx2
import openai
import pytest
from api_support import CANARY, chat, rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.producer.api import methods as api_methods
from llmrelay.shared import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker

Serve = Callable[..., Awaitable[Any]]
TOKEN = "relay-token-0123456789abcdef"


@pytest.fixture
async def guarded(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx2.AsyncClient]:
    settings = make_settings(LLMRELAY_API_TOKEN=TOKEN)
    async with LLMProducer(settings) as producer:
        transport = httpx2.ASGITransport(app=create_app(settings, producer=producer))
        async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as c:
            yield c


ROUTES = [
    ("POST", "/jsonrpc", rpc("llm.models")),
    ("POST", "/v1/chat/completions", chat("x")),
    ("GET", "/v1/models", None),
    ("GET", "/metrics", None),
]


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("authorization", [None, "Bearer wrong-token", f"Basic {TOKEN}", "Bearer "])
async def test_missing_or_wrong_token_is_401(
    guarded: httpx2.AsyncClient, method: str, path: str, body: Any, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization else {}
    response = await guarded.request(method, path, json=body, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    payload = response.json()
    if path == "/jsonrpc":
        assert payload["error"]["code"] == -32005
        assert payload["id"] is None
    elif path.startswith("/v1/"):
        assert payload["error"]["type"] == "authentication_error"
        assert set(payload["error"]) == {"message", "type", "param", "code"}
    assert TOKEN not in response.text


@pytest.mark.parametrize(("method", "path", "body"), [r for r in ROUTES if r[1] != "/v1/chat/completions"])
async def test_the_right_token_is_let_in(
    guarded: httpx2.AsyncClient, method: str, path: str, body: Any
) -> None:
    response = await guarded.request(method, path, json=body, headers={"Authorization": f"bearer {TOKEN}"})
    assert response.status_code == 200


async def test_health_needs_no_token(guarded: httpx2.AsyncClient) -> None:
    response = await guarded.get("/health")
    assert response.status_code == 200


async def test_without_a_configured_token_no_header_is_needed(client: httpx2.AsyncClient) -> None:
    assert (await client.get("/v1/models")).status_code == 200
    assert (await client.post("/jsonrpc", json=rpc("llm.models"))).status_code == 200


async def test_the_openai_sdk_passes_the_token_as_its_api_key(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    live = await serve(make_settings(LLMRELAY_API_TOKEN=TOKEN))
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key=TOKEN, max_retries=0) as good:
        assert [m async for m in good.models.list()]
    async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="nope", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError):
            await bad.models.list()


@pytest.mark.parametrize("path", ["/jsonrpc", "/v1/chat/completions"])
async def test_a_body_over_the_limit_is_413_by_its_content_length(
    make_settings: Callable[..., Settings], path: str
) -> None:
    settings = make_settings(LLMRELAY_MAX_BODY_BYTES=2048)
    app = create_app(settings, producer=LLMProducer(settings))
    async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://facade") as c:
        response = await c.post(path, json=chat("y" * 5000))
    assert response.status_code == 413
    if path == "/jsonrpc":
        assert response.json()["error"]["code"] == -32600
    else:
        assert response.json()["error"]["code"] == "request_too_large"


async def test_a_streamed_body_over_the_limit_is_413_by_counting(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    live = await serve(make_settings(LLMRELAY_MAX_BODY_BYTES=2048))

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc": "2.0", "method": "llm.models", "id": 1, "pad": "'
        for _ in range(10):
            yield b"z" * 512
        yield b'"}'

    async with live.client() as client:
        response = await client.post("/jsonrpc", content=chunks())
        assert response.status_code == 413
        small = await client.post("/jsonrpc", json=rpc("llm.models"))
        assert small.status_code == 200


async def test_an_unexpected_failure_is_a_generic_internal_error(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(_ctx: Any, _params: dict[str, Any]) -> Any:
        raise RuntimeError(f"secret detail {CANARY}")

    monkeypatch.setitem(api_methods.METHODS, "llm.models", broken)
    response = await client.post("/jsonrpc", json=rpc("llm.models", id_=4))
    body = response.json()
    assert body == {"jsonrpc": "2.0", "id": 4, "error": {"code": -32603, "message": "Internal error"}}
    assert "secret detail" not in response.text and CANARY not in response.text


async def test_a_failure_outside_any_handler_is_a_bare_500(
    client: httpx2.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from llmrelay.producer.api import app as api_app

    def explode(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"secret detail {CANARY}")

    monkeypatch.setattr(api_app.Facade, "context", explode)
    response = await client.post("/jsonrpc", json=rpc("llm.models"))
    assert response.status_code == 500
    assert response.json()["error"]["code"] == -32603
    response = await client.post("/v1/chat/completions", json=chat("x"))
    assert response.status_code == 500
    assert response.json()["error"]["type"] == "server_error"
    assert CANARY not in response.text


async def test_the_canary_key_appears_in_no_response_header_or_metric(
    settings: Settings, worker: Worker, serve: Serve, sim: SimulatorServer
) -> None:
    assert settings.openai_api_key is not None and settings.openai_api_key.get_secret_value() == CANARY
    live = await serve(settings)
    prompt = "leak it [[sim:fault=401]]"
    outputs: list[str] = []
    async with live.client() as client:
        responses = [
            await client.post("/jsonrpc", json=rpc("llm.complete", chat(prompt))),
            await client.post("/jsonrpc", json=rpc("llm.stream", chat(prompt))),
            await client.post("/v1/chat/completions", json=chat(prompt)),
            await client.post("/v1/chat/completions", json=chat(prompt, stream=True)),
            await client.post("/jsonrpc", json=rpc("llm.metrics")),
            await client.post("/jsonrpc", json=rpc("llm.health")),
            await client.get("/metrics"),
            await client.get("/health"),
        ]
        for response in responses:
            outputs.append(response.text)
            outputs.extend(f"{k}: {v}" for k, v in response.headers.items())
    # The provider did refuse the key (and quoted it back), so the canary was put to the test.
    assert any(CANARY in str(r["headers"]) for r in sim.requests("openai"))
    assert any("-32005" in text for text in outputs)
    assert [text for text in outputs if CANARY in text] == []
    assert [text for text in outputs if CANARY[:20] in text] == []
