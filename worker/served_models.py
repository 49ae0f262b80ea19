"""At worker start: which allowed catalog models each provider no longer serves, from its own model list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import structlog

from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.governance import Governance
from llmrelay.shared.settings import Settings
from llmrelay.worker.providers.base import ProviderAdapter

log = structlog.get_logger("llmrelay.worker")


async def check_served_models(
    settings: Settings,
    governance: Governance,
    adapter_for: Callable[[str], ProviderAdapter],
    providers: Iterable[str],
) -> None:
    """For each provider with a key, list its models and warn for every allowed catalog model it does
    not list (the catalog may be out of date, or the model retired). A failure to list is logged and
    never stops the worker."""
    for provider in providers:
        key = settings.api_key(provider)  # type: ignore[arg-type]
        if key is None or not key.get_secret_value():
            continue
        try:
            listed = await asyncio.wait_for(
                adapter_for(provider).served_models(), timeout=settings.request_timeout
            )
        except (LLMRelayError, TimeoutError) as exc:
            log.warning("could not list the provider's models", provider=provider, error=str(exc))
            continue
        today = governance.clock()
        for info in governance.allowed_models():
            if info.provider != provider or {info.api_id, info.name, *info.aliases} & listed:
                continue
            log.warning(
                "an allowed catalog model is not among the models the provider serves",
                provider=provider,
                model=info.name,
                api_id=info.api_id,
                lifecycle=info.lifecycle(today),
                successor=info.successor,
            )
