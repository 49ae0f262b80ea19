"""Each adapter's side of provider artifacts: what it yields with a reply's tool calls, and how it
puts them back in the provider's own form (official SDKs against the simulator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from anthropic.types import RedactedThinkingBlock, SignatureDelta, ThinkingBlock, ThinkingDelta

from llmrelay.shared.artifacts import CallArtifacts
from llmrelay.shared.catalog import ModelInfo
from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import LLMRequest, Usage
from llmrelay.shared.settings import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderAdapter, ProviderCall, StreamAccumulator, StreamEnd
from llmrelay.worker.providers import anthropic as anthropic_adapter
from llmrelay.worker.providers import openai as openai_adapter
from llmrelay.worker.providers.base import ToolCallArtifact, ToolCallDelta
from tests.support import ANTHROPIC_MODEL, OPENAI_REASONING_MODEL

Make = Callable[..., ProviderAdapter]
TOOL = {"name": "weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}
GEMINI_3 = ModelInfo(
    "gemini-3-flash-preview", "gemini", "gemini-3-flash-preview", 0.5, 3.0, 1048576, 65536, "fast"
)


def _model(settings: Settings, name: str) -> ModelInfo:
    return GEMINI_3 if name == GEMINI_3.name else settings.catalog.resolve(name)


async def _items(adapter: ProviderAdapter, call: ProviderCall) -> list[Any]:
    return [item async for item in adapter.stream(call)]


@pytest.mark.parametrize(
    ("provider", "model", "fields"),
    [
        ("gemini", GEMINI_3.name, {}),
        ("anthropic", ANTHROPIC_MODEL, {"reasoning": {"effort": "low"}}),
        ("openai", OPENAI_REASONING_MODEL, {"reasoning": {"effort": "low"}}),
    ],
)
async def test_a_replys_artifacts_go_back_with_its_calls(
    make_adapter: Make, sim_settings: Settings, sim: SimulatorServer, provider: str, model: str, fields: Any
) -> None:
    adapter = make_adapter(provider)
    ask = {"role": "user", "content": "weather [[sim:calls=1]]"}
    request = LLMRequest.model_validate({"model": model, "messages": [ask], "tools": [TOOL], **fields})
    info = _model(sim_settings, model)
    items = await _items(adapter, ProviderCall(model=info, request=request, timeout=10.0))
    artifacts = [i for i in items if isinstance(i, ToolCallArtifact)]
    assert [a.call_index for a in artifacts] == [0]
    accumulator = StreamAccumulator(info.provider)
    relayed = [accumulator.add(item) for item in items]
    assert not any(isinstance(r, ToolCallArtifact) for r in relayed)  # kept, never relayed
    done = accumulator.completion()
    assert list(done.artifacts) == [done.tool_calls[0].id]

    answered = [
        ask,
        {"role": "assistant", "tool_calls": [c.model_dump() for c in done.tool_calls]},
        {"role": "tool", "tool_call_id": done.tool_calls[0].id, "content": "sunny"},
    ]
    again = LLMRequest.model_validate({"model": model, "messages": answered, "tools": [TOOL], **fields})
    call = ProviderCall(model=info, request=again, timeout=10.0, artifacts=done.artifacts)
    reply = await adapter.complete(call)
    assert reply.end.finish_reason == "stop" and reply.text


def test_the_accumulator_drops_artifacts_of_calls_it_never_saw() -> None:
    accumulator = StreamAccumulator("gemini")
    for item in (
        ToolCallDelta(0, "c0", "f", "{}"),
        ToolCallArtifact(0, CallArtifacts(signature="YQ==")),
        ToolCallArtifact(3, CallArtifacts(signature="Yg==")),
        ToolCallDelta(1, "c1", "f", "{}"),
        ToolCallArtifact(1, CallArtifacts()),
        StreamEnd("tool_calls", Usage()),
    ):
        accumulator.add(item)
    assert accumulator.completion().artifacts == {"c0": CallArtifacts(signature="YQ==")}
    assert accumulator.deltas == 0


def test_anthropic_keeps_redacted_thinking_and_puts_every_block_first() -> None:
    blocks = anthropic_adapter._ThinkingBlocks()
    blocks.start(0, ThinkingBlock(type="thinking", thinking="", signature=""))
    blocks.delta(0, ThinkingDelta(type="thinking_delta", thinking="hm"))
    blocks.delta(0, SignatureDelta(type="signature_delta", signature="sig"))
    blocks.start(1, RedactedThinkingBlock(type="redacted_thinking", data="opaque"))
    blocks.delta(1, ThinkingDelta(type="thinking_delta", thinking="ignored"))
    blocks.delta(7, ThinkingDelta(type="thinking_delta", thinking="ignored"))
    kept = blocks.take()
    assert kept == (
        {"type": "thinking", "thinking": "hm", "signature": "sig"},
        {"type": "redacted_thinking", "data": "opaque"},
    )
    assert blocks.take() == ()

    request = LLMRequest.model_validate(
        {
            "model": ANTHROPIC_MODEL,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "Let me look.",
                    "tool_calls": [{"id": "t1", "name": "weather"}],
                },
                {"role": "tool", "tool_call_id": "t1", "content": "sunny"},
            ],
        }
    )
    _, messages = anthropic_adapter._messages(request, {"t1": CallArtifacts(blocks=kept)})
    assert [b["type"] for b in messages[1]["content"]] == [
        "thinking",
        "redacted_thinking",
        "text",
        "tool_use",
    ]


def test_openai_asks_reasoning_models_only_for_encrypted_reasoning() -> None:
    request = LLMRequest.model_validate({"model": OPENAI_REASONING_MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert openai_adapter._reasoning_include(request, "gpt-5-2025-08-07") == {
        "include": ["reasoning.encrypted_content"]
    }
    assert openai_adapter._reasoning_include(request, "gpt-4.1") == {}
    options = request.model_copy(update={"provider_options": {"openai": {"include": ["x"]}}})
    with pytest.raises(InvalidRequestError) as caught:
        openai_adapter._reasoning_include(options, "gpt-5")
    assert caught.value.data["field"] == "provider_options.openai.include"


def test_openai_puts_reasoning_before_the_turns_text_and_each_call() -> None:
    request = LLMRequest.model_validate(
        {
            "model": OPENAI_REASONING_MODEL,
            "messages": [
                {"role": "user", "content": "hi"},
                {
                    "role": "assistant",
                    "content": "Looking.",
                    "tool_calls": [{"id": "c1", "name": "weather"}, {"id": "c2", "name": "weather"}],
                },
                {"role": "tool", "tool_call_id": "c1", "content": "1"},
                {"role": "tool", "tool_call_id": "c2", "content": "2"},
            ],
        }
    )
    rs = {"type": "reasoning", "id": "rs_1", "encrypted_content": "e", "summary": []}
    rs2 = {**rs, "id": "rs_2"}
    kept = {"c1": CallArtifacts(blocks=(rs,)), "c2": CallArtifacts(blocks=(rs2,))}
    _, items = openai_adapter._responses_input(request, kept)
    order = [dict(i).get("id") or dict(i).get("call_id") or dict(i).get("role") for i in items]
    assert order == ["user", "rs_1", "assistant", "c1", "rs_2", "c2", "c1", "c2"]
