"""The HTTP façade: JSON-RPC 2.0 with SSE streaming, OpenAI-compatible endpoints, /metrics and /health.

``create_app(settings)`` builds a Starlette app a host can serve or mount, from one :class:`Facade`
(the state every route shares) and the route modules: ``routes_jsonrpc``, ``routes_openai``,
``routes_responses`` and ``routes_operations``, whose streams go through the one relay in ``relay``.
Its lifespan starts the producer it created (and stops it); when the app is mounted where lifespans do
not run, the producer is started by the first request instead. A producer passed in is the caller's
to start and stop.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response

from llmrelay.producer.api.facade import Facade
from llmrelay.producer.api.guard import Guard, error_body, route_of
from llmrelay.producer.api.routes_jsonrpc import JsonRpcRoutes
from llmrelay.producer.api.routes_openai import OpenAIRoutes
from llmrelay.producer.api.routes_operations import OperationsRoutes
from llmrelay.producer.api.routes_responses import ResponsesRoutes
from llmrelay.producer.sdk import LLMProducer
from llmrelay.shared.settings import Settings


def create_app(settings: Settings, *, producer: LLMProducer | None = None) -> Starlette:
    """The façade as an ASGI app (see the module docstring for who starts the producer)."""
    facade = Facade(settings, producer)
    routes = [
        *JsonRpcRoutes(facade).routes(),
        *OpenAIRoutes(facade).routes(),
        *ResponsesRoutes(facade).routes(),
        *OperationsRoutes(facade).routes(),
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


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    path = route_of(request.scope)
    code = "not_found" if exc.status_code == 404 else "method_not_allowed"
    message = "no such route" if exc.status_code == 404 else f"{request.method} is not allowed here"
    body = error_body(
        path, exc.status_code, message, kind="invalid_request_error", code=code, rpc_code=-32600
    )
    return Response(body, status_code=exc.status_code, media_type="application/json", headers=exc.headers)


__all__ = ["Facade", "create_app"]
