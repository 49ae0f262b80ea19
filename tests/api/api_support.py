"""Helpers the façade tests share: the canary key, JSON-RPC and chat bodies, SSE reading."""

from __future__ import annotations

import uuid
from typing import Any

import httpx2
import orjson

#: Provider keys planted in the settings; the openai one is a canary that must never leave the service.
CANARY = f"sk-canary-{uuid.uuid4().hex}"
KEYS = {
    "OPENAI_API_KEY": CANARY,
    "ANTHROPIC_API_KEY": "sk-ant-test-api-000000000000000000",
    "GEMINI_API_KEY": "AIzaTestApi00000000000000000000000000000",
}


def rpc(method: str, params: Any = None, id_: Any = 1) -> dict[str, Any]:
    call: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": id_}
    if params is not None:
        call["params"] = params
    return call


def chat(content: str, model: str = "gpt-6.1-terra", **fields: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": content}], **fields}


def sse_events(text: str) -> list[dict[str, Any]]:
    """The events of a whole SSE body: ``{"id": ..., "data": parsed JSON}`` each (comments dropped)."""
    out: list[dict[str, Any]] = []
    for block in text.split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            if line.startswith("id: "):
                event["id"] = line[4:]
            elif line.startswith("data: "):
                event["data"] = orjson.loads(line[6:]) if line[6:] != "[DONE]" else "[DONE]"
        if "data" in event:
            out.append(event)
    return out


async def read_events(response: httpx2.Response, count: int | None = None) -> list[httpx2.ServerSentEvent]:
    """Read SSE events from a live response (all of them, or the next ``count``).

    The parser is kept on the response, so that reading stops without closing the connection and a
    later call goes on where this one stopped.
    """
    iterator = response.extensions.get("test_sse")
    if iterator is None:
        iterator = response.extensions["test_sse"] = aiter(httpx2.EventSource(response))
    events: list[httpx2.ServerSentEvent] = []
    while count is None or len(events) < count:
        try:
            events.append(await anext(iterator))
        except StopAsyncIteration:
            break
    return events
