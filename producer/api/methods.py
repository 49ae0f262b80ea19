"""The ``llm.*`` JSON-RPC methods: plain async functions in an explicit registry, free of any HTTP.

A host with its own JSON-RPC handler registers them as they are::

    from llmrelay.producer.api.methods import METHODS, Context
    ctx = Context(producer=llm, settings=settings, caller="agentcore")
    result = await METHODS["llm.complete"](ctx, {"model": "gpt-6-luna", "messages": [...]})

Every method takes named params (a dict) and returns a JSON-ready value; errors are ``shared.errors``
exceptions, or pydantic ``ValidationError`` for params that do not validate. ``llm.stream`` returns an
:class:`EventFeed` (an async iterator of ``shared.events`` events), which the HTTP layer relays as
Server-Sent Events.
The ``llm.batch.*`` methods run bulk workloads: submit many requests at once, then follow the batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from llmrelay.producer.api import admin
from llmrelay.producer.backend import backend_call
from llmrelay.producer.sdk import LLMProducer
from llmrelay.shared.batch import MAX_BATCH_ITEMS
from llmrelay.shared.embeddings import EmbeddingRequest, EmbeddingResponse
from llmrelay.shared.errors import InvalidRequestError, LLMRelayError
from llmrelay.shared.events import StreamEvent
from llmrelay.shared.keys import valid_request_id
from llmrelay.shared.models import MAX_TIMEOUT_SECONDS, LLMRequest, RequestId
from llmrelay.shared.settings import Settings


class FacadeStats(Protocol):
    """What the HTTP layer reports about itself in ``llm.metrics``."""

    def snapshot(self) -> dict[str, Any]: ...


@dataclass(slots=True)
class Context:
    """What a method runs with: the producer, the settings, who is calling, and how.

    ``a2a`` is the A2A context the transport carried (e.g. ``X-Trace-Id`` headers); fields given in the
    params win over it. ``last_event_id`` asks ``llm.stream`` to resume after ``<request_id>:<index>``.
    """

    producer: LLMProducer
    settings: Settings
    caller: str = "in-process"
    a2a: Mapping[str, str] = field(default_factory=dict)
    last_event_id: str | None = None
    facade: FacadeStats | None = None


@dataclass(slots=True)
class EventFeed:
    """The events of one streamed request: token, restart, then done; an error event is raised."""

    request_id: str
    events: AsyncIterator[StreamEvent]
    after: int = 0

    def __aiter__(self) -> AsyncIterator[StreamEvent]:
        return self.events


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class NoParams(_Params):
    pass


class RequestRef(_Params):
    request_id: RequestId


class ResultParams(RequestRef):
    timeout: float | None = Field(default=None, gt=0, le=MAX_TIMEOUT_SECONDS)


#: Batch ids share the alphabet and length of request ids (an item's id defaults to ``<batch id>-<n>``).
BatchId = RequestId


class BatchSubmitParams(_Params):
    requests: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    batch_id: BatchId | None = None


class BatchRequests(BaseModel):
    """The items of a submission as requests: a refused one is reported at ``requests.<index>``."""

    requests: list[LLMRequest]


class BatchRef(_Params):
    batch_id: BatchId


class BatchResultsParams(BatchRef):
    offset: int = Field(default=0, ge=0)
    limit: int = Field(default=100, ge=1, le=1000)


# Tasks that cancel requests whose callers went away; held here so they are not collected mid-flight.
_background: set[asyncio.Task[Any]] = set()


def cancel_later(producer: LLMProducer, request_id: str) -> None:
    """Cancel a request without waiting (the caller is gone); failures are of no one's concern now."""

    async def run() -> None:
        with contextlib.suppress(LLMRelayError):
            await producer.cancel(request_id)

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)


