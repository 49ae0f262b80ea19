"""The per-request event writer: token and tool-call relay with coalescing, restart, the terminal event."""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis

from llmrelay.shared import events, keys, scripts
from llmrelay.shared.embeddings import EmbeddingResponse, encode_embedding_result
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.events import (
    DoneEvent,
    EmbeddingDoneEvent,
    ErrorEvent,
    RestartEvent,
    StreamEvent,
    TokenEvent,
    ToolCallEvent,
)
from llmrelay.shared.jobs import encode_error, encode_result
from llmrelay.shared.models import LLMResponse
from llmrelay.shared.scripts import LuaScript
from llmrelay.worker.providers.base import ToolCallDelta

#: What the runner relays: a text delta or a tool-call delta.
Delta = str | ToolCallDelta

_RELAY = LuaScript(scripts.RELAY)
_FINISH = LuaScript(scripts.FINISH)


class LeaseLostError(Exception):
    """Another delivery of this job began: this worker must stop writing for it."""


class JobEvents:
    """Writes one job's events in index order: each is appended to its log and published, atomically.

    Deltas are coalesced: while one write is in flight, those that arrive are buffered and go out
    together in the next write, so a fast provider costs a few Redis round trips per job, not one per
    token, while the first delta (time to first token) always leaves at once. Text and tool-call
    deltas keep their order: consecutive text joins into one token event, consecutive fragments of
    one call into one tool_call event, and a change of kind starts a new event.
    """

    def __init__(
        self,
        redis: Redis,
        provider: str,
        request_id: str,
        *,
        context: dict[str, Any],
        stream_key: str,
        entry_id: str,
        deliveries: str,
        last_index: int,
        ttl_ms: int,
        namespace: str,
    ) -> None:
        self._redis = redis
        self.provider = provider
        self.request_id = request_id
        self.stream_key = stream_key
        self.entry_id = entry_id
        self.deliveries = deliveries
        self.index = last_index
        self._ttl_ms = ttl_ms
        self._state = keys.state(provider, request_id)
        self._events = keys.events(provider, request_id)
        self._channel = keys.channel(provider, request_id, namespace=namespace)
        self._suffix = events.context_suffix(context)
        self._buffer: list[Delta] = []
        self._writer: asyncio.Task[None] | None = None
        self.tokens_sent = False

    # -- tokens -------------------------------------------------------------------------------------

    async def push_first(self, delta: Delta) -> None:
        """Write an attempt's first delta before reading on: the time to first token is not spent
        waiting for the rest of a buffered response to be parsed."""
        await self.flush()
        await self._write(self._event(delta))
        self.tokens_sent = True

    def push(self, delta: Delta) -> None:
        """Queue a delta; written at once unless a write is in flight (then with the next one)."""
        self._buffer.append(delta)
        if self._writer is None:
            self._writer = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self._buffer:
                batch = coalesce(self._buffer)
                self._buffer.clear()
                for delta in batch:
                    await self._write(self._event(delta))
                    self.tokens_sent = True
        finally:
            self._writer = None

    def _event(self, delta: Delta) -> TokenEvent | ToolCallEvent:
        if isinstance(delta, str):
            return TokenEvent(self.index + 1, delta)
        return ToolCallEvent(self.index + 1, delta.call_index, delta.id, delta.name, delta.arguments)

    async def flush(self) -> None:
        """Wait until every pushed token is written (raises what the writer raised)."""
        while self._writer is not None:
            await asyncio.shield(self._writer)
        if self._buffer:
            await self._drain()

    def discard(self) -> None:
        """Drop buffered tokens of an attempt that failed (a restart event follows)."""
        self._buffer.clear()

    async def ensure_owned(self) -> None:
        """Raise LeaseLostError if another delivery of the job began since this one: checked before
        each provider call, so that a worker that lost its job (stopped, or hung past the stall bound,
        while another worker reclaimed it) does not call the provider for it again."""
        current = await self._redis.hget(self._state, "deliveries")  # type: ignore[misc]
        if current is None or current.decode() != self.deliveries:
            raise LeaseLostError(self.request_id)

    async def restart(self, attempt: int, reason: str) -> None:
        await self.flush()
        await self._write(RestartEvent(self.index + 1, attempt, reason))
        self.tokens_sent = False

    async def _write(self, event: StreamEvent) -> None:
        ok = await _RELAY(
            self._redis,
            [self._state, self._events],
            [self._channel, event.index, events.encode(event, self._suffix), self._ttl_ms, self.deliveries],
        )
        if not ok:
            raise LeaseLostError(self.request_id)
        self.index += 1

    # -- the end ------------------------------------------------------------------------------------

    async def done(self, response: LLMResponse | EmbeddingResponse) -> bool:
        try:
            await self.flush()
        except LeaseLostError:
            return False
        if isinstance(response, EmbeddingResponse):
            embedded = EmbeddingDoneEvent(self.index + 1, response)
            return await self._finish("done", embedded, encode_embedding_result(response))
        event = DoneEvent(self.index + 1, response)
        return await self._finish("done", event, encode_result(response))

    async def fail(self, status: str, error: LLMRelayError, job_payload: bytes = b"") -> bool:
        self.discard()
        if self._writer is not None:
            try:
                await self.flush()
            except LeaseLostError:
                return False
        event = ErrorEvent.of(self.index + 1, error)
        return await self._finish(status, event, encode_error(error), job_payload)

    async def _finish(self, status: str, event: StreamEvent, stored: bytes, job_payload: bytes = b"") -> bool:
        # FINISH places the event after the log's last one, so it is handed the bytes around the index.
        head, tail = events.split(event, self._suffix)
        result: Any = await _FINISH(
            self._redis,
            [self._state, self._events, self.stream_key, keys.dead_letter(self.provider)],
            [
                self._channel,
                event.index,
                head,
                tail,
                status,
                stored,
                self.deliveries,
                self.entry_id,
                keys.GROUP,
                self._ttl_ms,
                job_payload,
            ],
        )
        return bool(result)


def coalesce(deltas: list[Delta]) -> list[Delta]:
    """Runs of text joined, runs of one call's fragments joined, in their order."""
    out: list[Delta] = []
    run: list[str] = []
    call: ToolCallDelta | None = None  # the first delta of the run of call fragments in ``run``
    for delta in deltas:
        if isinstance(delta, str):
            if call is not None:
                out.append(_joined(call, run))
                call, run = None, []
            run.append(delta)
        # A fragment that names its call (id or name) starts a run, so a call's first event names it.
        elif (
            call is not None
            and call.call_index == delta.call_index
            and delta.id is None
            and delta.name is None
        ):
            run.append(delta.arguments)
        else:
            if call is not None:
                out.append(_joined(call, run))
            elif run:
                out.append("".join(run))
            call, run = delta, [delta.arguments]
    if call is not None:
        out.append(_joined(call, run))
    elif run:
        out.append("".join(run))
    return out


def _joined(first: ToolCallDelta, arguments: list[str]) -> ToolCallDelta:
    if len(arguments) == 1:
        return first
    return ToolCallDelta(first.call_index, first.id, first.name, "".join(arguments))
