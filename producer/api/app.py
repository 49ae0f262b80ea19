"""The HTTP façade: JSON-RPC 2.0 with SSE streaming, OpenAI-compatible endpoints, /metrics and /health.

``create_app(settings)`` builds a Starlette app a host can serve or mount. Its lifespan starts the
producer it created (and stops it); when the app is mounted where lifespans do not run, the producer
is started by the first request instead. A producer passed in is the caller's to start and stop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
import structlog
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import ValidationError
from redis.exceptions import RedisError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive

from llmrelay.producer.api import admin, sse
from llmrelay.producer.api.guard import CALLER_KEY, Guard, error_body, route_of
from llmrelay.producer.api.jsonrpc import (
    INTERNAL_ERROR,
    INVALID_PARAMS,
    NO_ID,
    Call,
    Dispatcher,
    RpcError,
    encode,
    error_object,
    error_response,
    parse,
    service_error,
    validation_details,
)
from llmrelay.producer.api.methods import METHODS, POSITIONAL, STREAMING, Context, EventFeed, run_to_end
from llmrelay.producer.api.openai_compat import (
    DONE,
    ChatRequestError,
    ChunkWriter,
    ReplayFilter,
    completion_body,
    error_payload,
    parse_chat,
)
from llmrelay.producer.api.openai_compat import service_error as openai_error
from llmrelay.producer.api.streams import StreamRegistry
from llmrelay.producer.api.telemetry import ApiMetrics
from llmrelay.producer.sdk import LLMProducer
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.errors import LLMRelayError, RateLimitedError
from llmrelay.shared.redaction import register_secrets
from llmrelay.shared.settings import Settings

log = structlog.get_logger("llmrelay.api")

T = TypeVar("T")

A2A_HEADERS = {b"x-trace-id": "trace_id", b"x-source-agent": "source_agent", b"x-session-id": "session_id"}
JSON = "application/json"


@dataclass(slots=True)
class _StreamState:
    """How one relayed stream ended: whether its terminal event went out, and the call's outcome."""

    request_id: str = ""
    token: str = ""
    finished: bool = False
    outcome: str = "ok"


