"""Putting a job on its work stream: one ENQUEUE script call, shared by the producer and the batch feeder."""

from __future__ import annotations

import time
from typing import Any

from redis.asyncio import Redis

from llmrelay.shared import events, keys, scripts
from llmrelay.shared.embeddings import EmbeddingRequest
from llmrelay.shared.errors import RequestCancelledError
from llmrelay.shared.governance import Route
from llmrelay.shared.jobs import Job, encode_error
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.scripts import LuaScript
from llmrelay.shared.settings import Settings

_ENQUEUE = LuaScript(scripts.ENQUEUE)
_CANCEL = LuaScript(scripts.CANCEL)


def make_job(
    request: LLMRequest | EmbeddingRequest, route: Route, settings: Settings, *, stream: bool
) -> Job:
    """The job of a routed request with an id; its deadline counts from now."""
    assert request.request_id is not None, "a job needs its request id"
    now = time.time()
    return Job(
        request_id=request.request_id,
        provider=route.model.provider,
        model=route.model.name,
        request=request,
        enqueued_at=now,
        deadline=now + (request.timeout or settings.request_timeout),
        stream=stream,
        lane=request.priority,
        fallbacks=[m.name for m in route.fallbacks],
    )


async def enqueue(redis: Redis, job: Job, settings: Settings) -> tuple[str, Any]:
    """XADD the job unless its id exists or its stream is full.

    Returns ``("queued", entry id)``, ``("exists", status)``, ``("full", "")``, ``("done", result JSON)``
    or ``(terminal status, error JSON)`` for an id that already ran to an end.
    """
    ttl_ms = int((job.deadline - job.enqueued_at + settings.result_ttl) * 1000)
    outcome, detail = await _ENQUEUE(
        redis,
        [keys.state(job.provider, job.request_id), keys.work_stream(job.provider, job.lane)],
        [
            job.request_id,
            job.encode(),
            settings.max_queue_length,
            job.deadline,
            ttl_ms,
            events.context_suffix(job.request.a2a()),
        ],
    )
    return (outcome.decode() if isinstance(outcome, bytes) else str(outcome)), detail


async def cancel_request(
    redis: Redis, provider: str, request_id: str, result_ttl: int, *, namespace: str
) -> bool:
    """Cancel a queued or running request; True if this call cancelled it (or asked its worker to).
    ``namespace`` is the deployment's (``keys.namespace``): it names the channels the script publishes on."""
    stream = await redis.hget(keys.state(provider, request_id), "stream")  # type: ignore[misc]
    error = RequestCancelledError("cancelled by the caller")
    # The script chooses the index and closes the event with the job's own context suffix.
    head, tail = events.split(events.ErrorEvent(0, error.to_dict()), suffix=b"")
    outcome = await _CANCEL(
        redis,
        [
            keys.state(provider, request_id),
            keys.events(provider, request_id),
            stream.decode() if stream else keys.work_stream(provider, "interactive"),
        ],
        [
            keys.channel(provider, request_id, namespace=namespace),
            keys.control_channel(provider, namespace=namespace),
            request_id,
            keys.GROUP,
            encode_error(error),
            result_ttl * 1000,
            head,
            tail,
        ],
    )
    return (outcome.decode() if isinstance(outcome, bytes) else str(outcome)) in ("cancelled", "cancelling")
