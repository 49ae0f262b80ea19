"""OpenAI's Responses-API output format, written from our responses and events: the ``response`` object
and the ``response.*`` SSE events of a stream, each with its ``sequence_number``.

The shapes follow the ``openai`` SDK's ``Response`` and ``ResponseStreamEvent`` types and the API
reference (platform.openai.com/docs/api-reference/responses-streaming, read 2026-12-01). A stream is
``response.created``, ``response.in_progress``, then per output item ``response.output_item.added``,
its content (``response.content_part.added``, ``response.output_text.delta``..., ``.output_text.done``,
``.content_part.done`` for a message; ``response.function_call_arguments.delta``..., ``.done`` for a
function call), ``response.output_item.done``; and last ``response.completed`` (``response.incomplete``
when the output was cut short, ``response.failed`` on an error).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson

from llmrelay.shared.events import ToolCallEvent

#: Why an incomplete response stopped, by our finish reason.
INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}
#: A text delta event, the hot path of a stream (one per token): its constant parts are written once.
DELTA = (
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","item_id":%b,'
    b'"output_index":%d,"content_index":0,"delta":%b,"logprobs":[],"sequence_number":%d}\n\n'
)
EXTENSION_KEYS = ("request_id", "provider", "cost_usd", "latency_ms", "ttft_ms", "attempts", "trace_id",
                  "source_agent", "session_id")  # fmt: skip


def response_id(request_id: str) -> str:
    return "resp_" + request_id


def usage_body(usage: dict[str, Any]) -> dict[str, Any]:
    """The Responses API's usage object, with the cached-input and reasoning token details."""
    return {
        "input_tokens": usage.get("prompt_tokens", 0),
        # The API requires cache_write_tokens; the contract does not count cache writes, hence 0.
        "input_tokens_details": {
            "cached_tokens": usage.get("cached_prompt_tokens", 0),
            "cache_write_tokens": 0,
        },
        "output_tokens": usage.get("completion_tokens", 0),
        "output_tokens_details": {"reasoning_tokens": usage.get("reasoning_tokens", 0)},
        "total_tokens": usage.get("total_tokens", 0),
    }


def message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
    return {"id": item_id, "type": "message", "role": "assistant", "status": status, "content": [part]}


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The output of a finished response: its text as a message item (unless it only made calls), then
    one ``function_call`` item per call, its arguments as a JSON string."""
    rid = str(response["request_id"])
    status = "incomplete" if response.get("finish_reason") in INCOMPLETE else "completed"
    calls = response.get("tool_calls") or []
    items = []
    if response["content"] or not calls:
        items.append(message_item("msg_" + rid, response["content"], status))
    for i, call in enumerate(calls):
        arguments = orjson.dumps(call.get("arguments") or {}).decode()
        items.append(call_item(f"fc_{rid}_{i}", call["id"], call["name"], arguments, "completed"))
    return items


def response_body(
    echo: dict[str, Any],
    rid: str,
    model: str,
    created: int,
    *,
    status: str,
    output: list[dict[str, Any]],
    response: dict[str, Any] | None = None,
    error: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A ``response`` object: ``echo`` (what the request set), the state and output, and when it is
    finished the usage and llmrelay's own fields of ``response`` (an LLMResponse dict)."""
    reason = INCOMPLETE.get(response.get("finish_reason", "")) if response is not None else None
    body: dict[str, Any] = {
        "id": response_id(rid),
        "object": "response",
        "created_at": created,
        "status": status,
        "background": False,
        "error": error,
        "incomplete_details": {"reason": reason} if reason else None,
        "model": response["model"] if response is not None else model,
        "output": output,
        "max_tool_calls": None,
        "service_tier": "default",
        "truncation": "disabled",
        "usage": usage_body(response.get("usage") or {}) if response is not None else None,
        **echo,
    }
    if response is not None:
        body["llmrelay"] = {k: response.get(k) for k in EXTENSION_KEYS}
    return body


def finished_body(echo: dict[str, Any], response: dict[str, Any], created: int) -> dict[str, Any]:
    """The ``response`` object of a request that ran to its end."""
    status = "incomplete" if response.get("finish_reason") in INCOMPLETE else "completed"
    rid = str(response["request_id"])
    return response_body(
        echo, rid, response["model"], created, status=status, output=output_items(response), response=response
    )