class Facade:
    """The façade's state and route handlers; ``create_app`` wires them into a Starlette app."""

    def __init__(self, settings: Settings, producer: LLMProducer | None = None) -> None:
        self.settings = settings
        self.owns_producer = producer is None
        self.producer = producer if producer is not None else LLMProducer(settings)
        self.metrics = ApiMetrics()
        self.streams = StreamRegistry(
            settings.max_streams_per_caller, self.producer.cancel, lambda: self.producer.redis
        )
        self.dispatcher = Dispatcher(
            METHODS, positional=POSITIONAL, streaming=STREAMING, observer=self.metrics.observe_call
        )
        self._started = not self.owns_producer
        self._start_lock = asyncio.Lock()
        register_secrets(settings.secret_values())

    # -- lifecycle ------------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        await self.ensure_started()
        try:
            yield
        finally:
            await self.aclose()

    async def ensure_started(self) -> bool:
        """Start the producer if it is ours and not started; False when Redis does not answer."""
        if self._started:
            return True
        async with self._start_lock:
            if not self._started:
                try:
                    await self.producer.start()
                except LLMRelayError as err:
                    log.warning(
                        "the producer could not start; retrying on the next request", error=err.message
                    )
                    return False
                self._started = True
        return True

    async def aclose(self) -> None:
        await self.streams.aclose()
        if self.owns_producer and self._started:
            await self.producer.aclose()
            self._started = False

    def context(self, request: Request, *, last_event_id: str | None = None) -> Context:
        a2a: dict[str, str] = {}
        for name, value in request.scope["headers"]:
            field = A2A_HEADERS.get(name)
            if field is not None:
                a2a[field] = bytes(value).decode("latin-1")
        return Context(
            producer=self.producer,
            settings=self.settings,
            caller=request.scope.get(CALLER_KEY, "unknown"),
            a2a=a2a,
            last_event_id=last_event_id,
            facade=self.metrics,
        )

    # -- JSON-RPC -------------------------------------------------------------------------------------

    async def jsonrpc(self, request: Request) -> Response:
        body = await request.body()
        await self.ensure_started()
        try:
            batch, items = parse(body)
        except RpcError as exc:
            return Response(encode(error_response(None, exc.code, exc.message)), media_type=JSON)
        first = items[0]
        if not batch and isinstance(first, Call) and first.method in STREAMING:
            if first.is_notification:
                # Executed, as a notification must be, with nothing to answer: it runs like llm.complete.
                items = [Call("llm.complete", first.params, NO_ID)]
            else:
                return await self._rpc_stream(first, request)
        ctx = self.context(request)
        work = self.dispatcher.answer(batch, items, ctx)
        if any(isinstance(i, Call) and i.method == "llm.complete" for i in items):
            content = await _unless_disconnected(work, request.receive)
        else:
            content = await work
        if content is None:
            return Response(status_code=204)
        return Response(content, media_type=JSON)

    async def _rpc_stream(self, call: Call, request: Request) -> Response:
        ctx = self.context(request, last_event_id=request.headers.get("last-event-id"))
        head = b'{"jsonrpc":"2.0","id":%b,' % orjson.dumps(call.id)
        started = time.perf_counter()
        state = _StreamState()
        try:
            self.streams.acquire(ctx.caller)
        except RateLimitedError as err:
            self.metrics.observe_call(call.method, str(err.code), time.perf_counter() - started)
            return sse.EventStreamResponse(_one(_error_frame(head, service_error(err))))
        self.metrics.streams.inc()
        try:
            feed = await self.dispatcher.invoke(call, ctx)
        except Exception as exc:
            error = _rpc_error(exc, call.method)
            state.finished, state.outcome = True, str(error["code"])
            self._stream_closed(ctx.caller, state, started, call.method)(False)
            return sse.EventStreamResponse(_one(_error_frame(head, error)))
        assert isinstance(feed, EventFeed)
        state.request_id = feed.request_id
        state.token = await self.streams.started(feed.request_id)
        return sse.EventStreamResponse(
            self._rpc_frames(feed, head, state),
            headers=[(b"x-request-id", feed.request_id.encode())],
            on_close=self._stream_closed(ctx.caller, state, started, call.method),
        )

    async def _rpc_frames(
        self, feed: EventFeed, head: bytes, state: _StreamState
    ) -> AsyncGenerator[bytes, None]:
        rid = feed.request_id.encode()
        last = feed.after
        try:
            async for event in feed:
                last = event["index"]
                yield b'id: %b:%d\ndata: %b"result":%b}\n\n' % (rid, last, head, orjson.dumps(event))
            state.finished = True
        except LLMRelayError as err:
            state.finished, state.outcome = True, str(err.code)
            index = err.event_index if err.event_index is not None else last + 1
            yield _error_frame(head, service_error(err), b"%b:%d" % (rid, index))
        except Exception:
            log.exception("stream relay failed", request_id=feed.request_id)
            state.finished, state.outcome = True, str(INTERNAL_ERROR)
            yield _error_frame(
                head, error_object(INTERNAL_ERROR, "Internal error"), b"%b:%d" % (rid, last + 1)
            )

    def _stream_closed(
        self, caller: str, state: _StreamState, started: float, method: str, *, grace: float | None = None
    ) -> Callable[[bool], None]:
        def closed(disconnected: bool) -> None:
            self.streams.release(caller)
            self.metrics.streams.dec()
            outcome = state.outcome
            if disconnected and not state.finished:
                outcome = "disconnected"
                if state.request_id:
                    self.streams.abandoned(state.request_id, grace, state.token)
            self.metrics.observe_call(method, outcome, time.perf_counter() - started)

        return closed

    # -- OpenAI-compatible ----------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        body = await request.body()
        started = time.perf_counter()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _openai_refusal(ChatRequestError("the request body is not valid JSON"))
        try:
            chat = parse_chat(payload, self.context(request).a2a)
        except ChatRequestError as exc:
            self.metrics.observe_call("chat.completions", "400", time.perf_counter() - started)
            return _openai_refusal(exc)
        await self.ensure_started()
        if chat.stream:
            return await self._chat_stream(chat.request, chat.include_usage, request, started)
        try:
            response = await _unless_disconnected(run_to_end(self.producer, chat.request), request.receive)
        except LLMRelayError as err:
            self.metrics.observe_call("chat.completions", str(err.code), time.perf_counter() - started)
            return _openai_error_response(err)
        self.metrics.observe_call("chat.completions", "ok", time.perf_counter() - started)
        if response is None:
            return Response(status_code=499)
        return Response(
            completion_body(response, int(time.time())),
            media_type=JSON,
            headers={"x-request-id": str(response["request_id"])},
        )

    async def _chat_stream(
        self, llm_request: Any, include_usage: bool, request: Request, started: float
    ) -> Response:
        caller = request.scope.get(CALLER_KEY, "unknown")
        state = _StreamState(request_id=str(llm_request.request_id))
        try:
            model = self.producer.governance.route(llm_request).model.name
            self.streams.acquire(caller)
        except LLMRelayError as err:
            self.metrics.observe_call("chat.completions", str(err.code), time.perf_counter() - started)
            return _openai_error_response(err)
        self.metrics.streams.inc()
        closed = self._stream_closed(caller, state, started, "chat.completions", grace=0.0)
        events = self.producer.events(llm_request, stream=True)
        # Wait a little for the first event, so that an early refusal (queue full, provider down before
        # any text) gets its HTTP status rather than a 200 with an error inside the stream.
        first = asyncio.ensure_future(anext(events))
        await asyncio.wait((first,), timeout=sse.PING_SECONDS)
        refusal = first.exception() if first.done() else None
        if isinstance(refusal, LLMRelayError):
            await _aclose(events)
            state.finished, state.outcome = True, str(refusal.code)
            closed(False)
            return _openai_error_response(refusal)
        writer = ChunkWriter(state.request_id, int(time.time()), model, include_usage)
        return sse.EventStreamResponse(
            self._chat_frames(first, events, writer, state),
            headers=[(b"x-request-id", state.request_id.encode())],
            on_close=closed,
        )

    async def _chat_frames(
        self,
        first: asyncio.Future[dict[str, Any]],
        events: AsyncIterator[dict[str, Any]],
        writer: ChunkWriter,
        state: _StreamState,
    ) -> AsyncGenerator[bytes, None]:
        replay = ReplayFilter()
        try:
            yield writer.role()
            event = await first
            while True:
                kind = event["type"]
                if kind == "token":
                    text = replay.token(event["text"])
                    if text:
                        yield writer.text(text)
                elif kind == "restart":
                    replay.restart()
                elif kind == "done":
                    response = event["response"]
                    yield writer.finish(response.get("finish_reason", "stop"))
                    if writer.include_usage:
                        yield writer.usage(response.get("usage") or {})
                    yield DONE
                    state.finished = True
                    return
                event = await anext(events)
        except LLMRelayError as err:
            state.finished, state.outcome = True, str(err.code)
            _status, payload, _headers = openai_error(err)
            yield writer.error(payload)
        except StopAsyncIteration:  # pragma: no cover - the producer always ends with done or an error
            state.finished = True
        except Exception:
            log.exception("chat stream relay failed", request_id=state.request_id)
            state.finished, state.outcome = True, str(INTERNAL_ERROR)
            yield writer.error(error_payload("internal error", "server_error", None, "internal_error"))
        finally:
            if not first.done():
                first.cancel()
            await _aclose(events)

    async def list_models(self, request: Request) -> Response:
        data = [_openai_model(m.name, m.provider) for m in self.producer.governance.allowed_models()]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        governance = self.producer.governance
        info = governance.catalog.get(name)
        if info is None or not governance.is_allowed(name):
            message = f"The model '{name}' does not exist or is not allowed here"
            body = error_payload(message, "invalid_request_error", "model", "model_not_found")
            return Response(body, status_code=404, media_type=JSON)
        return Response(orjson.dumps(_openai_model(info.name, info.provider)), media_type=JSON)

    # -- operations -----------------------------------------------------------------------------------

    async def prometheus(self, request: Request) -> Response:
        samples: admin.Samples | None = None
        try:
            if not await self.ensure_started():
                raise ConnectionError("Redis is not reachable")
            redis = self.producer.redis
            workers = await admin.live_workers(redis)
            stats = await admin.stream_stats(redis, PROVIDERS)
            samples = await admin.worker_samples(redis, [str(w["worker_id"]) for w in workers])
            self.metrics.set_queues(stats, len(workers))
            self.metrics.redis_up.set(1)
        except (RedisError, OSError, LLMRelayError):
            self.metrics.redis_up.set(0)
        return Response(self.metrics.render(samples), media_type=CONTENT_TYPE_LATEST)

    async def health(self, request: Request) -> Response:
        if await self.ensure_started():
            providers = sorted({m.provider for m in self.producer.governance.allowed_models()})
            report = await admin.health(self.producer.redis, providers)
        else:
            report = {"status": "down", "redis": {"ok": False, "error": "BackendUnavailableError"}}
        report["facade"] = {
            "streams_inflight": self.streams.inflight,
            "pending_cancels": len(self.streams.pending()),
        }
        status = 503 if report["status"] == "down" else 200
        return Response(orjson.dumps(report), status_code=status, media_type=JSON)


