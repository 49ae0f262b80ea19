"""The JSON-RPC 2.0 specification's own examples (section 7), adapted to the llm.* methods."""

from __future__ import annotations

from typing import Any

import httpx2
import orjson
from api_support import rpc

from llmrelay.producer import LLMProducer
from llmrelay.producer.api.jsonrpc import Dispatcher
from llmrelay.shared import LLMRequest
from llmrelay.worker.service import Worker


async def post(client: httpx2.AsyncClient, body: Any) -> httpx2.Response:
    content = body if isinstance(body, bytes | str) else orjson.dumps(body)
    return await client.post("/jsonrpc", content=content, headers={"content-type": "application/json"})


async def test_call_with_named_params_returns_its_result_and_echoes_the_id(
    client: httpx2.AsyncClient, worker: Worker
) -> None:
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "hello"}]}
    response = await post(client, rpc("llm.complete", params, id_="call-7"))
    assert response.status_code == 200
    body = response.json()
    assert body["jsonrpc"] == "2.0" and body["id"] == "call-7"
    assert body["result"]["model"] == "gpt-6.1-terra"


async def test_call_with_positional_params_maps_them_to_the_declared_names(
    client: httpx2.AsyncClient, producer: LLMProducer
) -> None:
    request_id = await producer.submit(
        LLMRequest(model="gpt-6.1-terra", messages=[{"role": "user", "content": "queued"}])  # type: ignore[list-item]
    )
    body = (await post(client, rpc("llm.status", [request_id], id_=1))).json()
    assert body == {"jsonrpc": "2.0", "id": 1, "result": {"request_id": request_id, "status": "queued"}}


async def test_positional_params_for_a_request_method_are_invalid_params(client: httpx2.AsyncClient) -> None:
    body = (await post(client, rpc("llm.complete", [{"model": "gpt-6.1-terra"}], id_=2))).json()
    assert body["id"] == 2
    assert body["error"]["code"] == -32602
    assert "named parameters" in body["error"]["message"]


async def test_too_many_positional_params_are_invalid_params(client: httpx2.AsyncClient) -> None:
    body = (await post(client, rpc("llm.status", ["a", "b"], id_=3))).json()
    assert body["error"]["code"] == -32602


async def test_notification_gets_no_response(client: httpx2.AsyncClient) -> None:
    response = await post(client, {"jsonrpc": "2.0", "method": "llm.models"})
    assert response.status_code == 204
    assert response.content == b""


async def test_notification_of_an_unknown_method_gets_no_response(client: httpx2.AsyncClient) -> None:
    response = await post(client, {"jsonrpc": "2.0", "method": "foobar", "params": {}})
    assert response.status_code == 204


async def test_unknown_method_is_method_not_found(client: httpx2.AsyncClient) -> None:
    body = (await post(client, {"jsonrpc": "2.0", "method": "foobar", "id": "1"})).json()
    assert body["id"] == "1"
    assert body["error"]["code"] == -32601


async def test_invalid_json_is_a_parse_error_with_a_null_id(client: httpx2.AsyncClient) -> None:
    response = await post(client, b'{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]')
    body = response.json()
    assert body["id"] is None
    assert body["error"]["code"] == -32700


async def test_invalid_request_object_is_invalid_request(client: httpx2.AsyncClient) -> None:
    body = (await post(client, {"jsonrpc": "2.0", "method": 1, "params": "bar"})).json()
    assert body == {"jsonrpc": "2.0", "id": None, "error": body["error"]}
    assert body["error"]["code"] == -32600


async def test_request_objects_with_a_bad_version_params_or_id_are_invalid(
    client: httpx2.AsyncClient,
) -> None:
    cases = [
        {"jsonrpc": "1.0", "method": "llm.models", "id": 1},
        {"method": "llm.models", "id": 1},
        {"jsonrpc": "2.0", "method": "llm.models", "params": "x", "id": 1},
        {"jsonrpc": "2.0", "method": "llm.models", "id": {"no": "objects"}},
        {"jsonrpc": "2.0", "method": "llm.models", "id": True},
    ]
    for case in cases:
        body = (await post(client, case)).json()
        assert body["error"]["code"] == -32600, case
    # The id is echoed when it could be read; null when the id itself is the problem.
    assert (await post(client, cases[0])).json()["id"] == 1
    assert (await post(client, cases[3])).json()["id"] is None


