"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` (streaming or not), ``POST /v1/embeddings``
and ``GET /v1/models``.

The wire format itself (parsing a chat body, writing chunks and errors) is ``openai_compat``'s; these
handlers run the request through the producer and relay its events with the façade's one stream relay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from datetime import date
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from llmrelay.producer.api import sse
from llmrelay.producer.api.facade import RouteGroup
from llmrelay.producer.api.guard import CALLER_KEY
from llmrelay.producer.api.methods import embed_to_end, run_to_end
from llmrelay.producer.api.openai_compat import ChatRequestError, error_payload, parse_chat, service_error
from llmrelay.producer.api.openai_embeddings import embeddings_body, parse_embeddings
from llmrelay.producer.api.openai_reply import DONE, ChunkWriter, completion_body
from llmrelay.producer.api.relay import StreamRelay, WithFirst, aclose, unless_disconnected
from llmrelay.producer.follower import ReplayFilter
from llmrelay.shared.catalog import ModelInfo
from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.events import DoneEvent, RestartEvent, StreamEvent, TokenEvent, ToolCallEvent
from llmrelay.shared.models import LLMRequest

JSON = "application/json"
METHOD = "chat.completions"
EMBEDDINGS = "embeddings"


class OpenAIRoutes(RouteGroup):
    def routes(self) -> list[Route]:
        return [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            Route("/v1/models", self.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", self.get_model, methods=["GET"]),
        ]

    async def chat_completions(self, request: Request) -> Response:
        facade = self.facade
        body = await request.body()
        started = time.perf_counter()
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError:
            return refusal(ChatRequestError("the request body is not valid JSON"))
        try:
            chat = parse_chat(payload, facade.context(request).a2a)
        except ChatRequestError as exc:
            facade.metrics.observe_call(METHOD, "400", time.perf_counter() - started)
            return refusal(exc)
        await facade.ensure_started()
        if chat.stream:
            return await self.stream(chat.request, chat.include_usage, request)
        try:
            response = await unless_disconnected(run_to_end(facade.producer, chat.request), request.receive)
        except LLMRelayError as err:
            facade.metrics.observe_call(METHOD, str(err.code), time.perf_counter() - started)
            return error_response(err)
        facade.metrics.observe_call(METHOD, "ok", time.perf_counter() - started)
        if response is None:
            return Response(status_code=499)
        return Response(
            completion_body(response, int(time.time())),
            media_type=JSON,
            headers={"x-request-id": str(response["request_id"])},
        )

    async def embeddings(self, request: Request) -> Response:
        facade = self.facade
        started = time.perf_counter()
        try:
            call = parse_embeddings(orjson.loads(await request.body()), facade.context(request).a2a)
        except orjson.JSONDecodeError:
            return refusal(ChatRequestError("the request body is not valid JSON"))
        except ChatRequestError as exc:
            facade.metrics.observe_call(EMBEDDINGS, "400", time.perf_counter() - started)
            return refusal(exc)
        await facade.ensure_started()
        try:
            response = await unless_disconnected(embed_to_end(facade.producer, call.request), request.receive)
        except LLMRelayError as err:
            facade.metrics.observe_call(EMBEDDINGS, str(err.code), time.perf_counter() - started)
            return error_response(err)
        facade.metrics.observe_call(EMBEDDINGS, "ok", time.perf_counter() - started)
        if response is None:
            return Response(status_code=499)
        return Response(
            embeddings_body(response, call.encoding_format),
            media_type=JSON,
            headers={"x-request-id": response.request_id},
        )

    async def stream(self, llm_request: LLMRequest, include_usage: bool, request: Request) -> Response:
        producer = self.facade.producer
        caller = request.scope.get(CALLER_KEY, "unknown")
        relay = StreamRelay(self.facade, caller, METHOD, request_id=str(llm_request.request_id), grace=0.0)
        try:
            model = producer.governance.route(llm_request).model.name
            relay.admit()
        except LLMRelayError as err:
            relay.observe(str(err.code))
            return error_response(err)
        events = producer.events(llm_request, stream=True)
        # Wait a little for the first event, so that an early refusal (queue full, provider down before
        # any text) gets its HTTP status rather than a 200 with an error inside the stream.
        first = asyncio.ensure_future(anext(events))
        await asyncio.wait((first,), timeout=sse.PING_SECONDS)
        early = first.exception() if first.done() else None
        if isinstance(early, LLMRelayError):
            await aclose(events)
            relay.refused(str(early.code))
            return error_response(early)
        writer = ChunkWriter(relay.request_id, int(time.time()), model, include_usage)
        replay = ReplayFilter()

        def write(event: StreamEvent) -> Iterable[bytes]:
            match event:
                case TokenEvent(text=text):
                    if text := replay.token(text):
                        yield writer.text(text)
                case ToolCallEvent():
                    if (delta := replay.tool_call(event)) is not None:
                        yield writer.tool_call(delta)
                case RestartEvent():
                    replay.restart()
                case DoneEvent(response=response):
                    yield writer.finish(response.finish_reason)
                    if writer.include_usage:
                        yield writer.usage(response.usage.model_dump())
                    yield DONE

        def fail(err: LLMRelayError | None, _index: int) -> bytes:
            if err is None:
                return writer.error(error_payload("internal error", "server_error", None, "internal_error"))
            _status, payload, _headers = service_error(err)
            return writer.error(payload)

        frames = relay.frames(WithFirst(first, events), write, fail, opening=[writer.role()])
        return relay.response(frames)

    async def list_models(self, request: Request) -> Response:
        governance = self.facade.producer.governance
        data = [model_object(m, governance.clock()) for m in governance.allowed_models()]
        return Response(orjson.dumps({"object": "list", "data": data}), media_type=JSON)

    async def get_model(self, request: Request) -> Response:
        name = request.path_params["model"]
        governance = self.facade.producer.governance
        info = governance.catalog.get(name)
        if info is None or not governance.is_allowed(name):
            message = f"The model '{name}' does not exist or is not allowed here"
            body = error_payload(message, "invalid_request_error", "model", "model_not_found")
            return Response(body, status_code=404, media_type=JSON)
        return Response(orjson.dumps(model_object(info, governance.clock())), media_type=JSON)


def error_response(err: LLMRelayError) -> Response:
    status, body, headers = service_error(err)
    response = Response(body, status_code=status, media_type=JSON)
    for name, value in headers:
        response.headers[name.decode()] = value.decode()
    return response


def refusal(exc: ChatRequestError) -> Response:
    body = error_payload(exc.message, "invalid_request_error", exc.param, exc.code)
    return Response(body, status_code=400, media_type=JSON)


def model_object(info: ModelInfo, today: date) -> dict[str, Any]:
    """OpenAI's model object, with the catalog's kind, lifecycle and capabilities beside its fields."""
    public = info.public(today)
    out = {"id": info.name, "object": "model", "created": 0, "owned_by": info.provider}
    out.update({key: public[key] for key in ("kind", "lifecycle", "retires_on", "successor")})
    if "capabilities" in public:
        out["capabilities"] = public["capabilities"]
    return out


__all__ = ["OpenAIRoutes"]