def create_app(settings: Settings, *, producer: LLMProducer | None = None) -> Starlette:
    """The façade as an ASGI app (see the module docstring for who starts the producer)."""
    facade = Facade(settings, producer)
    routes = [
        Route("/jsonrpc", facade.jsonrpc, methods=["POST"]),
        Route("/v1/chat/completions", facade.chat_completions, methods=["POST"]),
        Route("/v1/models", facade.list_models, methods=["GET"]),
        Route("/v1/models/{model:path}", facade.get_model, methods=["GET"]),
        Route("/metrics", facade.prometheus, methods=["GET"]),
        Route("/health", facade.health, methods=["GET"]),
    ]
    token = settings.api_token.get_secret_value() if settings.api_token is not None else None
    app = Starlette(
        routes=routes,
        lifespan=facade.lifespan,
        middleware=[
            Middleware(Guard, token=token, max_body_bytes=settings.max_body_bytes, metrics=facade.metrics)
        ],
        exception_handlers={HTTPException: _http_error},
    )
    app.state.facade = facade
    return app


# -- helpers ------------------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = route_of(request.scope)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    message = "no such route" if exc.status_code == 404 else f"{request.method} is not allowed here"
    body = error_body(
        path, exc.status_code, message, kind="invalid_request_error", code=code, rpc_code=-32600
    )
    return Response(body, status_code=exc.status_code, media_type=JSON, headers=exc.headers)


