"""Control endpoints, knobs, scheduled faults, ``times=N`` directives, wire bytes and server lifecycle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import orjson
import pytest

from llmrelay import simulator
from llmrelay.simulator import SimulatorConfig, SimulatorServer, ThreadedSimulatorServer, reply_for
from tests.support import OPENAI_MODEL

MODEL = OPENAI_MODEL


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


async def _collect_content(stream: AsyncIterator[Any], into: list[str]) -> None:
    async for chunk in stream:
        into.append(chunk.choices[0].delta.content or "")


async def _chat(client: openai.AsyncOpenAI, text: str, **kwargs: object) -> str:
    completion = await client.chat.completions.create(model=MODEL, messages=_user(text), **kwargs)  # type: ignore[call-overload]
    return completion.choices[0].message.content  # type: ignore[no-any-return]


async def test_scheduled_faults_hit_the_next_matching_requests(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    state = sim.add_fault("429", retry_after=1.5, times=2, provider="openai")
    assert state["scheduled"] == [
        {"fault": "429", "retry_after": 1.5, "after": None, "times": 2, "provider": "openai", "model": None}
    ]
    # another provider is not affected
    message = await anthropic_client.messages.create(
        model="claude", max_tokens=50, messages=_user("unaffected")
    )
    assert message.content[0].type == "text"
    for _ in range(2):
        with pytest.raises(openai.RateLimitError) as info:
            await _chat(openai_client, "scheduled")
        assert info.value.response.headers["retry-after"] == "2"
        assert info.value.response.headers["retry-after-ms"] == "1500"
    assert await _chat(openai_client, "scheduled") == "".join(reply_for("scheduled", 20))
    assert sim.faults()["scheduled"] == []
    assert [r["fault"] for r in sim.requests(provider="openai")] == ["429", "429", None]


async def test_scheduled_fault_model_filter_and_clear(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    sim.add_fault("500", times=None, model="gpt-6.1-sol")
    assert await _chat(openai_client, "other model")
    for _ in range(3):
        with pytest.raises(openai.InternalServerError):
            await openai_client.chat.completions.create(model="gpt-6.1-sol", messages=_user("x"))
    sim.clear_faults()
    assert await openai_client.chat.completions.create(model="gpt-6.1-sol", messages=_user("x"))


async def test_scheduled_cut(sim: SimulatorServer, openai_client: openai.AsyncOpenAI) -> None:
    sim.add_fault("cut", after=3, provider="openai")
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("scheduled cut"), stream=True
    )
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        await _collect_content(stream, received)
    assert "".join(received) == "".join(reply_for("scheduled cut", 3))


def test_bad_fault_specs_are_refused(sim: SimulatorServer) -> None:
    with pytest.raises(ValueError, match="400"):
        sim.add_fault("teapot")
    with pytest.raises(ValueError, match="400"):
        sim.add_fault("429", provider="mistral")
    assert sim.faults()["scheduled"] == []


async def test_times_directive_fails_first_n_then_succeeds(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    prompt = "retry me please [[sim:fault=503 times=2]]"
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await _chat(openai_client, prompt)
    assert await _chat(openai_client, prompt) == "".join(reply_for("retry me please", 20))
    assert await _chat(openai_client, prompt) == "".join(reply_for("retry me please", 20))
    assert sim.faults()["prompt_counts"] == {prompt: 4}
    sim.clear_faults()  # forgets the counters too
    with pytest.raises(openai.InternalServerError):
        await _chat(openai_client, prompt)


async def test_times_directive_is_shared_across_providers(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    prompt = "failover [[sim:fault=429 times=1]]"
    with pytest.raises(openai.RateLimitError):
        await _chat(openai_client, prompt)
    message = await anthropic_client.messages.create(model="claude", max_tokens=50, messages=_user(prompt))
    assert message.content[0].type == "text"
    assert message.content[0].text == "".join(reply_for("failover", 20))


async def test_directive_provider_filter(
    openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    prompt = "only openai fails [[sim:fault=503 provider=openai]]"
    with pytest.raises(openai.InternalServerError):
        await _chat(openai_client, prompt)
    message = await anthropic_client.messages.create(model="claude", max_tokens=50, messages=_user(prompt))
    assert message.stop_reason == "end_turn"


async def test_configure_reply_tokens_and_invalid_knobs(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    config = sim.configure(reply_tokens=5)
    assert config["reply_tokens"] == 5
    assert await _chat(openai_client, "short") == "".join(reply_for("short", 5))
    assert await _chat(openai_client, "short [[sim:tokens=2]]") == "".join(reply_for("short", 2))
    with pytest.raises(ValueError, match="unknown"):
        sim.configure(colour="red")
    with pytest.raises(ValueError, match="400"):
        sim.configure(reply_tokens=-1)
    assert sim.config()["reply_tokens"] == 5
    sim.reset()
    assert sim.config() == SimulatorConfig().to_dict()


async def test_ttft_delays_first_chunk(sim: SimulatorServer, openai_client: openai.AsyncOpenAI) -> None:
    sim.configure(ttft_ms=300)
    start = time.perf_counter()
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("slow start"), stream=True
    )
    headers_at = time.perf_counter() - start
    first_at = None
    async for _ in stream:
        if first_at is None:
            first_at = time.perf_counter() - start
    assert first_at is not None and first_at >= 0.8 * 0.3
    assert headers_at < first_at  # headers come first, then the wait

    start = time.perf_counter()
    await _chat(openai_client, "slow non-stream")
    assert time.perf_counter() - start >= 0.8 * 0.3


async def test_ttft_and_tps_directives(openai_client: openai.AsyncOpenAI) -> None:
    start = time.perf_counter()
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("paced [[sim:ttft_ms=100 tps=50 tokens=6]]"), stream=True
    )
    arrivals = []
    async for chunk in stream:
        if chunk.choices[0].delta.content:
            arrivals.append(time.perf_counter() - start)
    assert len(arrivals) == 6
    assert arrivals[0] >= 0.8 * 0.1
    assert arrivals[-1] - arrivals[0] >= 0.8 * 5 / 50


async def test_slow_first_byte_delays_headers(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI
) -> None:
    sim.configure(slow_first_byte_ms=250)
    start = time.perf_counter()
    stream = await openai_client.chat.completions.create(
        model=MODEL, messages=_user("slow headers"), stream=True
    )
    assert time.perf_counter() - start >= 0.8 * 0.25
    assert len([c async for c in stream]) == 22  # role chunk + 20 tokens + finish chunk


async def test_records_filter_limit_clear_and_switch_off(
    sim: SimulatorServer, openai_client: openai.AsyncOpenAI, anthropic_client: anthropic.AsyncAnthropic
) -> None:
    await _chat(openai_client, "one")
    await anthropic_client.messages.create(model="claude", max_tokens=5, messages=_user("two"))
    await _chat(openai_client, "three")
    assert [r["provider"] for r in sim.requests()] == ["openai", "anthropic", "openai"]
    assert [r["body"]["messages"][0]["content"] for r in sim.requests(provider="openai")] == ["one", "three"]
    assert [r["body"]["messages"][0]["content"] for r in sim.requests(limit=1)] == ["three"]
    record = sim.requests()[0]
    assert set(record) >= {"provider", "path", "method", "headers", "body", "model", "stream", "ts"}
    assert record["method"] == "POST"
    assert all(name == name.lower() for name in record["headers"])
    sim.clear()
    assert sim.requests() == []
    sim.configure(record=False)
    await _chat(openai_client, "unrecorded")
    assert sim.requests() == []
    health = sim.health()
    assert health["status"] == "ok" and health["open_streams"] == 0 and health["requests_total"] >= 4


async def test_record_ring_buffer(sim: SimulatorServer, openai_client: openai.AsyncOpenAI) -> None:
    sim.configure(record_limit=2)
    for text in ("a", "b", "c"):
        await _chat(openai_client, text)
    assert [r["body"]["messages"][0]["content"] for r in sim.requests()] == ["b", "c"]


async def test_rate_limit_headers_count_down(openai_client: openai.AsyncOpenAI) -> None:
    remaining = []
    for _ in range(3):
        raw = await openai_client.chat.completions.with_raw_response.create(
            model=MODEL, messages=_user("count")
        )
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining[0] > remaining[1] > remaining[2]


async def test_wire_format_bytes(sim: SimulatorServer) -> None:
    async with httpx2.AsyncClient(base_url=sim.url) as client:
        gemini = await client.post(
            "/v1beta/models/gemini-3.8-flash:streamGenerateContent?alt=sse",
            json={"contents": [{"role": "user", "parts": [{"text": "wire [[sim:tokens=2]]"}]}]},
        )
        assert gemini.headers["content-type"].startswith("text/event-stream")
        events = gemini.text.split("\n\n")
        assert events[-1] == ""
        assert all(e.startswith("data: {") for e in events[:-1])
        assert len(events) == 3

        anth = await client.post(
            "/v1/messages",
            json={
                "model": "c",
                "max_tokens": 9,
                "stream": True,
                "messages": [{"role": "user", "content": "w"}],
            },
        )
        blocks = [b for b in anth.text.split("\n\n") if b]
        names = [b.split("\n")[0] for b in blocks]
        assert names[0] == "event: message_start"
        assert names[-1] == "event: message_stop"
        assert all(b.split("\n")[1].startswith("data: {") for b in blocks)
        assert orjson.loads(blocks[0].split("\n")[1][6:])["message"]["usage"]["input_tokens"] == 1

        oa = await client.post(
            "/v1/chat/completions",
            json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "w"}]},
        )
        assert oa.text.endswith("data: [DONE]\n\n")


async def test_bad_requests(sim: SimulatorServer) -> None:
    async with httpx2.AsyncClient(base_url=sim.url) as client:
        bad = await client.post(
            "/v1/messages", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert bad.status_code == 400
        assert bad.json()["error"]["type"] == "invalid_request_error"
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.post("/_sim/config", content=b"[")).status_code == 400
        assert (await client.get("/_sim/unknown")).status_code == 404
    assert sim.requests()[0]["fault"] == "invalid_json"


def test_subprocess_server_lifecycle() -> None:
    server = SimulatorServer(reply_tokens=3, ttft_ms=1.5, record=False)
    with server:
        process = server.process
        assert process is not None
        config = server.config()
        assert (config["reply_tokens"], config["ttft_ms"], config["record"]) == (3, 1.5, False)
        assert server.openai_base_url == f"http://127.0.0.1:{server.port}/v1"
        body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        reply = httpx2.post(server.openai_base_url + "/chat/completions", json=body).json()
        assert reply["choices"][0]["message"]["content"] == "".join(reply_for("hi", 3))
    assert process.returncode is not None  # stopped and reaped
    assert server.process is None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


def test_threaded_server_shares_state() -> None:
    with ThreadedSimulatorServer(reply_tokens=4) as server:
        body = {"model": "claude", "max_tokens": 10, "messages": [{"role": "user", "content": "thread"}]}
        reply = httpx2.post(server.url + "/v1/messages", json=body).json()
        assert reply["content"][0]["text"] == "".join(reply_for("thread", 4))
        assert server.app.records[-1]["model"] == "claude"
        server.app.config.update(reply_tokens=1)
        assert server.config()["reply_tokens"] == 1


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie waiting to be reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_subprocess_exits_with_its_parent() -> None:
    """A test run that dies without stopping its simulator leaves no server running."""
    code = (
        "import os; from llmrelay.simulator import SimulatorServer; "
        "s = SimulatorServer().start(); print(s.pid, flush=True); os._exit(0)"
    )
    root = str(Path(simulator.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True, env=env
    )
    child = int(out.stdout.strip())
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    if _alive(child):
        os.kill(child, signal.SIGKILL)
        pytest.fail("the simulator outlived its parent")
