"""The Responses-API routes: ``POST /v1/responses`` (streaming or not), ``GET`` and ``DELETE
/v1/responses/{id}``.

A request becomes an LLMRequest (``responses_compat``) and goes through the same queue, governance and
limits as ``/v1/chat/completions``; the worker speaks each provider's own API. llmrelay is stateless by
default, unlike OpenAI (whose ``store`` defaults to true): a response is kept only when the caller sends
``store: true``, then for the result TTL (``LLMRELAY_RESULT_TTL``) under ``keys.stored_response``, with
its whole conversation, so that a later ``previous_response_id`` continues it and ``GET`` retrieves it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmrelay.producer.api import sse
from llmrelay.producer.api.facade import RouteGroup
from llmrelay.producer.api.guard import CALLER_KEY
from llmrelay.producer.api.methods import run_to_end
from llmrelay.producer.api.openai_compat import ChatRequestError, error_payload, service_error
from llmrelay.producer.api.relay import StreamRelay, WithFirst, aclose, unless_disconnected
from llmrelay.producer.api.responses_compat import ResponsesCall, parse_responses, previous_response_id
from llmrelay.producer.api.responses_reply import ResponseEventWriter, finished_body, response_id
from llmrelay.producer.api.routes_openai import JSON, error_response, refusal
from llmrelay.producer.backend import backend_call
from llmrelay.producer.follower import ReplayFilter
from llmrelay.shared import keys
from llmrelay.shared.conversations import StoredResponse, decode_stored_response, encode_stored_response
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.events import DoneEvent, RestartEvent, StreamEvent, TokenEvent, ToolCallEvent
from llmrelay.shared.payloads import PayloadError

METHOD = "responses"


class ResponsesRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            Route("/v1/responses", self.create, methods=["POST"]),
            Route("/v1/responses/{response_id}", self.retrieve, methods=["GET"]),
            Route("/v1/responses/{response_id}", self.delete, methods=["DELETE"]),
        ]

    async def create(self, request: Request) -> Response:
        facade = self.facade
        started = time.perf_counter()
        try:
            payload = orjson.loads(await request.body())
        except orjson.JSONDecodeError:
            return refusal(ChatRequestError("the request body is not valid JSON"))
        await facade.ensure_started()
        try:
            previous = previous_response_id(payload)
            history = None
            if previous is not None:
                stored = await self._load(previous)
                if stored is None:
                    raise ChatRequestError(
                        f"Previous response with id {previous!r} not found (llmrelay keeps a response only "
                        "when it was created with store: true, for the result TTL)",
                        "previous_response_id",
                        "previous_response_not_found",
                    )
                history = [m.model_dump(mode="json", exclude_none=True) for m in stored.messages]
            call = parse_responses(payload, facade.context(request).a2a, history)
        except ChatRequestError as exc:
            facade.metrics.observe_call(METHOD, "400", time.perf_counter() - started)
            return refusal(exc)
        except LLMRelayError as err:
            facade.metrics.observe_call(METHOD, str(err.code), time.perf_counter() - started)
            return error_response(err)
        if call.stream:
            return await self.stream(call, request)
        try:
            response = await unless_disconnected(run_to_end(facade.producer, call.request), request.receive)
            if response is None:
                facade.metrics.observe_call(METHOD, "disconnected", time.perf_counter() - started)
                return Response(status_code=499)
            body = finished_body(call.echo, response, int(time.time()))
            if call.store:
                await self._save(call, body, response)
        except LLMRelayError as err:
            facade.metrics.observe_call(METHOD, str(err.code), time.perf_counter() - started)
            return error_response(err)
        facade.metrics.observe_call(METHOD, "ok", time.perf_counter() - started)
        return Response(
            orjson.dumps(body), media_type=JSON, headers={"x-request-id": str(response["request_id"])}
        )

    async def stream(self, call: ResponsesCall, request: Request) -> Response:
        producer = self.facade.producer
        llm_request = call.request
        rid = str(llm_request.request_id)
        caller = request.scope.get(CALLER_KEY, "unknown")
        relay = StreamRelay(self.facade, caller, METHOD, request_id=rid, grace=0.0)
        try:
            model = producer.governance.route(llm_request).model.name
            relay.admit()
        except LLMRelayError as err:
            relay.observe(str(err.code))
            return error_response(err)
        created = int(time.time())
        events = self._storing(call, created, producer.events(llm_request, stream=True))
        # As for chat completions: an early refusal gets its HTTP status, not a 200 with a failed stream.
        first = asyncio.ensure_future(anext(events))
        await asyncio.wait((first,), timeout=sse.PING_SECONDS)
        early = first.exception() if first.done() else None
        if isinstance(early, LLMRelayError):
            await aclose(events)
            relay.refused(str(early.code))
            return error_response(early)
        writer = ResponseEventWriter(call.echo, rid, model, created)
        replay = ReplayFilter()

        def write(event: StreamEvent) -> Iterable[bytes]:
            match event:
                case TokenEvent(text=text):
                    if text := replay.token(text):
                        yield from writer.text(text)
                case ToolCallEvent():
                    if (delta := replay.tool_call(event)) is not None:
                        yield from writer.tool_call(delta)
                case RestartEvent():
                    replay.restart()
                case DoneEvent(response=response):
                    yield from writer.finish(response.model_dump(mode="json"))

        def fail(err: LLMRelayError | None, _index: int) -> bytes:
            if err is None:
                return writer.failed({"code": "server_error", "message": "internal error"})
            _status, payload, _headers = service_error(err)
            error = orjson.loads(payload)["error"]
            return writer.failed({"code": error["code"], "message": error["message"]})

        frames = relay.frames(WithFirst(first, events), write, fail, opening=writer.opening())
        return relay.response(frames)

    async def _storing(
        self, call: ResponsesCall, created: int, events: AsyncIterator[StreamEvent]
    ) -> AsyncIterator[StreamEvent]:
        """The events, the response stored (when asked) before its done event is passed on, so that a
        client that saw the response complete can name it at once."""
        try:
            async for event in events:
                if isinstance(event, DoneEvent) and call.store:
                    response = event.response.model_dump(mode="json")
                    await self._save(call, finished_body(call.echo, response, created), response)
                yield event
        finally:
            await aclose(events)

    async def retrieve(self, request: Request) -> Response:
        await self.facade.ensure_started()
        try:
            stored = await self._load(request.path_params["response_id"])
        except LLMRelayError as err:
            return error_response(err)
        if stored is None:
            return not_found(request.path_params["response_id"])
        return Response(orjson.dumps(stored.response), media_type=JSON)

    async def delete(self, request: Request) -> Response:
        await self.facade.ensure_started()
        rid = request.path_params["response_id"]
        try:
            deleted = await backend_call(self.facade.producer.redis.delete(keys.stored_response(rid)))
        except LLMRelayError as err:
            return error_response(err)
        if not deleted:
            return not_found(rid)
        body = {"id": rid, "object": "response.deleted", "deleted": True}
        return Response(orjson.dumps(body), media_type=JSON)

    async def _load(self, rid: str) -> StoredResponse | None:
        if not keys.valid_request_id(rid):
            return None
        raw = await backend_call(self.facade.producer.redis.get(keys.stored_response(rid)))
        if raw is None:
            return None
        try:
            return decode_stored_response(raw)
        except PayloadError:
            return None

    async def _save(self, call: ResponsesCall, body: dict[str, Any], response: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"role": "assistant", "content": response["content"]}
        if response.get("tool_calls"):
            reply["tool_calls"] = response["tool_calls"]
            reply["content"] = response["content"] or None
        stored = StoredResponse.model_validate({"response": body, "messages": [*call.conversation, reply]})
        key = keys.stored_response(response_id(str(response["request_id"])))
        await backend_call(
            self.facade.producer.redis.set(
                key, encode_stored_response(stored), ex=self.facade.settings.result_ttl
            )
        )


def not_found(rid: str) -> Response:
    message = f"No response with id {rid!r} is stored here (or it expired)"
    body = error_payload(message, "invalid_request_error", "response_id", "not_found")
    return Response(body, status_code=404, media_type=JSON)


__all__ = ["ResponsesRoutes"]