def with_context(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """A copy of request params with the transport's A2A context where the params name none."""
    values = dict(params)
    for name, value in ctx.a2a.items():
        values.setdefault(name, value)
    return values


def build_request(ctx: Context, params: dict[str, Any]) -> LLMRequest:
    """An LLMRequest from named params, with the transport's A2A context and a request id filled in."""
    values = with_context(ctx, params)
    if values.get("request_id") is None:
        values["request_id"] = uuid.uuid4().hex
    return LLMRequest.model_validate(values)


async def complete(ctx: Context, params: dict[str, Any]) -> Any:
    """``llm.complete``: run the request to its end; the result is an LLMResponse object.

    If the call is cancelled (its HTTP client went away), the request is cancelled too.
    """
    return await run_to_end(ctx.producer, build_request(ctx, params))


async def run_to_end(producer: LLMProducer, request: LLMRequest) -> dict[str, Any]:
    """The response dict of a request run to its end; cancelled along with the awaiting task."""
    try:
        response = await producer.complete(request)
    except asyncio.CancelledError:
        cancel_later(producer, str(request.request_id))
        raise
    return response.model_dump(mode="json")


async def embed(ctx: Context, params: dict[str, Any]) -> Any:
    """``llm.embed`` (params: an EmbeddingRequest): the EmbeddingResponse, one vector per input."""
    values = with_context(ctx, params)
    if values.get("request_id") is None:
        values["request_id"] = uuid.uuid4().hex
    response = await embed_to_end(ctx.producer, EmbeddingRequest.model_validate(values))
    return response.model_dump(mode="json")


async def embed_to_end(producer: LLMProducer, request: EmbeddingRequest) -> EmbeddingResponse:
    """The response of an embedding request; cancelled along with the awaiting task."""
    try:
        return await producer.embed(request)
    except asyncio.CancelledError:
        cancel_later(producer, str(request.request_id))
        raise


async def stream(ctx: Context, params: dict[str, Any]) -> EventFeed:
    """``llm.stream``: the request's events, or those after ``ctx.last_event_id`` when resuming."""
    request = build_request(ctx, params)
    if ctx.last_event_id is None:
        return EventFeed(str(request.request_id), ctx.producer.events(request, stream=True))
    request_id, after = parse_event_id(ctx.last_event_id)
    if "request_id" in params and params["request_id"] != request_id:
        raise InvalidRequestError(
            "Last-Event-ID names another request than params.request_id",
            data={"field": "Last-Event-ID", "request_id": request_id},
        )
    return EventFeed(request_id, ctx.producer.resume(request_id, after), after)


def parse_event_id(value: str) -> tuple[str, int]:
    """``<request_id>:<index>`` (request ids may hold colons: the index is after the last one)."""
    request_id, sep, index = value.strip().rpartition(":")
    if not sep or not (index.isascii() and index.isdigit()) or not valid_request_id(request_id):
        raise InvalidRequestError(
            "Last-Event-ID must be <request_id>:<index> as sent in an event's id",
            data={"field": "Last-Event-ID"},
        )
    return request_id, int(index)


async def submit(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.submit``: queue the request and return its id at once; it survives the caller."""
    request = build_request(ctx, params)
    return {"request_id": await ctx.producer.submit(request)}


async def result(ctx: Context, params: dict[str, Any]) -> Any:
    """``llm.result``: the response of a submitted request, waiting up to ``timeout`` seconds for it."""
    p = ResultParams.model_validate(params)
    response = await ctx.producer.result(p.request_id, timeout=p.timeout)
    return response.model_dump(mode="json")


async def status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.status``: queued, running, done, failed, cancelled, expired or dead."""
    p = RequestRef.model_validate(params)
    return {"request_id": p.request_id, "status": await ctx.producer.status(p.request_id)}


async def cancel(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.cancel``: cancel a queued or running request; ``cancelled`` says whether this call did."""
    p = RequestRef.model_validate(params)
    return {"request_id": p.request_id, "cancelled": await ctx.producer.cancel(p.request_id)}


async def models(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.models``: the allowed models, the tier selector's choices and the catalog's price date."""
    NoParams.model_validate(params)
    governance = ctx.producer.governance
    return {
        "models": [info.public(governance.clock()) for info in governance.allowed_models()],
        "tiers": governance.selector.choices(),
        "default_model": governance.default_model if governance.default_model else None,
        "prices_as_of": governance.catalog.prices_as_of,
    }


async def batch_submit(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.batch.submit``: store many requests for the batch lane; the workers feed them as room frees.

    Every item is checked before anything is stored: one that does not validate fails the call with
    -32602 at ``requests.<index>``; one refused by governance fails it with its own error and
    ``data.index``. Items without a ``request_id`` get ``<batch id>-<index>``.
    """
    p = BatchSubmitParams.model_validate(params)
    items = BatchRequests.model_validate({"requests": [with_context(ctx, r) for r in p.requests]})
    batch_id = await ctx.producer.submit_batch(items.requests, batch_id=p.batch_id)
    return {"batch_id": batch_id, "total": len(items.requests)}


async def batch_status(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.batch.status``: the batch's state and item counts, whether it finished, and its progress."""
    p = BatchRef.model_validate(params)
    found = await ctx.producer.batch_status(p.batch_id)
    out = found.model_dump(mode="json")
    out["finished"] = found.finished
    out["progress"] = found.completed / found.total if found.total else 1.0
    return out


async def batch_results(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.batch.results``: a page of outcomes in submission order; ``next_offset`` is null at the end."""
    p = BatchResultsParams.model_validate(params)
    # One item past the page tells whether another page follows.
    page = [item async for item in ctx.producer.batch_results(p.batch_id, offset=p.offset, limit=p.limit + 1)]
    more = len(page) > p.limit
    return {
        "items": [item.model_dump(mode="json") for item in page[: p.limit]],
        "next_offset": p.offset + p.limit if more else None,
    }


async def batch_cancel(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.batch.cancel``: stop feeding the batch and cancel its items that have not finished."""
    p = BatchRef.model_validate(params)
    return {"batch_id": p.batch_id, "cancelled": await ctx.producer.batch_cancel(p.batch_id)}


def serving_providers(producer: LLMProducer) -> list[str]:
    """The providers of the allowed models: those whose health is reported."""
    return sorted({info.provider for info in producer.governance.allowed_models()})


async def metrics(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.metrics``: one snapshot across the live workers and this façade."""
    NoParams.model_validate(params)
    snapshot: dict[str, Any] = await backend_call(admin.metrics(ctx.producer.redis))
    snapshot["facade"] = ctx.facade.snapshot() if ctx.facade is not None else None
    return snapshot


async def health(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    """``llm.health``: Redis, live workers, each provider's state, queue lag; ok, degraded or down."""
    NoParams.model_validate(params)
    return await admin.health(ctx.producer.redis, serving_providers(ctx.producer))


METHODS: dict[str, Callable[[Context, dict[str, Any]], Awaitable[Any]]] = {
    "llm.complete": complete,
    "llm.stream": stream,
    "llm.submit": submit,
    "llm.result": result,
    "llm.status": status,
    "llm.cancel": cancel,
    "llm.embed": embed,
    "llm.models": models,
    "llm.metrics": metrics,
    "llm.health": health,
    "llm.batch.submit": batch_submit,
    "llm.batch.status": batch_status,
    "llm.batch.results": batch_results,
    "llm.batch.cancel": batch_cancel,
}

#: Methods whose result is an EventFeed: the HTTP layer answers them with an event stream.
STREAMING = frozenset({"llm.stream"})

#: Parameter names for calls that pass params by position (``"params": ["<request id>"]``).
POSITIONAL: dict[str, tuple[str, ...]] = {
    "llm.result": ("request_id", "timeout"),
    "llm.status": ("request_id",),
    "llm.cancel": ("request_id",),
}

__all__ = [
    "METHODS",
    "POSITIONAL",
    "STREAMING",
    "Context",
    "EventFeed",
    "build_request",
    "cancel_later",
    "embed_to_end",
    "parse_event_id",
    "run_to_end",
    "serving_providers",
    "with_context",
]
