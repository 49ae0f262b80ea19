"""The simulator's ASGI application (a bare ASGI callable: no framework in the request path).

Its length is this reference (endpoints, headers, timing, and what each SDK raises for each fault) and
one class whose request path reads top to bottom: read, pick a fault, reply or stream. The wire formats
(:mod:`.providers`), rate-limit headers (:mod:`.ratelimits`), model listings (:mod:`.models`), faults
(:mod:`.faults`) and ASGI primitives (:mod:`.asgi`) live in modules of their own.

Endpoints
    OpenAI      ``POST /v1/chat/completions``, ``POST /v1/responses`` (streaming or not), ``GET /v1/models``,
                ``POST /v1/embeddings`` (see :mod:`.embeddings`, as are Gemini's two below)
    Anthropic   ``POST /v1/messages`` (streaming or not), ``GET /v1/models`` (with ``anthropic-version``)
    Gemini      ``POST /v1beta/models/{model}:generateContent``,
                ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` (without ``alt=sse``: one
                JSON array), ``:embedContent``, ``:batchEmbedContents``, ``GET /v1beta/models``; ``v1`` and
                ``v1alpha`` paths work too
    Control     ``GET /_sim/health``; ``GET /_sim/requests[?provider=...&limit=N]`` (recorded requests,
                oldest first: ``provider, api, path, method, query, headers`` (lower-cased names),
                ``body`` (parsed JSON), ``model, stream, ts, fault``), ``DELETE /_sim/requests``;
                ``GET|POST /_sim/config`` (knobs, see :class:`SimulatorConfig`); ``GET|POST|DELETE
                /_sim/faults`` (see :mod:`llmrelay.simulator.faults`); ``POST /_sim/reset`` (all of the
                above back to the start state)

Every provider response carries ``request-id`` and ``x-request-id``; OpenAI responses carry
``x-ratelimit-limit-requests``, ``x-ratelimit-limit-tokens``, ``x-ratelimit-remaining-requests``,
``x-ratelimit-remaining-tokens``, ``x-ratelimit-reset-requests``, ``x-ratelimit-reset-tokens`` (durations
such as ``"59.2s"`` or ``"20ms"``); Anthropic responses ``anthropic-ratelimit-requests-limit``,
``-requests-remaining``, ``-requests-reset``, ``-tokens-limit``, ``-tokens-remaining``, ``-tokens-reset``
(RFC 3339 times). The counts come from a fixed one-minute window per provider and are never
enforced; a 429 reports 0 requests remaining. 429 (and 503/529 given a ``retry_after``) carry
``retry-after`` in whole seconds, rounded up, and ``retry-after-ms``.

Timing: ``slow_first_byte_ms`` before the response headers; streams then send their headers, wait
``ttft_ms``, send the preamble events with the first token, then one token every
``1/tokens_per_second`` s, the closing events right after the last token. Without pacing a stream is
written in one piece (still one SSE event per token). Non-streaming replies wait ``ttft_ms`` plus the
stream's pacing time. Directives in the prompt override the knobs for one request.

What each SDK raises (checked with openai 3.57, anthropic 2.14, google-genai 3.6.1 on httpx2, SDK
retries off; ``openai.X`` / ``anthropic.X`` / ``google.genai.errors.X``)::

    fault                  openai                       anthropic                      google-genai
    ---------------------  ---------------------------  -----------------------------  ---------------------
    429                    RateLimitError               RateLimitError                 ClientError code 429
    500                    InternalServerError          InternalServerError            ServerError code 500
    503                    InternalServerError          ServiceUnavailableError        ServerError code 503
    529 (others get 503)   InternalServerError (503)    OverloadedError (529)          ServerError code 503
    overloaded_in_stream   as cut                       stream: APIStatusError,        as cut
                                                        status_code 200; non-stream:
                                                        OverloadedError (529)
    cut, non-streaming     APIConnectionError           APIConnectionError             RemoteProtocolError (*)
    cut, streaming         APIConnectionError           RemoteProtocolError (*)        RemoteProtocolError (*)
    401                    AuthenticationError          AuthenticationError            ClientError code 401
    400                    BadRequestError              BadRequestError                ClientError code 400
    403                    PermissionDeniedError        PermissionDeniedError          ClientError code 403
    404                    NotFoundError                NotFoundError                  ClientError code 404
    422                    UnprocessableEntityError     UnprocessableEntityError       ClientError code 422
    hang + client timeout  APITimeoutError              APITimeoutError                httpx2.ReadTimeout

    (*) ``httpx2.RemoteProtocolError``, raw (not wrapped by the SDK)

    - openai 3.57 wraps transport errors, also those raised while iterating a stream, in
      ``APIConnectionError`` (``__cause__`` is the ``httpx2.RemoteProtocolError``); its status errors
      have an ``httpx2.HTTPStatusError`` as ``__cause__``. Streams and non-streams raise the same classes.
    - anthropic 2.14 wraps transport errors only before the response is returned: a stream cut comes
      out raw as ``httpx2.RemoteProtocolError``. An ``event: error`` inside a stream becomes an
      ``APIStatusError`` whose ``status_code`` is the stream's 200 and whose ``body`` is the event.
    - google-genai never wraps transport errors: raw ``httpx2`` exceptions.
    - Status errors are raised when the call is awaited (before the first chunk) for all three SDKs,
      streaming or not; cuts are raised while iterating.
    - 401 messages quote the key received, and every SDK copies the message into ``str(exc)``.
    - anthropic 2.14 sends its key as ``Authorization: Bearer ...`` (not ``x-api-key``); openai as
      ``Authorization: Bearer ...``; google-genai as ``x-goog-api-key``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import secrets
import time
from collections import deque
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs

import orjson

from . import embeddings, models
from .asgi import (
    JSON,
    NO_CACHE,
    SSE,
    Disconnected,
    Headers,
    Scope,
    read_body,
    send_json,
    send_simple,
    wait_disconnect,
)
from .config import SimulatorConfig
from .faults import PROVIDERS, Fault, FaultBook, error_response, parse_fault_name
from .providers import Call, StreamPlan, WireError, parse_call, render
from .ratelimits import RateLimitHeaders
from .reply import Directives, parse_directives, reply_for
from .tools import json_tokens, plan_calls

__all__ = ["SimulatorApp", "create_app"]


_POST_ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/responses": "responses",
    "/v1/messages": "messages",
}
_GEMINI_RE = re.compile(r"^/(?:v1beta|v1alpha|v1)/models/([^/:]+):(generateContent|streamGenerateContent)$")
_GEMINI_EMBED_RE = re.compile(r"^/(?:v1beta|v1alpha|v1)/models/([^/:]+):(embedContent|batchEmbedContents)$")
_PROVIDER_OF = {"chat": "openai", "responses": "openai", "messages": "anthropic", "gemini": "gemini"}


class SimulatorApp:
    """The ASGI callable. Reach its state from the same process through these attributes:

    ``config`` (:class:`SimulatorConfig`, changed in place), ``records`` (deque of recorded requests),
    ``faults`` (:class:`simulator.faults.FaultBook`), ``requests_total``, ``open_streams`` and
    ``open_streams_peak`` (the most streams open at once since start or reset); ``state`` groups them.
    """

    def __init__(self, config: SimulatorConfig | None = None) -> None:
        self.config = config if config is not None else SimulatorConfig()
        self.initial_config = self.config.copy()
        self.records: deque[dict[str, Any]] = deque(maxlen=self.config.record_limit)
        self.faults = FaultBook()
        self.started_at = time.time()
        self.requests_total = 0
        self.open_streams = 0
        self.open_streams_peak = 0
        self._rid_prefix = secrets.token_hex(4)
        self._rid_counter = itertools.count(1)
        self._limits = RateLimitHeaders(PROVIDERS)

    @property
    def state(self) -> SimpleNamespace:
        return SimpleNamespace(config=self.config, records=self.records, faults=self.faults, app=self)

    # ------------------------------------------------------------------ ASGI entry point

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind != "http":
            if kind == "lifespan":
                await self._lifespan(receive, send)
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            if method == "POST":
                api = _POST_ROUTES.get(path)
                if api is not None:
                    await self._provider(scope, receive, send, api, None, None)
                    return
                embed = _GEMINI_EMBED_RE.match(path)
                if path == "/v1/embeddings" or embed is not None:
                    api, model = (embed.group(2), embed.group(1)) if embed else ("embeddings", None)
                    await self._embeddings(scope, receive, send, api, model)
                    return
                match = _GEMINI_RE.match(path)
                if match is not None:
                    await self._provider(
                        scope,
                        receive,
                        send,
                        "gemini",
                        match.group(1),
                        match.group(2) == "streamGenerateContent",
                    )
                    return
            if path.startswith("/_sim/"):
                await self._control(scope, receive, send, path[6:], method)
                return
            if method == "GET" and path in ("/v1/models", "/v1beta/models"):
                await send_json(send, 200, models.listing(scope, path, int(self.started_at)))
                return
            await send_json(send, 404, {"error": {"message": f"no route for {method} {path}", "code": 404}})
        except Disconnected:
            return

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ provider endpoints

    def _next_id(self) -> str:
        return f"{self._rid_prefix}{next(self._rid_counter):08x}"

    async def _provider(
        self, scope: Scope, receive: Any, send: Any, api: str, model: str | None, stream: bool | None
    ) -> None:
        raw = await read_body(receive)
        provider = _PROVIDER_OF[api]
        cfg = self.config
        rid = self._next_id()
        self.requests_total += 1
        try:
            body = orjson.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise ValueError("the body must be a JSON object")
        except ValueError:
            record = self._record(scope, provider, api, raw.decode("utf-8", "replace"), model, bool(stream))
            if record is not None:
                record["fault"] = "invalid_json"
            status, payload, extra = error_response(
                provider, 400, api_key=_api_key(scope, provider), request_id="req_" + rid
            )
            await send_simple(send, status, payload, self._headers(provider, rid, JSON, 0) + extra)
            return
        try:
            call = parse_call(api, body, model, stream)
        except WireError as exc:
            self._record(scope, provider, api, body, model, bool(stream))
            status, payload, extra = error_response(
                provider, 400, api_key=_api_key(scope, provider), request_id="req_" + rid, message=str(exc)
            )
            await send_simple(send, status, payload, self._headers(provider, rid, JSON, 0) + extra)
            return
        if api == "gemini" and call.stream and b"alt=sse" not in scope.get("query_string", b""):
            api = "gemini-json-stream"
        record = (
            self._record(scope, provider, call.api, body, call.model, call.stream) if cfg.record else None
        )
        directives = parse_directives(call.last_user)
        fault = self._fault_for(call, directives)
        if record is not None and fault is not None:
            record["fault"] = fault.name or (str(fault.status) if fault.kind == "status" else fault.kind)

        slow = (
            directives.slow_first_byte_ms
            if directives.slow_first_byte_ms is not None
            else cfg.slow_first_byte_ms
        )
        if slow > 0:
            await asyncio.sleep(slow / 1000)

        n = directives.tokens if directives.tokens is not None else cfg.reply_tokens
        if fault is not None:
            if fault.kind == "overloaded_in_stream" and provider == "anthropic" and not call.stream:
                fault = Fault("status", 529, fault.retry_after, name=fault.name)
            if fault.kind == "status":
                await self._send_fault(send, scope, provider, rid, fault, call.prompt_tokens)
                return
            if fault.kind == "hang":
                await wait_disconnect(receive)
                return

        agent = call.agent
        call.planned = plan_calls(
            list(agent.tools), agent.tool_choice, answered=agent.answered, calls=directives.calls,
            parallel=agent.parallel,
        )  # fmt: skip
        if call.planned:
            tokens: list[str] = []
        elif agent.schema is not None:
            tokens = json_tokens(agent.schema, call.prompt, n)
        else:
            tokens = reply_for(call.prompt, n)
        truncated = call.max_tokens is not None and call.max_tokens < n
        if truncated:
            tokens = tokens[: max(0, call.max_tokens or 0)]
        ttft = (directives.ttft_ms if directives.ttft_ms is not None else cfg.ttft_ms) / 1000
        tps = directives.tps if directives.tps is not None else cfg.tokens_per_second
        interval = 1.0 / tps if tps > 0 else 0.0
        out = render(call, tokens, truncated, rid, int(time.time()))

        if api == "gemini-json-stream" and not isinstance(out, bytes):
            # streamGenerateContent without alt=sse: one JSON array of the chunks, sent as one body
            out = b"[" + b",\r\n".join(e[6:-2] for e in [*out.events, out.epilogue] if e) + b"]"
        if isinstance(out, bytes):
            headers = self._headers(provider, rid, JSON, call.prompt_tokens + n)
            delay = ttft + max(0, len(tokens) - 1) * interval
            if delay > 0:
                await asyncio.sleep(delay)
            if fault is not None and fault.kind in ("cut", "overloaded_in_stream"):
                await self._cut_plain(send, out, headers)
                return
            await send_simple(send, 200, out, headers)
            return
        headers = self._headers(provider, rid, SSE, call.prompt_tokens + n)
        headers.append(NO_CACHE)
        await self._stream(send, headers, out, ttft, interval, fault)

    async def _embeddings(self, scope: Scope, receive: Any, send: Any, api: str, model: str | None) -> None:
        """An embeddings request: read, pick a fault, reply in one body (embeddings are never streamed)."""
        raw = await read_body(receive)
        provider = "openai" if model is None else "gemini"
        rid = self._next_id()
        self.requests_total += 1
        body: Any = raw.decode("utf-8", "replace")
        try:
            body = orjson.loads(raw) if raw else {}
            if not isinstance(body, dict):
                raise WireError("the body must be a JSON object")
            call = embeddings.read_openai(body) if model is None else embeddings.read_gemini(api, body, model)
        except (ValueError, WireError) as exc:
            self._record(scope, provider, api, body, model, False)
            message = str(exc) if isinstance(exc, WireError) else None
            status, payload, extra = error_response(
                provider, 400, api_key=_api_key(scope, provider), request_id="req_" + rid, message=message
            )
            await send_simple(send, status, payload, self._headers(provider, rid, JSON, 0) + extra)
            return
        record = self._record(scope, provider, api, body, call.model, False)
        chat_view = call.as_call()
        directives = parse_directives(chat_view.last_user)
        fault = self._fault_for(chat_view, directives)
        if record is not None and fault is not None:
            record["fault"] = fault.name or (str(fault.status) if fault.kind == "status" else fault.kind)
        slow = directives.slow_first_byte_ms
        slow = self.config.slow_first_byte_ms if slow is None else slow
        if slow > 0:
            await asyncio.sleep(slow / 1000)
        if fault is not None and fault.kind == "status":
            await self._send_fault(send, scope, provider, rid, fault, call.tokens)
            return
        if fault is not None and fault.kind == "hang":
            await wait_disconnect(receive)
            return
        out = embeddings.render(call)
        headers = self._headers(provider, rid, JSON, call.tokens)
        if fault is not None and fault.kind in ("cut", "overloaded_in_stream"):
            await self._cut_plain(send, out, headers)
            return
        await send_simple(send, 200, out, headers)

    async def _cut_plain(self, send: Any, body: bytes, headers: Headers) -> None:
        """Announce the whole body, send half of it, then drop the connection."""
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body[: len(body) // 2], "more_body": True})
        # returning without the final body message makes the server close the connection

    async def _stream(
        self, send: Any, headers: Headers, plan: StreamPlan, ttft: float, interval: float, fault: Fault | None
    ) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        self.open_streams += 1
        if self.open_streams > self.open_streams_peak:
            self.open_streams_peak = self.open_streams
        try:
            if ttft > 0:
                await asyncio.sleep(ttft)
            chunks = plan.events
            ending = plan.epilogue
            complete = True
            if fault is not None and fault.kind in ("cut", "overloaded_in_stream"):
                after = fault.after if fault.after is not None else len(chunks) // 2
                chunks = chunks[: min(after, len(chunks))]
                if fault.kind == "overloaded_in_stream" and plan.error_event is not None:
                    ending = plan.error_event
                else:
                    ending = b""
                    complete = False
            if interval <= 0 or len(chunks) <= 1:
                body = plan.preamble + b"".join(chunks) + ending
                await send({"type": "http.response.body", "body": body, "more_body": not complete})
                return
            loop = asyncio.get_running_loop()
            await send({"type": "http.response.body", "body": plan.preamble + chunks[0], "more_body": True})
            start = loop.time()
            for i in range(1, len(chunks)):
                delay = start + i * interval - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                await send({"type": "http.response.body", "body": chunks[i], "more_body": True})
            if complete:
                await send({"type": "http.response.body", "body": ending, "more_body": False})
            # an incomplete response makes the server close the connection mid-body (a "cut")
        finally:
            self.open_streams -= 1

    def _fault_for(self, call: Call, d: Directives) -> Fault | None:
        if d.fault is not None:
            try:
                kind, status = parse_fault_name(d.fault)
            except ValueError:
                kind, status = "", None
            if (
                kind
                and (d.provider is None or d.provider == call.provider)
                and (d.model is None or d.model == call.model)
                and (d.times is None or self.faults.seen(call.last_user) <= d.times)
            ):
                return Fault(kind, status, d.retry_after, d.after, name=d.fault)
        return self.faults.take(call.provider, call.model)

    async def _send_fault(
        self, send: Any, scope: Scope, provider: str, rid: str, fault: Fault, tokens: int
    ) -> None:
        """A fault of ``kind`` status, in the provider's own error shape with its rate-limit headers."""
        assert fault.status is not None
        status, payload, extra = error_response(
            provider,
            fault.status,
            api_key=_api_key(scope, provider),
            request_id="req_" + rid,
            retry_after=fault.retry_after,
        )
        headers = self._headers(provider, rid, JSON, tokens, limited=status == 429)
        await send_simple(send, status, payload, headers + extra)

    def _headers(
        self, provider: str, rid: str, content_type: bytes, tokens: int, limited: bool = False
    ) -> Headers:
        return self._limits.headers(self.config, provider, rid, content_type, tokens, limited)

    def _record(
        self, scope: Scope, provider: str, api: str, body: Any, model: str | None, stream: bool
    ) -> dict[str, Any] | None:
        if not self.config.record:
            return None
        headers: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        record = {
            "provider": provider,
            "api": api,
            "path": scope["path"],
            "method": scope["method"],
            "query": scope.get("query_string", b"").decode("latin-1"),
            "headers": headers,
            "body": body,
            "model": model,
            "stream": stream,
            "ts": time.time(),
            "fault": None,
        }
        if self.records.maxlen != self.config.record_limit:
            self.records = deque(self.records, maxlen=self.config.record_limit)
        self.records.append(record)
        return record

    # ------------------------------------------------------------------ control endpoints (/_sim/...)

    async def _control(self, scope: Scope, receive: Any, send: Any, name: str, method: str) -> None:
        raw = await read_body(receive)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        try:
            payload: Any = orjson.loads(raw) if raw.strip() else None
        except orjson.JSONDecodeError:
            await send_json(send, 400, {"error": "invalid JSON"})
            return
        try:
            result = self._control_action(name, method, payload, query)
        except ValueError as exc:
            await send_json(send, 400, {"error": str(exc)})
            return
        if result is None:
            await send_json(send, 404, {"error": f"no control endpoint {method} /_sim/{name}"})
            return
        await send_json(send, 200, result)

    def _control_action(self, name: str, method: str, payload: Any, query: dict[str, list[str]]) -> Any:
        if name == "health" and method == "GET":
            return self.health()
        if name == "requests":
            if method == "GET":
                provider = query.get("provider", [None])[0]
                limit = query.get("limit", [None])[0]
                items = [r for r in self.records if provider is None or r["provider"] == provider]
                if limit is not None:
                    count = int(limit)
                    items = items[-count:] if count > 0 else []
                return items
            if method == "DELETE":
                cleared = len(self.records)
                self.records.clear()
                return {"cleared": cleared}
        if name == "config":
            if method == "GET":
                return self.config.to_dict()
            if method in ("POST", "PUT", "PATCH"):
                if not isinstance(payload, dict):
                    raise ValueError("send a JSON object of knobs")
                self.config.update(**payload)
                return self.config.to_dict()
        if name == "faults":
            if method == "GET":
                return self.faults.to_dict()
            if method == "POST":
                specs = payload if isinstance(payload, list) else [payload]
                faults = [Fault.from_spec(spec) for spec in specs]  # all valid, or none added
                for fault in faults:
                    self.faults.add(fault)
                return self.faults.to_dict()
            if method == "DELETE":
                self.faults.clear()
                return self.faults.to_dict()
        if name == "reset" and method == "POST":
            self.reset()
            return {"reset": True}
        return None

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started_at, 3),
            "requests_total": self.requests_total,
            "open_streams": self.open_streams,
            "open_streams_peak": self.open_streams_peak,
            "recorded": len(self.records),
            "scheduled_faults": len(self.faults.scheduled),
        }

    def reset(self) -> None:
        """Forget requests, faults and counters; restore the configuration given at start."""
        self.records.clear()
        self.faults.clear()
        self.open_streams_peak = self.open_streams
        self.config.update(**self.initial_config.to_dict())


def _api_key(scope: Scope, provider: str) -> str:
    """The API key a request carried (to quote it back in 401 errors, as OpenAI does)."""
    wanted = {
        "openai": (b"authorization",),
        "anthropic": (b"x-api-key", b"authorization"),
        "gemini": (b"x-goog-api-key",),
    }[provider]
    for name, value in scope["headers"]:
        if name in wanted:
            text = value.decode("latin-1")
            return text[7:] if text.lower().startswith("bearer ") else text
    if provider == "gemini":
        key = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("key")
        if key:
            return key[0]
    return ""


def create_app(config: SimulatorConfig | None = None) -> SimulatorApp:
    """Build the simulator's ASGI app (see :class:`SimulatorApp` for its state)."""
    return SimulatorApp(config)
