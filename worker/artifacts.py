"""Keeps what providers attach to tool calls (``shared.artifacts``) between a stateless caller's turns."""

from __future__ import annotations

from typing import Any

from redis.asyncio import Redis

from llmrelay.shared.artifacts import (
    CallArtifacts,
    artifact_key,
    conversation_digest,
    decode_artifacts,
    encode_artifacts,
    turn_scopes,
)
from llmrelay.shared.catalog import ModelInfo
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.payloads import PayloadError


class ArtifactStore:
    """One record per tool call, written when a reply makes calls that carry artifacts, read when a
    later request's assistant turns carry those call ids; records live as long as results do."""

    def __init__(self, redis: Redis, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_ms = ttl_s * 1000

    async def save(self, request: LLMRequest, model: ModelInfo, artifacts: dict[str, CallArtifacts]) -> None:
        """The reply's calls came after the whole of ``request.messages``: that is their scope."""
        if not artifacts:
            return
        scope = conversation_digest(request, model.provider, model.name, request.messages)
        async with self._redis.pipeline(transaction=False) as pipe:
            for call_id, found in artifacts.items():
                key = artifact_key(model.provider, scope, call_id)
                pipe.set(key, encode_artifacts(found), px=self._ttl_ms)
            await pipe.execute()

    async def load(self, request: LLMRequest, model: ModelInfo, log: Any) -> dict[str, CallArtifacts]:
        """What ``model`` attached to the calls of the request's assistant turns, by call id.

        A call without a record (expired, made through another deployment, never had one) is sent as
        the caller gave it; the provider's own answer to that, if any, is what the caller gets. The miss
        is worth a warning where the provider is known to want something back: every current Gemini
        model thinks, and the other two issue artifacts only when reasoning is on.
        """
        scopes = turn_scopes(request, model.provider, model.name)
        if not scopes:
            return {}
        ids = list(scopes)
        raws = await self._redis.mget([artifact_key(model.provider, scopes[i], i) for i in ids])
        found: dict[str, CallArtifacts] = {}
        for call_id, raw in zip(ids, raws, strict=True):
            if raw is None:
                continue
            try:
                found[call_id] = decode_artifacts(raw)
            except PayloadError:
                continue
        missing = [i for i in ids if i not in found]
        if (
            missing
            and (model.provider == "gemini" or request.reasoning is not None)
            and not _partial(request, found)
        ):
            log.warning(
                "no stored provider artifacts for earlier tool calls; sending them without",
                provider=model.provider,
                model=model.name,
                calls=len(missing),
                call_ids=missing[:8],
                **request.log_context(),
            )
        return found


def _partial(request: LLMRequest, found: dict[str, CallArtifacts]) -> bool:
    """Every turn with a miss has a record for another of its calls: a provider that attaches its
    artifacts to one call of a parallel set (Gemini's first call part) left nothing to miss."""
    for message in request.messages:
        calls = [c.id for c in message.tool_calls or ()]
        if any(c not in found for c in calls) and not any(c in found for c in calls):
            return False
    return True
