"""JSON-RPC 2.0 over one request body: parsing, request-object checks, dispatch, and the error objects.

The protocol knows nothing about HTTP or about our methods: a :class:`Dispatcher` is given a registry
of ``name -> async function(context, params)`` and answers bodies with bodies. Streaming methods are
named to it so that it can refuse them inside a batch; running them is the HTTP layer's job.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

import orjson
import structlog
from pydantic import ValidationError

from llmrelay.shared.errors import LLMRelayError
from llmrelay.shared.models import field_path
from llmrelay.shared.redaction import redact, redact_value

log = structlog.get_logger("llmrelay.api")

PARSE_ERROR: Final = -32700
INVALID_REQUEST: Final = -32600
METHOD_NOT_FOUND: Final = -32601
INVALID_PARAMS: Final = -32602
INTERNAL_ERROR: Final = -32603

Method = Callable[[Any, dict[str, Any]], Awaitable[Any]]
#: Called once per call with (method name, outcome: "ok" or the error code, seconds).
CallObserver = Callable[[str, str, float], None]


class NoId:
    """The id of a notification: the request object had no ``id`` member."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_ID"


NO_ID: Final = NoId()
Id = str | int | float | None


class RpcError(Exception):
    """A protocol-level error (parse error, invalid request, unknown method, invalid params)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.data = code, message, data


@dataclass(slots=True)
class Call:
    """One well-formed request object."""

    method: str
    params: dict[str, Any] | list[Any] | None
    id: Id | NoId = NO_ID

    @property
    def is_notification(self) -> bool:
        return self.id is NO_ID


@dataclass(slots=True)
class Invalid:
    """A request object that is not one: it is answered with -32600 even without an id."""

    id: Id
    message: str


def error_object(code: int, message: str, data: Any = None) -> dict[str, Any]:
    out: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        out["data"] = data
    return out


def error_response(id_: Id, code: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": id_, "error": error_object(code, message, data)}


def service_error(err: LLMRelayError) -> dict[str, Any]:
    """The ``error`` member for one of our own errors; redacted once more on the way out."""
    return error_object(err.code, redact(err.message), redact_value(err.to_dict()))


def error_for(exc: Exception, method: str) -> dict[str, Any]:
    """The ``error`` member for what a method raised; anything unexpected is logged and kept private."""
    if isinstance(exc, RpcError):
        return error_object(exc.code, exc.message, exc.data)
    if isinstance(exc, ValidationError):
        return error_object(INVALID_PARAMS, "Invalid params", validation_details(exc))
    if isinstance(exc, LLMRelayError):
        return service_error(exc)
    log.exception("JSON-RPC method failed", method=method, exc_info=exc)
    return error_object(INTERNAL_ERROR, "Internal error")


def validation_details(exc: ValidationError) -> dict[str, Any]:
    """Pydantic's findings without the values that failed (which may be large, or secret), and ``field``:
    the dotted path of the first one, without pydantic's union branch labels."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    return {"errors": errors, "field": field_path(errors[0]["loc"]) if errors else None}


