"""Bad input is refused through every interface, with an error naming the field, before any provider call.

Each bad input goes through the producer SDK (``complete``, ``stream``, ``submit``, ``submit_batch``),
JSON-RPC (``llm.complete``, ``llm.stream``, ``llm.submit``, ``llm.batch.submit``) and
``/v1/chat/completions`` (streamed and not), against real Redis, a running worker and the simulator,
which records every request it receives: it must have received none, and no job may be in Redis. A good
request through each interface is the control: the same checks see it arrive.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from api_support import rpc, sse_events
from pydantic import ValidationError

from llmrelay.producer import LLMProducer
from llmrelay.producer.api import create_app
from llmrelay.producer.api.openai_compat import chat_param
from llmrelay.shared import LLMRequest, Settings, keys
from llmrelay.shared.errors import InvalidRequestError
from llmrelay.shared.models import MAX_INLINE_BYTES, field_path
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import ANTHROPIC_MODEL, GEMINI_MODEL, OPENAI_MODEL, poll

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n0000").decode()
PDF = base64.b64encode(b"%PDF-1.4 tiny").decode()
#: Base64 one character past the inline limit (a multiple of 4, so only its size is wrong).
OVERSIZE = "A" * (MAX_INLINE_BYTES + 4)
SCHEMA = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
USER = {"role": "user", "content": "look this up"}


def _tool(parameters: Any) -> dict[str, Any]:
    return {"name": "lookup", "description": "Look a thing up", "parameters": parameters}


def _chat_tool(parameters: Any) -> dict[str, Any]:
    return {"type": "function", "function": _tool(parameters)}


def _image_parts(data: str, media_type: str) -> tuple[list[Any], list[Any]]:
    """The same image as contract parts and as chat parts."""
    text = {"type": "text", "text": "what is this?"}
    return (
        [text, {"type": "image", "data": data, "media_type": media_type}],
        [text, {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}],
    )


@dataclass(frozen=True)
class Bad:
    """One bad input: as an LLMRequest body and as a chat body, and the field each error must name."""

    name: str
    request: dict[str, Any]
    chat: dict[str, Any]
    field: str
    chat_param: str
    model: str = OPENAI_MODEL
    #: Refused by the provider's rules (governance: InvalidRequestError), not by the contract's shape.
    governance: bool = False
    settings: dict[str, Any] = field(default_factory=dict)


def _bad_image(name: str, data: str, media_type: str, where: str, **extra: Any) -> Bad:
    parts, chat_parts = _image_parts(data, media_type)
    return Bad(
        name,
        {"messages": [{"role": "user", "content": parts}]},
        {"messages": [{"role": "user", "content": chat_parts}]},
        f"messages.0.content.1.{where}",
        "messages.0.content.1.image_url.url",
        **extra,
    )


BAD = [
    Bad(
        "tool_parameters_not_an_object_schema",
        {"messages": [USER], "tools": [_tool({"type": "string"})]},
        {"messages": [USER], "tools": [_chat_tool({"type": "string"})]},
        "tools.0.parameters",
        "tools.0.function.parameters",
    ),
    Bad(
        "tool_parameters_not_a_schema_at_all",
        {"messages": [USER], "tools": [_tool(["q"])]},
        {"messages": [USER], "tools": [_chat_tool(["q"])]},
        "tools.0.parameters",
        "tools.0.function.parameters",
    ),
    Bad(
        "tool_parameters_an_invalid_schema",
        {"messages": [USER], "tools": [_tool({"type": "object", "properties": {"q": {"type": "text"}}})]},
        {
            "messages": [USER],
            "tools": [_chat_tool({"type": "object", "properties": {"q": {"type": "text"}}})],
        },
        "tools.0.parameters",
        "tools.0.function.parameters",
    ),
    Bad(
        "tool_choice_naming_an_undeclared_tool",
        {"messages": [USER], "tools": [_tool(SCHEMA)], "tool_choice": {"name": "search"}},
        {
            "messages": [USER],
            "tools": [_chat_tool(SCHEMA)],
            "tool_choice": {"type": "function", "function": {"name": "search"}},
        },
        "tool_choice",
        "tool_choice",
    ),
    Bad(
        "tool_result_with_no_matching_call",
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_nobody", "content": "42"}]},
        {"messages": [USER, {"role": "tool", "tool_call_id": "call_nobody", "content": "42"}]},
        "messages.1.tool_call_id",
        "messages.1.tool_call_id",
    ),
    Bad(
        "response_schema_invalid",
        {
            "messages": [USER],
            "response_format": {"type": "json_schema", "name": "r", "schema": {"type": "text"}},
        },
        {
            "messages": [USER],
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "r", "schema": {"type": "text"}},
            },
        },
        "response_format.schema",
        "response_format.json_schema.schema",
    ),
    _bad_image("image_of_an_unsupported_media_type", PNG, "image/bmp", "media_type"),
    _bad_image(
        "image_over_the_size_limit",
        OVERSIZE,
        "image/png",
        "data",
        settings={"LLMRELAY_MAX_BODY_BYTES": 64 << 20},
    ),
    Bad(
        "document_of_an_unsupported_media_type",
        {
            "messages": [
                {"role": "user", "content": [{"type": "document", "data": PDF, "media_type": "text/plain"}]}
            ]
        },
        {
            "messages": [
                {
                    "role": "user",
                    "content": [{"type": "file", "file": {"file_data": f"data:text/plain;base64,{PDF}"}}],
                }
            ]
        },
        "messages.0.content.0.media_type",
        "messages.0.content.0.file.file_data",
    ),
    Bad(
        "temperature_over_anthropics_range",
        {"messages": [USER], "temperature": 1.5},
        {"messages": [USER], "temperature": 1.5},
        "temperature",
        "temperature",
        model=ANTHROPIC_MODEL,
        governance=True,
    ),
    Bad(
        "temperature_over_anthropics_range_on_a_fallback",
        {"messages": [USER], "temperature": 1.5, "fallback_models": [ANTHROPIC_MODEL]},
        {"messages": [USER], "temperature": 1.5, "fallback_models": [ANTHROPIC_MODEL]},
        "temperature",
        "temperature",
        governance=True,
    ),
    Bad(
        "seed_which_anthropic_has_no_equivalent_for",
        {"messages": [USER], "seed": 7},
        {"messages": [USER], "seed": 7},
        "seed",
        "seed",
        model=ANTHROPIC_MODEL,
        governance=True,
    ),
    Bad(
        "json_object_which_anthropic_has_no_form_for",
        {"messages": [USER], "response_format": {"type": "json_object"}},
        {"messages": [USER], "response_format": {"type": "json_object"}},
        "response_format",
        "response_format",
        model=ANTHROPIC_MODEL,
        governance=True,
    ),
    Bad(
        "parallel_tool_calls_off_which_gemini_cannot_do",
        {"messages": [USER], "tools": [_tool(SCHEMA)], "parallel_tool_calls": False},
        {"messages": [USER], "tools": [_chat_tool(SCHEMA)], "parallel_tool_calls": False},
        "parallel_tool_calls",
        "parallel_tool_calls",
        model=GEMINI_MODEL,
        governance=True,
    ),
    Bad(
        "a_named_turn_which_anthropic_has_no_form_for",
        {"messages": [{**USER, "name": "alice"}]},
        {"messages": [{**USER, "name": "alice"}]},
        "messages.0.name",
        "messages.0.name",
        model=ANTHROPIC_MODEL,
        governance=True,
    ),
    Bad(
        "a_named_turn_which_gemini_has_no_form_for",
        {"messages": [{"role": "system", "content": "be brief"}, {**USER, "name": "alice"}]},
        {"messages": [{"role": "system", "content": "be brief"}, {**USER, "name": "alice"}]},
        "messages.1.name",
        "messages.1.name",
        model=GEMINI_MODEL,
        governance=True,
    ),
    Bad(
        "temperature_over_openais_range",
        {"messages": [USER], "temperature": 2.5},
        {"messages": [USER], "temperature": 2.5},
        "temperature",
        "temperature",
    ),
    Bad(
        "temperature_over_geminis_range",
        {"messages": [USER], "temperature": 2.5},
        {"messages": [USER], "temperature": 2.5},
        "temperature",
        "temperature",
        model=GEMINI_MODEL,
    ),
    Bad(
        "top_p_over_the_range",
        {"messages": [USER], "top_p": 1.5},
        {"messages": [USER], "top_p": 1.5},
        "top_p",
        "top_p",
        model=ANTHROPIC_MODEL,
    ),
    Bad(
        "negative_temperature",
        {"messages": [USER], "temperature": -0.1},
        {"messages": [USER], "temperature": -0.1},
        "temperature",
        "temperature",
        model=GEMINI_MODEL,
    ),
]

GOOD = Bad(
    "good",
    {"messages": [USER], "tools": [_tool(SCHEMA)], "tool_choice": {"name": "lookup"}},
    {
        "messages": [USER],
        "tools": [_chat_tool(SCHEMA)],
        "tool_choice": {"type": "function", "function": {"name": "lookup"}},
    },
    "",
    "",
)


@dataclass
class Stack:
    producer: LLMProducer
    client: httpx2.AsyncClient


@dataclass(frozen=True)
class Refusal:
    """What an interface answered: the field it named, and its error code (HTTP status or JSON-RPC code)."""

    field: str | None
    code: int | str


async def _sdk(stack: Stack, body: dict[str, Any], how: str) -> Refusal | None:
    try:
        request = LLMRequest.model_validate(body)
        if how == "complete":
            await stack.producer.complete(request)
        elif how == "stream":
            async for _text in stack.producer.stream(request):
                pass
        elif how == "submit":
            await stack.producer.result(await stack.producer.submit(request), timeout=30)
        else:
            await stack.producer.submit_batch([request])
    except InvalidRequestError as err:
        return Refusal(err.data.get("field"), err.code)
    except ValidationError as err:
        return Refusal(field_path(err.errors()[0]["loc"]), "validation")
    return None


async def _jsonrpc(stack: Stack, body: dict[str, Any], method: str) -> Refusal | None:
    params: dict[str, Any] = {"requests": [body]} if method == "llm.batch.submit" else body
    response = await stack.client.post("/jsonrpc", json=rpc(method, params))
    if method == "llm.stream":
        # A stream that is refused is a stream of one error frame.
        frames = [e["data"] for e in sse_events(response.text)]
        error = next((f["error"] for f in frames if "error" in f), None)
    else:
        error = response.json().get("error")
    if error is None and method == "llm.submit":
        request_id = response.json()["result"]["request_id"]
        error = (
            (await stack.client.post("/jsonrpc", json=rpc("llm.result", {"request_id": request_id})))
            .json()
            .get("error")
        )
    if error is None:
        return None
    # -32602 carries pydantic's findings and their ``field``; a service error carries its own error's data.
    data = error.get("data", {})
    found = data.get("field") if error["code"] == -32602 else data.get("data", {}).get("field")
    if method == "llm.batch.submit" and error["code"] == -32602:
        assert found.startswith("requests.0."), found
        found = found.removeprefix("requests.0.")
    return Refusal(found, error["code"])


async def _chat(stack: Stack, body: dict[str, Any], stream: bool) -> Refusal | None:
    response = await stack.client.post("/v1/chat/completions", json={**body, "stream": stream})
    if response.status_code == 200:
        return None
    return Refusal(response.json()["error"]["param"], response.status_code)


Interface = Callable[[Stack, Bad], Awaitable[Refusal | None]]
INTERFACES: dict[str, Interface] = {
    "sdk.complete": lambda s, b: _sdk(s, {"model": b.model, **b.request}, "complete"),
    "sdk.stream": lambda s, b: _sdk(s, {"model": b.model, **b.request}, "stream"),
    "sdk.submit": lambda s, b: _sdk(s, {"model": b.model, **b.request}, "submit"),
    "sdk.submit_batch": lambda s, b: _sdk(s, {"model": b.model, **b.request}, "batch"),
    "llm.complete": lambda s, b: _jsonrpc(s, {"model": b.model, **b.request}, "llm.complete"),
    "llm.stream": lambda s, b: _jsonrpc(s, {"model": b.model, **b.request}, "llm.stream"),
    "llm.submit": lambda s, b: _jsonrpc(s, {"model": b.model, **b.request}, "llm.submit"),
    "llm.batch.submit": lambda s, b: _jsonrpc(s, {"model": b.model, **b.request}, "llm.batch.submit"),
    "/v1/chat/completions": lambda s, b: _chat(s, {"model": b.model, **b.chat}, False),
    "/v1/chat/completions stream": lambda s, b: _chat(s, {"model": b.model, **b.chat}, True),
}


def _expected(bad: Bad, interface: str) -> Refusal:
    if interface.startswith("/v1/"):
        return Refusal(bad.chat_param, 400)
    if bad.governance:
        return Refusal(bad.field, InvalidRequestError.code)
    return Refusal(bad.field, "validation" if interface.startswith("sdk.") else -32602)


async def _jobs_in_redis(producer: LLMProducer) -> list[bytes]:
    found = [key async for key in producer.redis.scan_iter(match="*:req:*")]
    for provider in ("openai", "anthropic", "gemini"):
        for lane in keys.LANES:
            if await producer.redis.xlen(keys.work_stream(provider, lane)):
                found.append(keys.work_stream(provider, lane).encode())
    return found


@pytest.fixture
async def stack_for(make_settings: Callable[..., Settings]) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """Start a worker, a producer and the façade (in-process) on settings with these overrides."""
    opened: list[tuple[Worker, LLMProducer, httpx2.AsyncClient]] = []

    async def start(**overrides: Any) -> Stack:
        settings = make_settings(**overrides)
        worker = Worker(settings, concurrency=8)
        await worker.start()
        producer = LLMProducer(settings)
        await producer.start()
        app = create_app(settings, producer=producer)
        client = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://facade", timeout=60
        )
        opened.append((worker, producer, client))
        return Stack(producer, client)

    yield start
    for worker, producer, client in opened:
        await client.aclose()
        await producer.aclose()
        await worker.stop(grace=2)


@pytest.mark.parametrize("interface", list(INTERFACES))
@pytest.mark.parametrize("bad", BAD, ids=[b.name for b in BAD])
async def test_bad_input_is_refused_naming_the_field_before_any_provider_call(
    bad: Bad, interface: str, stack_for: Callable[..., Awaitable[Stack]], sim: SimulatorServer
) -> None:
    stack = await stack_for(**bad.settings)
    refusal = await INTERFACES[interface](stack, bad)
    assert refusal == _expected(bad, interface)
    assert sim.requests() == []
    assert await _jobs_in_redis(stack.producer) == []


@pytest.mark.parametrize("interface", list(INTERFACES))
async def test_a_good_request_through_the_same_interface_reaches_the_provider(
    interface: str, stack_for: Callable[..., Awaitable[Stack]], sim: SimulatorServer
) -> None:
    """The control: what the refusal tests check for would have seen a request that got through."""
    stack = await stack_for()
    assert await INTERFACES[interface](stack, GOOD) is None
    received = await poll(lambda: sim.requests(), timeout=30)
    assert len(received) == 1
    assert await _jobs_in_redis(stack.producer) != []


@pytest.mark.parametrize(
    ("loc", "param"),
    [
        ((), None),
        (("temperature",), "temperature"),
        (("tools", 0, "parameters"), "tools.0.function.parameters"),
        (("tool_choice", "NamedToolChoice", "name"), "tool_choice"),
        (("reasoning", "effort"), "reasoning_effort"),
        (("response_format", "json_schema", "schema"), "response_format.json_schema.schema"),
        (("response_format",), "response_format"),
        (("messages", 1, "tool_calls", 0, "arguments"), "messages.1.tool_calls.0.function.arguments"),
        (("messages", 0, "content", "parts", 2, "image", "data"), "messages.0.content.2.image_url.url"),
        (("messages", 0, "content", "parts", 2, "image", "detail"), "messages.0.content.2.image_url.detail"),
        (("messages", 0, "content", "parts", 1, "document", "data"), "messages.0.content.1.file.file_data"),
        (("messages", 0, "content", "parts", 0, "text", "text"), "messages.0.content.0.text"),
        (("messages", 0, "content", "text"), "messages.0.content"),
    ],
)  # fmt: skip
def test_a_contract_path_is_reported_as_the_chat_parameter_sent(
    loc: tuple[Any, ...], param: str | None
) -> None:
    assert chat_param(loc) == param
