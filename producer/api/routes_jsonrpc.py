"""``POST /jsonrpc``: JSON-RPC 2.0 calls and batches, and ``llm.stream`` answered as Server-Sent Events.

Each SSE event's ``data`` is a JSON-RPC response with the call's id whose ``result`` is one of the
request's events, passed on in the bytes it came in; its SSE id is ``<request_id>:<index>``, which a
client sends back as ``Last-Event-ID`` to resume.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmrelay.producer.api import sse
from llmrelay.producer.api.facade import RouteGroup
from llmrelay.producer.api.jsonrpc import (
    INTERNAL_ERROR,
    NO_ID,
    Call,
    RpcError,
    encode,
    error_for,
    error_object,
    error_response,
    parse,
    service_error,
)
from llmrelay.producer.api.methods import STREAMING, EventFeed
from llmrelay.producer.api.relay import StreamRelay, one, unless_disconnected
from llmrelay.shared.errors import LLMRelayError, RateLimitedError
from llmrelay.shared.events import StreamEvent

JSON = "application/json"


class JsonRpcRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [Route("/jsonrpc", self.jsonrpc, methods=["POST"])]

    async def jsonrpc(self, request: Request) -> Response:
        body = await request.body()
        facade = self.facade
        await facade.ensure_started()
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
                return await self.stream(first, request)
        work = facade.dispatcher.answer(batch, items, facade.context(request))
        if any(isinstance(i, Call) and i.method == "llm.complete" for i in items):
            content = await unless_disconnected(work, request.receive)
        else:
            content = await work
        if content is None:
            return Response(status_code=204)
        return Response(content, media_type=JSON)

    async def stream(self, call: Call, request: Request) -> Response:
        facade = self.facade
        ctx = facade.context(request, last_event_id=request.headers.get("last-event-id"))
        head = b'{"jsonrpc":"2.0","id":%b,' % orjson.dumps(call.id)
        relay = StreamRelay(facade, ctx.caller, call.method)
        try:
            relay.admit()
        except RateLimitedError as err:
            relay.observe(str(err.code))
            return sse_response_of(error_frame(head, service_error(err)))
        try:
            feed = await facade.dispatcher.invoke(call, ctx)
        except Exception as exc:
            error = error_for(exc, call.method)
            relay.refused(str(error["code"]))
            return sse_response_of(error_frame(head, error))
        assert isinstance(feed, EventFeed)
        await relay.follow(feed.request_id)
        rid = feed.request_id.encode()

        def write(event: StreamEvent) -> Iterable[bytes]:
            yield b'id: %b:%d\ndata: %b"result":%b}\n\n' % (rid, event.index, head, event.wire())

        def fail(err: LLMRelayError | None, index: int) -> bytes:
            error = service_error(err) if err is not None else error_object(INTERNAL_ERROR, "Internal error")
            return error_frame(head, error, b"%b:%d" % (rid, index))

        return relay.response(relay.frames(feed.events, write, fail, after=feed.after))


def error_frame(head: bytes, error: dict[str, Any], event_id: bytes | None = None) -> bytes:
    data = b'data: %b"error":%b}\n\n' % (head, orjson.dumps(error))
    return b"id: %b\n%b" % (event_id, data) if event_id is not None else data


def sse_response_of(frame: bytes) -> Response:
    """A stream of one error frame: the call failed before any event."""
    return sse.EventStreamResponse(one(frame))


__all__ = ["JsonRpcRoutes"]