async def _unless_disconnected(work: Awaitable[T], receive: Receive) -> T | None:
    """Await ``work`` unless the client disconnects first (then ``work`` is cancelled and None returned)."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(sse._until_disconnect(receive))
    try:
        await asyncio.wait((task, watch), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if task.cancelled():
        return None
    return task.result()


def _rpc_error(exc: BaseException, method: str) -> dict[str, Any]:
    if isinstance(exc, RpcError):
        return error_object(exc.code, exc.message, exc.data)
    if isinstance(exc, ValidationError):
        return error_object(INVALID_PARAMS, "Invalid params", validation_details(exc))
    if isinstance(exc, LLMRelayError):
        return service_error(exc)
    log.exception("JSON-RPC method failed", method=method, exc_info=exc)
    return error_object(INTERNAL_ERROR, "Internal error")


def _error_frame(head: bytes, error: dict[str, Any], event_id: bytes | None = None) -> bytes:
    data = b'data: %b"error":%b}\n\n' % (head, orjson.dumps(error))
    return b"id: %b\n%b" % (event_id, data) if event_id is not None else data


async def _aclose(iterator: AsyncIterator[Any]) -> None:
    close = getattr(iterator, "aclose", None)
    if close is not None:
        await close()


async def _one(frame: bytes) -> AsyncGenerator[bytes, None]:
    yield frame


def _openai_error_response(err: LLMRelayError) -> Response:
    status, body, headers = openai_error(err)
    response = Response(body, status_code=status, media_type=JSON)
    for name, value in headers:
        response.headers[name.decode()] = value.decode()
    return response


def _openai_refusal(exc: ChatRequestError) -> Response:
    body = error_payload(exc.message, "invalid_request_error", exc.param, exc.code)
    return Response(body, status_code=400, media_type=JSON)


def _openai_model(name: str, provider: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 0, "owned_by": provider}


__all__ = ["Facade", "create_app"]
