"""A lean Server-Sent Events response: ready-made frames out, pings when idle, the client's exit noticed.

Frames are bytes built by the caller (one ``orjson.dumps`` per event, no per-event objects). While the
stream runs, one task watches ``receive()`` for ``http.disconnect`` so that a client who leaves is
noticed at once (not at the next write), and one task sends a ``: ping`` comment whenever the stream has
been idle for ``ping_interval`` seconds, so that proxies and clients keep an idle stream open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable

import structlog
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

log = structlog.get_logger("llmrelay.api")

#: Idle time after which a ``: ping`` comment is sent (module attribute: tests shorten it).
PING_SECONDS = 15.0
PING = b": ping\n\n"

HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


class EventStreamResponse(Response):
    """An ASGI response that sends ``frames`` as a ``text/event-stream``.

    ``on_close(disconnected)`` is called exactly once when the response ends, with ``True`` when the
    client went away before the frames ran out.
    """

    def __init__(
        self,
        frames: AsyncGenerator[bytes, None],
        *,
        headers: list[tuple[bytes, bytes]] | None = None,
        on_close: Callable[[bool], None] | None = None,
        ping_interval: float | None = None,
    ) -> None:
        self.status_code = 200
        self.background = None
        self.frames = frames
        self.stream_headers = HEADERS + (headers or [])
        self.on_close = on_close
        self.ping_interval = PING_SECONDS if ping_interval is None else ping_interval
        self._last_send = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        loop = asyncio.get_running_loop()
        disconnected = False
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.stream_headers})
            self._last_send = loop.time()
            pump = asyncio.ensure_future(self._pump(send))
            watch = asyncio.ensure_future(_until_disconnect(receive))
            ping = asyncio.ensure_future(self._ping(send))
            try:
                await asyncio.wait((pump, watch), return_when=asyncio.FIRST_COMPLETED)
            finally:
                disconnected = not pump.done()
                for task in (pump, watch, ping):
                    task.cancel()
                await asyncio.gather(pump, watch, ping, return_exceptions=True)
                with contextlib.suppress(Exception):
                    await self.frames.aclose()
            if not disconnected:
                with contextlib.suppress(OSError):
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except asyncio.CancelledError:
            disconnected = True
            raise
        finally:
            if self.on_close is not None:
                self.on_close(disconnected)

    async def _pump(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in self.frames:
                await send({"type": "http.response.body", "body": frame, "more_body": True})
                self._last_send = loop.time()
        except (asyncio.CancelledError, OSError):
            raise
        except Exception:
            log.exception("event stream failed")

    async def _ping(self, send: Send) -> None:
        loop = asyncio.get_running_loop()
        interval = self.ping_interval
        while True:
            idle = loop.time() - self._last_send
            if idle >= interval:
                await send({"type": "http.response.body", "body": PING, "more_body": True})
                self._last_send = loop.time()
                idle = 0.0
            await asyncio.sleep(interval - idle)


async def _until_disconnect(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