class ResponseEventWriter:
    """The SSE events of one streamed response, numbered in order; it tracks the open output item so that
    text and calls (in any order) each get their own item, opened and closed as the API does."""

    def __init__(self, echo: dict[str, Any], rid: str, model: str, created: int) -> None:
        self.echo, self.rid, self.model, self.created = echo, rid, model, created
        self.sequence = 0
        self.items: list[dict[str, Any]] = []
        self._open: dict[str, Any] | None = None
        self._calls: dict[int, int] = {}  # call index -> output index

    def _event(self, kind: str, fields: dict[str, Any]) -> bytes:
        data = orjson.dumps({"type": kind, **fields, "sequence_number": self.sequence})
        self.sequence += 1
        return b"event: %b\ndata: %b\n\n" % (kind.encode(), data)

    def _snapshot(self, status: str) -> dict[str, Any]:
        return response_body(self.echo, self.rid, self.model, self.created, status=status, output=[])

    def opening(self) -> list[bytes]:
        return [
            self._event("response.created", {"response": self._snapshot("in_progress")}),
            self._event("response.in_progress", {"response": self._snapshot("in_progress")}),
        ]

    def text(self, text: str) -> Iterator[bytes]:
        item = self._open
        if item is None or item["type"] != "message":
            yield from self._close()
            yield from self._add(message_item(f"msg_{self.rid}" + self._suffix(), "", "in_progress"))
            item = self._open
            assert item is not None
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            yield self._event(
                "response.content_part.added", {**self._where(item), "content_index": 0, "part": part}
            )
            item["content"] = [part]
        if not text:  # an empty reply still gets its message item, with no delta
            return
        item["content"][0]["text"] += text
        yield DELTA % (orjson.dumps(item["id"]), len(self.items) - 1, orjson.dumps(text), self.sequence)
        self.sequence += 1

    def tool_call(self, event: ToolCallEvent) -> Iterator[bytes]:
        index = self._calls.get(event.call_index)
        if index is None:
            yield from self._close()
            item_id = f"fc_{self.rid}_{len(self._calls)}"
            self._calls[event.call_index] = len(self.items)
            yield from self._add(call_item(item_id, event.id or "", event.name or "", "", "in_progress"))
            index = len(self.items) - 1
        item = self.items[index]
        if event.arguments:
            item["arguments"] += event.arguments
            fields = {**self._where(item), "delta": event.arguments}
            yield self._event("response.function_call_arguments.delta", fields)

    def finish(self, response: dict[str, Any]) -> Iterator[bytes]:
        status = "incomplete" if response.get("finish_reason") in INCOMPLETE else "completed"
        if not self.items:
            yield from self.text("")
        yield from self._close(status)
        body = response_body(
            self.echo, self.rid, self.model, self.created, status=status, output=self.items, response=response
        )
        yield self._event(
            "response.incomplete" if status == "incomplete" else "response.completed", {"response": body}
        )

    def failed(self, error: dict[str, Any]) -> bytes:
        body = response_body(
            self.echo, self.rid, self.model, self.created, status="failed", output=self.items, error=error
        )
        return self._event("response.failed", {"response": body})

    def _suffix(self) -> str:
        messages = sum(1 for item in self.items if item["type"] == "message")
        return f"_{messages}" if messages else ""

    def _where(self, item: dict[str, Any]) -> dict[str, Any]:
        return {"item_id": item["id"], "output_index": self.items.index(item)}

    def _add(self, item: dict[str, Any]) -> Iterator[bytes]:
        self.items.append(item)
        self._open = item
        announced = {**item, "content": []} if item["type"] == "message" else item
        yield self._event(
            "response.output_item.added", {"output_index": len(self.items) - 1, "item": announced}
        )

    def _close(self, status: str = "completed") -> Iterator[bytes]:
        item, self._open = self._open, None
        if item is None:
            return
        where = self._where(item)
        if item["type"] == "message":
            part = item["content"][0]
            yield self._event(
                "response.output_text.done",
                {**where, "content_index": 0, "text": part["text"], "logprobs": []},
            )
            yield self._event("response.content_part.done", {**where, "content_index": 0, "part": part})
            item["status"] = status
        else:
            fields = {**where, "name": item["name"], "arguments": item["arguments"]}
            yield self._event("response.function_call_arguments.done", fields)
            item["status"] = "completed"
        yield self._event("response.output_item.done", {"output_index": where["output_index"], "item": item})


__all__ = [
    "ResponseEventWriter",
    "finished_body",
    "output_items",
    "response_body",
    "response_id",
    "usage_body",
]
