"""Helpers the provider tests share: canary keys, the models under test, settings and calls."""

from __future__ import annotations

import secrets
from typing import Any

from llmrelay.shared.catalog import Provider
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.settings import Settings
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.providers import ProviderCall

#: Keys that must never show up in an error: planted in Settings, quoted back by the simulator on 401.
CANARY_KEYS: dict[Provider, str] = {
    "openai": f"sk-canary-{secrets.token_hex(12)}",
    "anthropic": f"sk-ant-canary-{secrets.token_hex(12)}",
    "gemini": f"AIzaSyCanary{secrets.token_hex(14)}",
}

#: One model per provider and per OpenAI API, the axis every simulator test runs along.
MODELS = ["gpt-6.1-terra", "gpt-6.1-sol", "claude-haiku-5-5", "gemini-3.8-flash"]

SYSTEM = "Answer briefly."


def sim_settings_for(sim: SimulatorServer, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "OPENAI_API_KEY": CANARY_KEYS["openai"],
        "ANTHROPIC_API_KEY": CANARY_KEYS["anthropic"],
        "GEMINI_API_KEY": CANARY_KEYS["gemini"],
        "OPENAI_BASE_URL": sim.openai_base_url,
        "ANTHROPIC_BASE_URL": sim.anthropic_base_url,
        "GEMINI_BASE_URL": sim.gemini_base_url,
        "LLMRELAY_HTTP_POOL_SIZE": 8,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def make_call(
    settings: Settings,
    model: str,
    prompt: str,
    *,
    system: str | None = SYSTEM,
    timeout: float = 10.0,
    **fields: Any,
) -> ProviderCall:
    """A ProviderCall as the worker builds it: catalog entry, request, time left, A2A headers."""
    messages = [{"role": "user", "content": prompt}]
    if system is not None:
        messages.insert(0, {"role": "system", "content": system})
    request = LLMRequest.model_validate({"model": model, "messages": messages, **fields})
    return ProviderCall(
        model=settings.catalog.resolve(model),
        request=request,
        timeout=timeout,
        headers=request.context.headers(),
    )


def new_trace_id() -> str:
    return secrets.token_hex(16)
