"""The few ASGI primitives the simulator's bare application needs: read a body, send a reply."""

from __future__ import annotations

from typing import Any

import orjson

Scope = dict[str, Any]
Headers = list[tuple[bytes, bytes]]

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
NO_CACHE = (b"cache-control", b"no-cache")


class Disconnected(Exception):
    """The client went away before the request was read."""


async def read_body(receive: Any) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    body = message.get("body", b"")
    if not message.get("more_body"):
        return body
    chunks = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def wait_disconnect(receive: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


async def send_simple(send: Any, status: int, body: bytes, headers: Headers) -> None:
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_json(send: Any, status: int, obj: Any) -> None:
    await send_simple(send, status, orjson.dumps(obj), [(b"content-type", JSON)])
