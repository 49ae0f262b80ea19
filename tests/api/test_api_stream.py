"""llm.stream as Server-Sent Events: event ids, resumption with Last-Event-ID, disconnects, pings, limits."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx2
import orjson
import pytest
import redis
from api_support import read_events, rpc, sse_events

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import sse, streams
from llmrelay.shared import Settings, keys
from llmrelay.simulator.reply import reply_for
from llmrelay.worker.service import Worker
from tests.support import poll

Serve = Callable[..., Awaitable[Any]]


def stream_call(prompt: str, model: str = "gpt-6.1-terra", id_: Any = "s-1", **params: Any) -> dict[str, Any]:
    return rpc(
        "llm.stream", {"model": model, "messages": [{"role": "user", "content": prompt}], **params}, id_
    )


def texts(events: list[dict[str, Any]]) -> str:
    return "".join(e["result"]["text"] for e in events if "result" in e and e["result"]["type"] == "token")


async def test_stream_sends_token_events_then_done_each_with_its_id(
    settings: Settings, worker: Worker, serve: Serve
) -> None:
    live = await serve(settings)
    prompt = "Count slowly [[sim:tokens=12 tps=400]]"
    async with (
        live.client() as client,
        client.stream("POST", "/jsonrpc", json=stream_call(prompt)) as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        request_id = response.headers["x-request-id"]
        events = await read_events(response)
    payloads = [orjson.loads(e.data) for e in events]
    assert all(p["jsonrpc"] == "2.0" and p["id"] == "s-1" for p in payloads)
    kinds = [p["result"]["type"] for p in payloads]
    assert kinds[-1] == "done" and set(kinds[:-1]) == {"token"}
    indexes = [p["result"]["index"] for p in payloads]
    assert indexes == sorted(set(indexes))
    assert [e.id for e in events] == [f"{request_id}:{i}" for i in indexes]
    assert texts(payloads) == "".join(reply_for(prompt, 12))
    done = payloads[-1]["result"]["response"]
    assert done["content"] == texts(payloads) and done["request_id"] == request_id


async def test_stream_results_are_the_logged_event_bytes_unchanged(
    settings: Settings, worker: Worker, serve: Serve
) -> None:
    live = await serve(settings)
    body = stream_call("As they are [[sim:tokens=8 tps=400]]", trace_id='t "quoted"', request_id="as-is")
    async with live.client() as client, client.stream("POST", "/jsonrpc", json=body) as response:
        events = await read_events(response)
    client_ = redis.Redis.from_url(settings.redis_url)
    try:
        logged = [fields[b"e"] for _id, fields in client_.xrange(keys.events("openai", "as-is"))]
    finally:
        client_.close()
    head, tail = '{"jsonrpc":"2.0","id":"s-1","result":', "}"
    relayed = [e.data.encode() for e in events]
    assert all(d.startswith(head.encode()) and d.endswith(tail.encode()) for d in relayed)
    assert [d[len(head) : -len(tail)] for d in relayed] == logged
    assert orjson.loads(logged[0])["trace_id"] == 't "quoted"'


async def test_stream_resumes_after_last_event_id_without_loss_or_repetition(
    settings: Settings, worker: Worker, serve: Serve, producer: LLMProducer
) -> None:
    live = await serve(settings)
    prompt = "A long tale [[sim:tokens=40 tps=80]]"
    body = stream_call(prompt, request_id="resume-me")
    async with live.client() as client:
        async with client.stream("POST", "/jsonrpc", json=body) as response:
            first = await read_events(response, count=2)
        # The client is gone; it comes back within the grace with the last id it saw.
        headers = {"Last-Event-ID": first[-1].id}
        async with client.stream("POST", "/jsonrpc", json=body, headers=headers) as response:
            rest = await read_events(response)
    seen = [orjson.loads(e.data) for e in first + rest]
    indexes = [p["result"]["index"] for p in seen]
    assert indexes == sorted(set(indexes)), "an event was repeated or came out of order"
    assert seen[-1]["result"]["type"] == "done"
    assert texts(seen) == "".join(reply_for(prompt, 40))
    assert await producer.status("resume-me") == "done"


async def test_a_client_that_disconnects_cancels_its_request_after_the_grace(
    settings: Settings, worker: Worker, serve: Serve, producer: LLMProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "RESUME_GRACE_SECONDS", 0.2)
    live = await serve(settings)
    body = stream_call("Never ending [[sim:tokens=400 tps=40]]", request_id="walk-away")
    async with live.client() as client, client.stream("POST", "/jsonrpc", json=body) as response:
        await read_events(response, count=1)
    await poll(lambda: status_is(producer, "walk-away", "cancelled"), timeout=8)
    facade = live.app.state.facade
    await poll(lambda: facade.streams.inflight == 0)


async def test_a_resume_through_another_replica_voids_the_pending_cancel(
    settings: Settings, worker: Worker, serve: Serve, producer: LLMProducer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams, "RESUME_GRACE_SECONDS", 0.3)
    left, other = await serve(settings), await serve(settings)
    prompt = "Travels between replicas [[sim:tokens=60 tps=60]]"
    body = stream_call(prompt, request_id="two-replicas")
    async with left.client() as client, client.stream("POST", "/jsonrpc", json=body) as response:
        first = await read_events(response, count=2)
    headers = {"Last-Event-ID": first[-1].id}
    async with (
        other.client() as client,
        client.stream("POST", "/jsonrpc", json=body, headers=headers) as response,
    ):
        rest = await read_events(response)
    seen = [orjson.loads(e.data) for e in first + rest]
    assert seen[-1]["result"]["type"] == "done"
    assert texts(seen) == "".join(reply_for(prompt, 60))
    assert await producer.status("two-replicas") == "done"  # the replica it left did not cancel it
    assert left.app.state.facade.streams.pending() == []


async def status_is(producer: LLMProducer, request_id: str, wanted: str) -> bool:
    return await producer.status(request_id) == wanted


async def test_an_idle_stream_gets_ping_comments(
    make_settings: Callable[..., Settings], serve: Serve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sse, "PING_SECONDS", 0.05)
    settings = make_settings()
    live = await serve(settings)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    try:
        body = stream_call("Slow start [[sim:tokens=2 ttft_ms=400]]")
        async with live.client() as client, client.stream("POST", "/jsonrpc", json=body) as response:
            raw = b"".join([chunk async for chunk in response.aiter_bytes()]).decode()
    finally:
        await worker.stop(grace=2)
    assert ": ping\n\n" in raw
    events = sse_events(raw)
    assert events[-1]["data"]["result"]["type"] == "done"


async def test_a_provider_failure_is_an_error_event_with_its_code(
    client: httpx2.AsyncClient, worker: Worker
) -> None:
    response = await client.post("/jsonrpc", json=stream_call("Break [[sim:fault=500]]", id_=9))
    events = sse_events(response.text)
    last = events[-1]
    assert last["data"]["id"] == 9
    assert last["data"]["error"]["code"] == -32020
    assert last["data"]["error"]["data"]["type"] == "ProviderUnavailableError"
    assert ":" in last["id"]


async def test_invalid_stream_params_are_an_error_event(client: httpx2.AsyncClient) -> None:
    response = await client.post("/jsonrpc", json=rpc("llm.stream", {"model": "gpt-6.1-terra"}, "bad"))
    assert response.headers["content-type"].startswith("text/event-stream")
    (event,) = sse_events(response.text)
    assert event["data"]["id"] == "bad"
    assert event["data"]["error"]["code"] == -32602


async def test_a_disallowed_model_on_stream_is_an_error_event(
    make_settings: Callable[..., Settings], producer: LLMProducer
) -> None:
    from llmrelay.producer.api import create_app

    settings = make_settings(ALLOWED_MODELS="gpt-6.1-terra")
    transport = httpx2.ASGITransport(app=create_app(settings, producer=LLMProducer(settings)))
    async with httpx2.AsyncClient(transport=transport, base_url="http://facade") as client:
        response = await client.post("/jsonrpc", json=stream_call("hi", model="claude-haiku-5-5"))
    (event,) = sse_events(response.text)
    assert event["data"]["error"]["code"] in (-32002, -32040)


async def test_a_malformed_last_event_id_is_an_error_event(client: httpx2.AsyncClient) -> None:
    for value in ("no-index", "rid:x", "bad id:3", ":4"):
        response = await client.post("/jsonrpc", json=stream_call("hi"), headers={"Last-Event-ID": value})
        (event,) = sse_events(response.text)
        assert event["data"]["error"]["code"] == -32001, value


async def test_resuming_an_unknown_request_is_job_not_found(client: httpx2.AsyncClient) -> None:
    response = await client.post("/jsonrpc", json=stream_call("hi"), headers={"Last-Event-ID": "ghost:3"})
    (event,) = sse_events(response.text)
    assert event["data"]["error"]["code"] == -32033


async def test_last_event_id_for_another_request_than_params_is_refused(client: httpx2.AsyncClient) -> None:
    body = stream_call("hi", request_id="this-one")
    response = await client.post("/jsonrpc", json=body, headers={"Last-Event-ID": "that-one:2"})
    (event,) = sse_events(response.text)
    assert event["data"]["error"]["code"] == -32001


async def test_a_stream_notification_runs_and_answers_nothing(
    client: httpx2.AsyncClient, worker: Worker, producer: LLMProducer
) -> None:
    call = stream_call("fire and forget", request_id="quiet")
    del call["id"]
    response = await client.post("/jsonrpc", json=call)
    assert response.status_code == 204
    assert await producer.status("quiet") == "done"


async def test_concurrent_streams_per_caller_are_limited(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    settings = make_settings(LLMRELAY_MAX_STREAMS_PER_CALLER=1)
    live = await serve(settings)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    try:
        long_call = stream_call("Hold the line [[sim:tokens=200 tps=40]]", request_id="holder")
        async with live.client() as client, client.stream("POST", "/jsonrpc", json=long_call) as held:
            await read_events(held, count=1)
            response = await client.post("/jsonrpc", json=stream_call("second", id_=2))
            (event,) = sse_events(response.text)
            assert event["data"]["error"]["code"] == -32010
            chat = {"model": "gpt-6.1-terra", "stream": True, "messages": [{"role": "user", "content": "x"}]}
            refused = await client.post("/v1/chat/completions", json=chat)
            assert refused.status_code == 429
            assert refused.json()["error"]["type"] == "rate_limit_error"
            assert refused.headers["retry-after"] == "1"
    finally:
        await worker.stop(grace=2)


async def test_a_client_that_leaves_a_complete_call_cancels_its_request(
    settings: Settings, worker: Worker, serve: Serve, producer: LLMProducer
) -> None:
    live = await serve(settings)
    call = rpc("llm.complete", {"model": "gpt-6.1-terra", "request_id": "impatient",
                                "messages": [{"role": "user", "content": "slow [[sim:tokens=300 tps=50]]"}]})  # fmt: skip
    async with live.client() as client:
        with pytest.raises(httpx2.ReadTimeout):
            await client.post("/jsonrpc", json=call, timeout=httpx2.Timeout(20, read=0.5))
    await poll(lambda: status_is(producer, "impatient", "cancelled"), timeout=8)


async def test_a_retried_stream_relays_the_restart_event(
    make_settings: Callable[..., Settings], serve: Serve
) -> None:
    settings = make_settings(LLM_MAX_RETRIES=2, LLMRELAY_BACKOFF_BASE=0.01, LLMRELAY_BACKOFF_MAX=0.02)
    live = await serve(settings)
    worker = Worker(settings, concurrency=4)
    await worker.start()
    try:
        prompt = "Retry me [[sim:fault=cut after=3 times=1 tokens=12 tps=300]]"
        async with live.client() as client:
            response = await client.post("/jsonrpc", json=stream_call(prompt))
    finally:
        await worker.stop(grace=2)
    results = [e["data"]["result"] for e in sse_events(response.text)]
    kinds = [r["type"] for r in results]
    assert "restart" in kinds and kinds[-1] == "done"
    after_restart = results[kinds.index("restart") + 1 :]
    assert texts([{"result": r} for r in after_restart]) == "".join(reply_for(prompt, 12))
