"""One tiny call per provider against the real API (opt-in: ``--run-live`` and the provider's key)."""

from __future__ import annotations

import os

import pytest
from provider_test_support import make_call, new_trace_id

from llmrelay.shared.settings import Settings
from llmrelay.worker.providers import StreamEnd, build_adapter

pytestmark = pytest.mark.live

CASES = [
    ("openai", "OPENAI_API_KEY", "gpt-6.1-terra"),
    ("openai", "OPENAI_API_KEY", "gpt-6.1-sol"),
    ("anthropic", "ANTHROPIC_API_KEY", "claude-haiku-5-5"),
    ("gemini", "GEMINI_API_KEY", "gemini-3.8-flash"),
]


@pytest.mark.parametrize(("provider", "key_env", "model"), CASES)
async def test_live_complete_and_stream(provider: str, key_env: str, model: str) -> None:
    if not os.environ.get(key_env) and not (provider == "gemini" and os.environ.get("GOOGLE_API_KEY")):
        pytest.skip(f"{key_env} is not set")
    settings = Settings(_env_file=None)
    adapter = build_adapter(provider, settings)
    # Reasoning models spend tokens before they answer: leave them room.
    max_tokens = 256 if model.startswith("gpt-6.1-sol") else 16
    try:
        call = make_call(
            settings,
            model,
            "Reply with the single word: pong",
            max_tokens=max_tokens,
            trace_id=new_trace_id(),
        )
        completion = await adapter.complete(call)
        assert completion.end.usage.prompt_tokens > 0
        assert completion.end.finish_reason in ("stop", "length")

        items = [item async for item in adapter.stream(call)]
        assert isinstance(items[-1], StreamEnd)
        assert all(isinstance(item, str) and item for item in items[:-1])
        assert sum(isinstance(item, StreamEnd) for item in items) == 1
    finally:
        await adapter.aclose()