def parse(body: bytes) -> tuple[bool, list[Call | Invalid]]:
    """The request objects of a body and whether it was a batch. Raises RpcError for the whole body."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise RpcError(PARSE_ERROR, "Parse error: the body is not valid JSON") from None
    if isinstance(payload, list):
        if not payload:
            raise RpcError(INVALID_REQUEST, "Invalid Request: an empty batch")
        return True, [_request_object(item) for item in payload]
    return False, [_request_object(payload)]


def _request_object(item: Any) -> Call | Invalid:
    if not isinstance(item, dict):
        return Invalid(None, "Invalid Request: a request must be a JSON object")
    raw_id = item.get("id", NO_ID)
    if raw_id is not NO_ID and (
        isinstance(raw_id, bool) or not isinstance(raw_id, str | int | float | type(None))
    ):
        return Invalid(None, "Invalid Request: id must be a string, a number or null")
    id_: Id = None if isinstance(raw_id, NoId) else raw_id
    if item.get("jsonrpc") != "2.0":
        return Invalid(id_, 'Invalid Request: "jsonrpc" must be exactly "2.0"')
    method = item.get("method")
    if not isinstance(method, str):
        return Invalid(id_, "Invalid Request: method must be a string")
    params = item.get("params")
    if "params" in item and not isinstance(params, dict | list):
        return Invalid(id_, "Invalid Request: params must be an object or an array")
    return Call(method, params, raw_id)


def encode(response: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    return orjson.dumps(response)


class Dispatcher:
    """Runs calls against a method registry and builds their responses."""

    def __init__(
        self,
        methods: Mapping[str, Method],
        *,
        positional: Mapping[str, tuple[str, ...]] | None = None,
        streaming: Collection[str] = (),
        observer: CallObserver | None = None,
    ) -> None:
        self.methods = methods
        self.positional = positional or {}
        self.streaming = frozenset(streaming)
        self.observer = observer

    def params_of(self, call: Call) -> dict[str, Any]:
        """Named params as a dict; an array is mapped to the method's declared positional names."""
        params = call.params
        if params is None:
            return {}
        if isinstance(params, dict):
            return params
        if not params:
            return {}
        names = self.positional.get(call.method)
        if names is None:
            raise RpcError(
                INVALID_PARAMS,
                f"Invalid params: {call.method} takes named parameters (a JSON object)",
                {"errors": [{"loc": [], "msg": "expected an object", "type": "named_params"}]},
            )
        if len(params) > len(names):
            raise RpcError(
                INVALID_PARAMS,
                f"Invalid params: {call.method} takes at most {len(names)} positional parameter(s)",
                {"errors": [{"loc": [], "msg": f"expected at most {len(names)} items", "type": "too_long"}]},
            )
        return dict(zip(names, params, strict=False))

    async def invoke(self, call: Call, context: Any) -> Any:
        """The method's result; raises RpcError, LLMRelayError or ValidationError."""
        method = self.methods.get(call.method)
        if method is None:
            raise RpcError(METHOD_NOT_FOUND, f"Method not found: {call.method}")
        return await method(context, self.params_of(call))

    async def respond(
        self, item: Call | Invalid, context: Any, *, in_batch: bool = False
    ) -> dict[str, Any] | None:
        """The response object of one request object, or None for a notification."""
        if isinstance(item, Invalid):
            return error_response(item.id, INVALID_REQUEST, item.message)
        started = time.perf_counter()
        error: dict[str, Any] | None = None
        result: Any = None
        try:
            if in_batch and item.method in self.streaming:
                raise RpcError(
                    INVALID_REQUEST,
                    f"Invalid Request: {item.method} streams its result and cannot be part of a batch;"
                    " send it as a call of its own",
                    {"method": item.method},
                )
            result = await self.invoke(item, context)
        except Exception as exc:
            error = error_for(exc, item.method)
        if self.observer is not None:
            outcome = "ok" if error is None else str(error["code"])
            self.observer(item.method, outcome, time.perf_counter() - started)
        if item.is_notification:
            return None
        id_ = item.id if not isinstance(item.id, NoId) else None
        if error is not None:
            return {"jsonrpc": "2.0", "id": id_, "error": error}
        return {"jsonrpc": "2.0", "id": id_, "result": result}

    async def handle(self, body: bytes, context: Any) -> bytes | None:
        """The response body for a request body, or None when nothing is to be answered."""
        try:
            batch, items = parse(body)
        except RpcError as exc:
            return encode(error_response(None, exc.code, exc.message))
        return await self.answer(batch, items, context)

    async def answer(self, batch: bool, items: list[Call | Invalid], context: Any) -> bytes | None:
        """The response body for parsed request objects (see :func:`parse`), or None."""
        if not batch:
            response = await self.respond(items[0], context)
            return None if response is None else encode(response)
        if len(items) == 1:
            responses = [await self.respond(items[0], context, in_batch=True)]
        else:
            responses = await asyncio.gather(*(self.respond(i, context, in_batch=True) for i in items))
        answered = [r for r in responses if r is not None]
        return encode(answered) if answered else None
