"""The JSON-RPC client of the commands that talk to a running façade (`complete`, `stream`, `batch`)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx2

DEFAULT_URL = "http://127.0.0.1:8000"

_ids = itertools.count(1)


class ClientError(Exception):
    """A failure worth one clear line to the user."""

    def __init__(
        self, message: str, *, code: int | None = None, data: Any = None, http_status: int | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.data = data
        self.http_status = http_status


@dataclass
class CallOptions:
    url: str = DEFAULT_URL
    token: str | None = None
    timeout: float = 120.0


def build_params(
    prompt: str,
    *,
    model: str | None = None,
    tier: str | None = None,
    system: str | None = None,
    max_tokens: int | None = None,
    temperature: float | None = None,
) -> dict[str, Any]:
    """The `LLMRequest` sent as the call's params: only what the user gave."""
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": prompt})
    params: dict[str, Any] = {"messages": messages}
    for name, value in (
        ("model", model),
        ("tier", tier),
        ("max_tokens", max_tokens),
        ("temperature", temperature),
    ):
        if value is not None:
            params[name] = value
    return params


def _endpoint(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith("/jsonrpc") else f"{url}/jsonrpc"


def _headers(options: CallOptions, *, stream: bool) -> dict[str, str]:
    headers = {"Content-Type": "application/json"}
    if stream:
        headers["Accept"] = "text/event-stream"
    if options.token:
        headers["Authorization"] = f"Bearer {options.token}"
    return headers


def _payload(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": next(_ids), "method": method, "params": params}


def _rpc_error(error: Any) -> ClientError:
    if not isinstance(error, dict):
        return ClientError(f"malformed error from the service: {error!r}")
    code = error.get("code")
    return ClientError(str(error.get("message", "unknown error")), code=code, data=error.get("data"))


def _http_error(response: httpx2.Response, options: CallOptions) -> ClientError:
    if response.status_code == 401:
        hint = "the token was refused" if options.token else "pass --token or set LLMRELAY_API_TOKEN"
        return ClientError(f"the service wants a bearer token (HTTP 401): {hint}")
    if response.status_code == 404:
        return ClientError(f"{response.request.url} is not a llmrelay façade (HTTP 404): check --url")
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        error = _rpc_error(body["error"])  # a JSON-RPC error sent with an HTTP status (e.g. 413)
        error.http_status = response.status_code
        return error
    return ClientError(
        f"HTTP {response.status_code} from {response.request.url}", http_status=response.status_code
    )


def _transport_error(exc: httpx2.HTTPError, options: CallOptions) -> ClientError:
    if isinstance(exc, httpx2.ConnectError):
        return ClientError(
            f"cannot connect to {options.url}: is `llmrelay up` (or `llmrelay api`) running? "
            "Pass --url to reach another address."
        )
    if isinstance(exc, httpx2.TimeoutException):
        return ClientError(f"no answer from {options.url} within {options.timeout:g}s (--timeout)")
    return ClientError(f"request to {options.url} failed: {type(exc).__name__}: {exc}")


def call(method: str, params: dict[str, Any], options: CallOptions) -> dict[str, Any]:
    """One JSON-RPC call whose result is a JSON object: that object; raises ClientError."""
    try:
        with httpx2.Client(timeout=options.timeout) as client:
            response = client.post(
                _endpoint(options.url),
                json=_payload(method, params),
                headers=_headers(options, stream=False),
            )
    except httpx2.HTTPError as exc:
        raise _transport_error(exc, options) from None
    if response.status_code != 200:
        raise _http_error(response, options)
    try:
        body = response.json()
    except ValueError:
        raise ClientError(f"unexpected answer from the service: {response.text[:200]!r}") from None
    if not isinstance(body, dict) or not ("result" in body or "error" in body):
        raise ClientError(f"unexpected answer from the service: {body!r}")
    if "error" in body:
        raise _rpc_error(body["error"])
    result = body["result"]
    if not isinstance(result, dict):
        raise ClientError(f"unexpected result from the service: {result!r}")
    return result


def complete(params: dict[str, Any], options: CallOptions) -> dict[str, Any]:
    """`llm.complete`: the `LLMResponse` as a dict; raises ClientError."""
    return call("llm.complete", params, options)


def iter_sse(lines: Iterator[str]) -> Iterator[dict[str, str]]:
    """Server-sent events as dicts of their fields (``data`` lines joined by newlines)."""
    event: dict[str, str] = {}
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                event["data"] = "\n".join(data)
                yield event
            event, data = {}, []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        else:
            event[name] = value
    if data:
        event["data"] = "\n".join(data)
        yield event


def stream(params: dict[str, Any], options: CallOptions) -> Iterator[str | dict[str, Any]]:
    """`llm.stream`: yields each token's text, then the final `LLMResponse` dict; raises ClientError."""
    try:
        with (
            httpx2.Client(timeout=options.timeout) as client,
            client.stream(
                "POST",
                _endpoint(options.url),
                json=_payload("llm.stream", params),
                headers=_headers(options, stream=True),
            ) as response,
        ):
            if response.status_code != 200:
                response.read()
                raise _http_error(response, options)
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
                body = response.json()
                if isinstance(body, dict) and "error" in body:
                    raise _rpc_error(body["error"])
                raise ClientError(f"expected an event stream, got: {body!r}")
            done = False
            for sse in iter_sse(response.iter_lines()):
                try:
                    message = json.loads(sse["data"])
                except ValueError:
                    raise ClientError(f"malformed event from the service: {sse['data'][:200]!r}") from None
                if "error" in message:
                    raise _rpc_error(message["error"])
                event = message.get("result") or {}
                kind = event.get("type")
                if kind == "token":
                    yield str(event.get("text", ""))
                elif kind == "done":
                    done = True
                    yield dict(event.get("response") or {})
                    break
                elif kind == "error":
                    raise _rpc_error(event.get("error", event))
            if not done:
                raise ClientError("the stream ended before its final event")
    except httpx2.HTTPError as exc:
        raise _transport_error(exc, options) from None


def summary(response: dict[str, Any]) -> str:
    """One line about a finished request: model, tokens, cost, latency."""
    usage = response.get("usage") or {}
    parts = [
        f"{response.get('provider', '?')}/{response.get('model', '?')}",
        f"{usage.get('prompt_tokens', '?')} in + {usage.get('completion_tokens', '?')} out tokens",
    ]
    if response.get("cost_usd") is not None:
        parts.append(f"${float(response['cost_usd']):.6f}")
    if response.get("latency_ms") is not None:
        parts.append(f"{float(response['latency_ms']):.0f} ms")
    if response.get("ttft_ms") is not None:
        parts.append(f"first token {float(response['ttft_ms']):.0f} ms")
    if response.get("finish_reason"):
        parts.append(f"finish: {response['finish_reason']}")
    return " · ".join(parts)
