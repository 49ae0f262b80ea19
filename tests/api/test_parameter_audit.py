"""No parameter is dropped: every chat-completions parameter of the installed openai SDK is honoured or
refused by name, and JSON-RPC ``llm.complete`` takes every LLMRequest field and refuses any other by name.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import httpx2
import pytest
from api_support import chat, rpc
from openai.resources.chat.completions import AsyncCompletions, Completions

from llmrelay.producer.api.openai_compat import EXTENSIONS, HONOURED, REFUSED
from llmrelay.shared import LLMRequest
from llmrelay.simulator.server import SimulatorServer
from llmrelay.worker.service import Worker
from tests.support import ANTHROPIC_MODEL, OPENAI_MODEL, OPENAI_REASONING_MODEL, ROOT

#: Options of the SDK's ``create`` that configure the HTTP call and are not sent as body parameters.
SDK_REQUEST_OPTIONS = frozenset({"extra_headers", "extra_query", "extra_body", "timeout"})


def _create_parameters() -> list[str]:
    names: list[str] = []
    for create in (Completions.create, AsyncCompletions.create):
        names += [p for p in inspect.signature(create).parameters if p != "self" and p not in names]
    return names


def test_every_parameter_of_the_sdks_create_is_honoured_or_refused() -> None:
    """A parameter a new openai release adds fails here until it is mapped or refused by name."""
    parameters = _create_parameters()
    assert "messages" in parameters and "tools" in parameters  # the signature was read
    unknown = [
        p for p in parameters if p not in SDK_REQUEST_OPTIONS and p not in HONOURED and p not in REFUSED
    ]
    assert unknown == []
    assert not set(REFUSED) & HONOURED
    # llmrelay's own body fields must not shadow an OpenAI parameter.
    assert not (set(EXTENSIONS) - {"timeout"}) & set(parameters)


#: A value of each refused parameter (and of each honoured one at a value it cannot honour).
REFUSED_VALUES: dict[str, Any] = {
    "audio": {"voice": "alloy", "format": "wav"},
    "prediction": {"type": "content", "content": "x"},
    "web_search_options": {},
    "top_logprobs": 2,
    "verbosity": "low",
    "prompt_cache_key": "k",
    "prompt_cache_options": {"mode": "explicit"},
    "prompt_cache_retention": "24h",
    "moderation": {"input": True},
    "safety_identifier": "u",
    "logit_bias": {"50256": -100},
    "functions": [{"name": "f", "parameters": {"type": "object"}}],
    "function_call": "auto",
    "n": 2,
    "logprobs": True,
    "presence_penalty": 0.5,
    "frequency_penalty": -0.5,
    "modalities": ["text", "audio"],
    "service_tier": "priority",
    "store": True,
}


def test_the_readme_table_gives_every_parameter_its_fate() -> None:
    """The README's table of chat-completions parameters names each one the SDK's ``create`` takes."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index("Every parameter of OpenAI's chat-completions `create`") :]
    rows = [line for line in table[table.index("| parameter |") :].split("\n\n")[0].splitlines()[2:]]
    named = {name for row in rows for name in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert all(len(row.split("|")) == 6 for row in rows)  # a fate for each of the three providers
    missing = [p for p in _create_parameters() if p not in SDK_REQUEST_OPTIONS and p not in named]
    assert missing == []


def test_every_refused_parameter_has_a_refused_value_here() -> None:
    assert set(REFUSED) <= set(REFUSED_VALUES)


@pytest.mark.parametrize("param", sorted(REFUSED_VALUES))
@pytest.mark.parametrize("stream", [False, True], ids=["complete", "stream"])
async def test_a_parameter_that_is_not_honoured_is_refused_400_naming_it(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer, param: str, stream: bool
) -> None:
    body = chat("x", OPENAI_MODEL, stream=stream, **{param: REFUSED_VALUES[param]})
    response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param
    assert error["code"] == "unsupported_parameter"
    assert sim.requests() == []


async def test_empty_web_search_options_are_refused_as_they_turn_web_search_on(
    client: httpx2.AsyncClient,
) -> None:
    response = await client.post("/v1/chat/completions", json=chat("x", OPENAI_MODEL, web_search_options={}))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "web_search_options"


# -- JSON-RPC: every LLMRequest field, and nothing else --------------------------------------------------

WEATHER = {
    "name": "get_weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
#: One request per LLMRequest field that sets that field (on a model that takes it).
EACH_FIELD: dict[str, dict[str, Any]] = {
    "model": {"model": OPENAI_MODEL},
    "tier": {"tier": "fast"},
    "messages": {"messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]},
    "max_tokens": {"max_tokens": 5},
    "temperature": {"temperature": 0.5},
    "top_p": {"top_p": 0.9},
    "stop": {"stop": ["zzz"]},
    "timeout": {"timeout": 60},
    "request_id": {"request_id": "every-field-request-id"},
    "priority": {"priority": "interactive"},
    "fallback_models": {"fallback_models": [ANTHROPIC_MODEL]},
    "trace_id": {"trace_id": "trace-every-field"},
    "source_agent": {"source_agent": "audit"},
    "session_id": {"session_id": "session-every-field"},
    "metadata": {"metadata": {"team": "audit"}},
    "seed": {"seed": 7},
    "tools": {"tools": [WEATHER]},
    "tool_choice": {"tools": [WEATHER], "tool_choice": {"name": "get_weather"}},
    "parallel_tool_calls": {"tools": [WEATHER], "parallel_tool_calls": False},
    "response_format": {"response_format": {"type": "json_object"}},
    "reasoning": {"model": OPENAI_REASONING_MODEL, "reasoning": {"effort": "low"}},
    "provider_options": {"provider_options": {"openai": {"user": "audit"}}},
}


def test_there_is_a_request_here_for_every_llmrequest_field() -> None:
    """A field added to LLMRequest fails here until JSON-RPC is shown to take it."""
    assert set(EACH_FIELD) == set(LLMRequest.model_fields)


@pytest.mark.parametrize("name", sorted(EACH_FIELD))
async def test_llm_complete_takes_each_llmrequest_field(
    client: httpx2.AsyncClient, worker: Worker, sim: SimulatorServer, name: str
) -> None:
    params = {"model": OPENAI_MODEL, "messages": [{"role": "user", "content": "hi"}], **EACH_FIELD[name]}
    if name == "tier":
        del params["model"]
    body = (await client.post("/jsonrpc", json=rpc("llm.complete", params))).json()
    assert "error" not in body, body
    assert body["result"]["request_id"]
    assert len(sim.requests()) == 1


@pytest.mark.parametrize("method", ["llm.complete", "llm.stream", "llm.submit"])
async def test_an_unknown_field_is_refused_with_32602_naming_it(
    client: httpx2.AsyncClient, sim: SimulatorServer, method: str
) -> None:
    params = {
        "model": OPENAI_MODEL,
        "messages": [{"role": "user", "content": "hi"}],
        "frequency_penalty": 0.5,
    }
    response = await client.post("/jsonrpc", json=rpc(method, params))
    text = response.text
    assert '"code":-32602' in text.replace(" ", "")
    payload = response.json() if method != "llm.stream" else None
    if payload is not None:
        assert payload["error"]["data"]["field"] == "frequency_penalty"
        assert payload["error"]["data"]["errors"][0]["type"] == "extra_forbidden"
    else:
        assert '"field":"frequency_penalty"' in text.replace(" ", "")
    assert sim.requests() == []
