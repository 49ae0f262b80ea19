"""Provider artifacts survive stateless callers: a tool loop through /v1/chat/completions (the official
openai SDK sends back only call ids and results) and through the producer SDK keeps working on a Gemini
thinking model, on Anthropic with extended thinking and on an OpenAI reasoning model, because the worker
keeps the thought signatures, thinking blocks and reasoning items and re-attaches them. The simulator
requires them as the real APIs do, so a lost artifact is the provider's 400."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import openai
import orjson
import pytest
import redis

from llmrelay.producer import LLMProducer
from llmrelay.shared import Settings, keys
from llmrelay.shared.catalog import Catalog
from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import LLMRequest, Message, Reasoning, Tool
from llmrelay.simulator import signatures
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import ANTHROPIC_MODEL, GEMINI_THINKING_MODEL, OPENAI_REASONING_MODEL

#: The catalog row a Gemini thinking model needs where the packaged catalog has none yet (prices of
#: Gemini 3 Flash preview, ai.google.dev/gemini-api/docs/pricing; only the tests' own catalog file).
THINKING_ROW = f"""
[models."{GEMINI_THINKING_MODEL}"]
provider = "gemini"
api_id = "{GEMINI_THINKING_MODEL}"
input_per_mtok = 0.50
output_per_mtok = 3.00
context_window = 1048576
max_output_tokens = 65536
tier = "fast"
"""
ALLOWED = f"{GEMINI_THINKING_MODEL},{ANTHROPIC_MODEL},{OPENAI_REASONING_MODEL}"
#: Which provider each model is of, and what to ask it beyond the tools (reasoning, for the two that
#: issue their artifacts only with reasoning on; every current Gemini model thinks by default).
CASES = {
    GEMINI_THINKING_MODEL: ("gemini", {}),
    ANTHROPIC_MODEL: ("anthropic", {"reasoning_effort": "low"}),
    OPENAI_REASONING_MODEL: ("openai", {"reasoning_effort": "low"}),
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": name,
            "description": f"The {name} of a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
    for name in ("weather", "time")
]
PROMPT = "What is the weather and the time in Oslo? [[sim:calls=2]]"


@pytest.fixture
def artifact_settings(make_settings: Callable[..., Settings], tmp_path: Path) -> Settings:
    overrides: dict[str, Any] = {"ALLOWED_MODELS": ALLOWED, "LLMRELAY_RESULT_TTL": 900}
    if Catalog.load().get(GEMINI_THINKING_MODEL) is None:
        catalog = tmp_path / "catalog.toml"
        catalog.write_text(THINKING_ROW)
        overrides["LLMRELAY_CATALOG_FILE"] = str(catalog)
    return make_settings(**overrides)


@pytest.fixture
async def sdk(artifact_settings: Settings, serve: Any) -> AsyncIterator[openai.AsyncOpenAI]:
    worker = Worker(artifact_settings, concurrency=8)
    await worker.start()
    live = await serve(artifact_settings)
    try:
        async with openai.AsyncOpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0) as client:
            yield client
    finally:
        await worker.stop(grace=2)


@pytest.fixture
def store(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url)


async def _turn(sdk: openai.AsyncOpenAI, model: str, messages: list[Any], stream: bool, **extra: Any) -> Any:
    """One chat completion, streamed or not, as a dict: content, tool_calls (OpenAI's shape), finish."""
    fields = {**CASES[model][1], **extra}
    if not stream:
        completion = await sdk.chat.completions.create(model=model, messages=messages, tools=TOOLS, **fields)
        message = completion.choices[0].message
        calls = [c.model_dump(exclude_none=True) for c in message.tool_calls or ()]
        return {
            "content": message.content,
            "tool_calls": calls,
            "finish": completion.choices[0].finish_reason,
        }
    text, calls, finish = "", {}, None
    async for chunk in await sdk.chat.completions.create(
        model=model, messages=messages, tools=TOOLS, stream=True, **fields
    ):
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        text += choice.delta.content or ""
        for piece in choice.delta.tool_calls or ():
            blank = {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
            call = calls.setdefault(piece.index, blank)
            call["id"] = piece.id or call["id"]
            if piece.function is not None:
                call["function"]["name"] += piece.function.name or ""
                call["function"]["arguments"] += piece.function.arguments or ""
        finish = choice.finish_reason or finish
    return {"content": text or None, "tool_calls": [calls[i] for i in sorted(calls)], "finish": finish}


def _answered(messages: list[Any], turn: dict[str, Any]) -> list[Any]:
    """The history a stateless caller sends next: its own messages, the assistant's calls, the results."""
    assistant = {"role": "assistant", "content": turn["content"], "tool_calls": turn["tool_calls"]}
    results = [
        {"role": "tool", "tool_call_id": call["id"], "content": f"{call['function']['name']}: fine"}
        for call in turn["tool_calls"]
    ]
    return [*messages, assistant, *results]


def _artifact_keys(store: redis.Redis, provider: str) -> list[bytes]:
    return list(store.scan_iter(match=keys.tool_artifacts(provider, "*")))


def _assert_sent_back(sim: SimulatorServer, provider: str, call_ids: list[str]) -> None:
    """The provider got the artifacts back in its own form (the simulator verified them already)."""
    body = sim.requests(provider)[-1]["body"]
    if provider == "gemini":
        model_turn = next(c for c in body["contents"] if c.get("role") == "model")
        signed = [p for p in model_turn["parts"] if "function_call" in p or "functionCall" in p]
        assert len(signed) == 2
        signature = signed[0].get("thought_signature") or signed[0].get("thoughtSignature")
        call = signed[0].get("function_call") or signed[0]["functionCall"]
        assert signature and signatures.verify("gemini", signature, [call["name"], call["args"]])
    elif provider == "anthropic":
        assistant = next(m for m in body["messages"] if m["role"] == "assistant")
        kinds = [block["type"] for block in assistant["content"]]
        assert kinds == ["thinking", "tool_use", "tool_use"]
    else:
        kinds = [item.get("type", "message") for item in body["input"]]
        calls, results = ["function_call"] * 2, ["function_call_output"] * 2
        assert kinds == ["message", "reasoning", *calls, *results]
        assert [i["call_id"] for i in body["input"] if i.get("type") == "function_call"] == call_ids


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("model", list(CASES))
async def test_stateless_tool_loop_works_on_every_provider(
    sdk: openai.AsyncOpenAI, sim: SimulatorServer, store: redis.Redis, model: str, stream: bool
) -> None:
    provider = CASES[model][0]
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    first = await _turn(sdk, model, messages, stream)
    assert first["finish"] == "tool_calls"
    assert [c["function"]["name"] for c in first["tool_calls"]] == ["weather", "time"]
    assert _artifact_keys(store, provider)

    second = await _turn(sdk, model, _answered(messages, first), stream)

    assert second["finish"] == "stop" and second["content"] and not second["tool_calls"]
    _assert_sent_back(sim, provider, [c["id"] for c in first["tool_calls"]])


@pytest.mark.parametrize("model", list(CASES))
async def test_producer_sdk_tool_loop_keeps_the_artifacts(
    artifact_settings: Settings, sim: SimulatorServer, model: str
) -> None:
    provider = CASES[model][0]
    reasoning = Reasoning(effort="low") if CASES[model][1] else None
    tools = [Tool(name=t["function"]["name"], parameters=t["function"]["parameters"]) for t in TOOLS]
    history = [Message(role="user", content=PROMPT)]
    worker = Worker(artifact_settings, concurrency=4)
    await worker.start()
    try:
        async with LLMProducer(artifact_settings) as llm:
            first = await llm.complete(
                LLMRequest(model=model, messages=history, tools=tools, reasoning=reasoning)
            )
            assert first.finish_reason == "tool_calls" and len(first.tool_calls) == 2
            history += [
                Message(role="assistant", tool_calls=first.tool_calls),
                *(Message(role="tool", tool_call_id=c.id, content="fine") for c in first.tool_calls),
            ]
            second = await llm.complete(
                LLMRequest(model=model, messages=history, tools=tools, reasoning=reasoning)
            )
    finally:
        await worker.stop(grace=2)
    assert second.finish_reason == "stop" and second.content
    _assert_sent_back(sim, provider, [c.id for c in first.tool_calls])


async def test_lost_thought_signature_is_the_providers_400(
    sdk: openai.AsyncOpenAI, store: redis.Redis, capfd: pytest.CaptureFixture[str]
) -> None:
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    first = await _turn(sdk, GEMINI_THINKING_MODEL, messages, stream=False)
    found = _artifact_keys(store, "gemini")
    assert found
    store.delete(*found)

    with pytest.raises(openai.BadRequestError) as caught:
        await _turn(sdk, GEMINI_THINKING_MODEL, _answered(messages, first), stream=False)

    assert "missing a thought_signature" in str(caught.value)
    assert caught.value.status_code == 400
    assert "no stored provider artifacts" in capfd.readouterr().out


async def test_artifacts_expire_with_the_result_ttl(
    sdk: openai.AsyncOpenAI, store: redis.Redis, artifact_settings: Settings
) -> None:
    await _turn(sdk, ANTHROPIC_MODEL, [{"role": "user", "content": PROMPT}], stream=True)
    found = _artifact_keys(store, "anthropic")
    assert len(found) == 1  # the thinking block goes with the first call of the turn
    ttl_ms = store.pttl(found[0])
    assert 0 < ttl_ms <= artifact_settings.result_ttl * 1000
    record = orjson.loads(store.get(found[0]) or b"{}")
    assert [block["type"] for block in record["pre"]] == ["thinking"]
    assert "sk-" not in (store.get(found[0]) or b"").decode()


@pytest.mark.parametrize(
    "other",
    [
        {"extra_body": {"source_agent": "someone-else"}},
        {"extra_body": {"session_id": "another-session"}},
    ],
    ids=["other-agent", "other-session"],
)
async def test_one_callers_artifacts_are_not_anothers(sdk: openai.AsyncOpenAI, other: dict[str, Any]) -> None:
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    mine = {"extra_body": {"source_agent": "agent-a", "session_id": "s-1"}}
    first = await _turn(sdk, GEMINI_THINKING_MODEL, messages, stream=False, **mine)
    history = _answered(messages, first)

    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        await _turn(sdk, GEMINI_THINKING_MODEL, history, stream=False, **other)
    # The same history, in another conversation (its first message differs), finds nothing either.
    changed = [{"role": "user", "content": PROMPT + " please"}, *history[1:]]
    with pytest.raises(openai.BadRequestError, match="thought_signature"):
        await _turn(sdk, GEMINI_THINKING_MODEL, changed, stream=False, **mine)
    # And the caller it belongs to still goes on.
    second = await _turn(sdk, GEMINI_THINKING_MODEL, history, stream=False, **mine)
    assert second["finish"] == "stop"


async def test_thinking_turn_sent_without_its_thinking_block_is_the_providers_400(
    artifact_settings: Settings,
) -> None:
    """Call ids the worker never saw have no artifacts: the request goes out as given, and the
    simulated Anthropic API refuses it as the real one does, proving it requires the blocks."""
    history = [
        Message(role="user", content=PROMPT),
        Message(
            role="assistant", tool_calls=[{"id": "toolu_x", "name": "weather", "arguments": {"city": "a"}}]
        ),
        Message(role="tool", tool_call_id="toolu_x", content="fine"),
    ]
    tools = [Tool(name="weather", parameters=TOOLS[0]["function"]["parameters"])]
    request = LLMRequest(
        model=ANTHROPIC_MODEL, messages=history, tools=tools, reasoning=Reasoning(effort="low")
    )
    worker = Worker(artifact_settings, concurrency=2)
    await worker.start()
    try:
        async with LLMProducer(artifact_settings) as llm:
            with pytest.raises(InvalidRequestError, match="must start with a thinking block"):
                await llm.complete(request)
    finally:
        await worker.stop(grace=2)


async def test_a_garbled_record_reads_as_missing(sdk: openai.AsyncOpenAI, store: redis.Redis) -> None:
    messages: list[Any] = [{"role": "user", "content": PROMPT}]
    first = await _turn(sdk, GEMINI_THINKING_MODEL, messages, stream=True)
    for key in _artifact_keys(store, "gemini"):
        store.set(key, b'{"v": 1, "sig": "not base64!"}', keepttl=True)

    with pytest.raises(openai.BadRequestError, match="missing a thought_signature"):
        await _turn(sdk, GEMINI_THINKING_MODEL, _answered(messages, first), stream=True)
