"""The façade's outer layer: bearer-token auth, the body size limit, the last-resort error handler, and
the HTTP request metrics. One pure ASGI middleware, so the hot path pays for one wrapper, not four.

Errors it answers are shaped for the route: OpenAI's ``{"error": {...}}`` under ``/v1``, a JSON-RPC
error object on ``/jsonrpc``. ``/health`` needs no token.
"""

from __future__ import annotations

import hashlib
import hmac
import time

import orjson
import structlog
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from llmrelay.producer.api.telemetry import ApiMetrics

log = structlog.get_logger("llmrelay.api")

ROUTES = frozenset({
    "/jsonrpc", "/v1/chat/completions", "/v1/responses", "/v1/embeddings", "/v1/models",
    "/metrics", "/health",
})
OPEN_ROUTES = frozenset({"/health"})
#: Where the guard leaves the caller's identity in the ASGI scope.
CALLER_KEY = "llmrelay.caller"


class BodyTooLargeError(Exception):
    """The request body grew past the limit while it was being read."""


def route_of(scope: Scope) -> str:
    """The path below the app's mount point."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


def route_label(path: str) -> str:
    if path in ROUTES:
        return path
    if path.startswith("/v1/models/"):
        return "/v1/models/{id}"
    if path.startswith("/v1/responses/"):
        return "/v1/responses/{id}"
    return "other"


def caller_of(scope: Scope, token: bytes | None) -> str:
    """Who is calling, for per-caller limits: the bearer token (hashed) when auth is on, else the IP."""
    if token:
        return "token:" + hashlib.sha256(token).hexdigest()[:16]
    client = scope.get("client")
    return f"ip:{client[0]}" if client else "ip:unknown"


def error_body(path: str, status: int, message: str, *, kind: str, code: str, rpc_code: int) -> bytes:
    if path.startswith("/v1/"):
        return orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    if path == "/jsonrpc":
        return orjson.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": rpc_code, "message": message}})
    return orjson.dumps({"error": {"message": message, "type": kind, "code": code}})


class Guard:
    """Auth, body limit, catch-all and HTTP metrics around the façade's routes."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, max_body_bytes: int, metrics: ApiMetrics | None = None
    ) -> None:
        self.app = app
        self.token = token.encode() if token else None
        self.max_body = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        path = route_of(scope)
        status = 500
        response_started = False

        async def reply(code: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None) -> None:
            nonlocal status, response_started
            status, response_started = code, True
            await send(
                {
                    "type": "http.response.start",
                    "status": code,
                    "headers": [(b"content-type", b"application/json"), *(headers or [])],
                }
            )
            await send({"type": "http.response.body", "body": body})

        try:
            presented = _bearer(scope)
            if self.token is not None and path not in OPEN_ROUTES and not _same(presented, self.token):
                message = "a valid 'Authorization: Bearer <token>' header is required"
                body = error_body(
                    path, 401, message, kind="authentication_error", code="invalid_api_key", rpc_code=-32005
                )
                await reply(401, body, [(b"www-authenticate", b"Bearer")])
                return
            scope[CALLER_KEY] = caller_of(scope, presented if self.token else None)

            length = _content_length(scope)
            if length is not None and length > self.max_body:
                await reply(413, self._too_large(path))
                return

            seen = 0

            async def counted_receive() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body:
                        raise BodyTooLargeError
                return message

            async def watched_send(message: Message) -> None:
                nonlocal status, response_started
                if message["type"] == "http.response.start":
                    status, response_started = message["status"], True
                await send(message)

            try:
                await self.app(scope, counted_receive, watched_send)
            except BodyTooLargeError:
                if not response_started:
                    await reply(413, self._too_large(path))
            except ClientDisconnect:
                status = 499  # the client left while sending its body: no one to answer
        except Exception:
            log.exception("unhandled error", route=route_label(path))
            if not response_started:
                body = error_body(
                    path, 500, "internal error", kind="server_error", code="internal_error", rpc_code=-32603
                )
                await reply(500, body)
        finally:
            if self.metrics is not None:
                self.metrics.observe_http(route_label(path), status, time.perf_counter() - started)

    def _too_large(self, path: str) -> bytes:
        message = f"the request body exceeds {self.max_body} bytes"
        return error_body(
            path, 413, message, kind="invalid_request_error", code="request_too_large", rpc_code=-32600
        )


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, credentials = bytes(value).partition(b" ")
            if scheme.lower() == b"bearer" and credentials.strip():
                return credentials.strip()
            return None
    return None


def _same(presented: bytes | None, token: bytes) -> bool:
    # compare_digest takes as long whatever the first differing byte; a missing token compares as empty.
    return hmac.compare_digest(presented or b"", token)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


__all__ = [
    "CALLER_KEY",
    "BodyTooLargeError",
    "Guard",
    "caller_of",
    "error_body",
    "header",
    "route_label",
    "route_of",
]