async def test_batch_with_invalid_json_is_one_parse_error(client: httpx2.AsyncClient) -> None:
    raw = b'[{"jsonrpc": "2.0", "method": "llm.models", "id": "1"}, {"jsonrpc": "2.0", "method"]'
    body = (await post(client, raw)).json()
    assert body["error"]["code"] == -32700
    assert body["id"] is None


async def test_empty_batch_is_one_invalid_request(client: httpx2.AsyncClient) -> None:
    body = (await post(client, b"[]")).json()
    assert isinstance(body, dict)
    assert body["error"]["code"] == -32600
    assert body["id"] is None


async def test_invalid_batch_of_one_answers_an_array_of_one(client: httpx2.AsyncClient) -> None:
    body = (await post(client, b"[1]")).json()
    assert isinstance(body, list) and len(body) == 1
    assert body[0]["error"]["code"] == -32600


async def test_invalid_batch_answers_each_element(client: httpx2.AsyncClient) -> None:
    body = (await post(client, b"[1,2,3]")).json()
    assert [r["error"]["code"] for r in body] == [-32600, -32600, -32600]
    assert all(r["id"] is None for r in body)


async def test_mixed_batch_answers_every_call_but_the_notifications(
    client: httpx2.AsyncClient, worker: Worker
) -> None:
    batch = [
        rpc("llm.models", {}, id_="1"),
        {"jsonrpc": "2.0", "method": "llm.health"},  # notification
        rpc("llm.status", {"request_id": "nope"}, id_="2"),
        {"foo": "boo"},
        rpc("foo.get", {"name": "myself"}, id_="5"),
        rpc("llm.models", [], id_="9"),
    ]
    body = (await post(client, batch)).json()
    by_id = {r["id"]: r for r in body}
    assert len(body) == 5
    assert "models" in by_id["1"]["result"]
    assert by_id["2"]["error"]["code"] == -32033  # JobNotFoundError
    assert by_id[None]["error"]["code"] == -32600
    assert by_id["5"]["error"]["code"] == -32601
    assert "models" in by_id["9"]["result"]


async def test_batch_of_notifications_only_is_204_without_a_body(client: httpx2.AsyncClient) -> None:
    batch = [{"jsonrpc": "2.0", "method": "llm.models"}, {"jsonrpc": "2.0", "method": "llm.health"}]
    response = await post(client, batch)
    assert response.status_code == 204
    assert response.content == b""


async def test_stream_inside_a_batch_is_refused_with_a_clear_message(client: httpx2.AsyncClient) -> None:
    params = {"model": "gpt-6.1-terra", "messages": [{"role": "user", "content": "x"}]}
    body = (await post(client, [rpc("llm.stream", params, id_=1), rpc("llm.models", id_=2)])).json()
    by_id = {r["id"]: r for r in body}
    assert by_id[1]["error"]["code"] == -32600
    assert "batch" in by_id[1]["error"]["message"]
    assert "result" in by_id[2]


async def test_numeric_and_null_ids_are_echoed_as_they_came(client: httpx2.AsyncClient) -> None:
    for id_ in (0, 1.5, None, "x"):
        body = (await post(client, rpc("llm.models", id_=id_))).json()
        assert body["id"] == id_
        assert "result" in body


async def test_dispatcher_handles_a_body_without_the_http_layer() -> None:
    async def echo(_ctx: Any, params: dict[str, Any]) -> Any:
        return params

    dispatcher = Dispatcher({"echo": echo})
    out = await dispatcher.handle(orjson.dumps(rpc("echo", {"a": 1})), None)
    assert out is not None and orjson.loads(out)["result"] == {"a": 1}
    out = await dispatcher.handle(b"{", None)
    assert out is not None and orjson.loads(out)["error"]["code"] == -32700
