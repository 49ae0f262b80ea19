"""Function calling, JSON output and media on Gemini's wire format: the official google-genai SDK against
the simulator."""

from __future__ import annotations

import base64
from typing import Any

import httpx2
import jsonschema
import orjson
import pytest
from google import genai
from google.genai import errors, types

from llmrelay.simulator import SimulatorServer
from llmrelay.simulator.providers import gemini as gemini_wire
from llmrelay.simulator.providers._format import MEDIA_TOKENS, WireError
from tests.support import GEMINI_MODEL, GEMINI_UNSIGNED_MODEL

MODEL = GEMINI_MODEL
WEATHER = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 3}},
    "required": ["city", "days"],
}
TIME = {
    "type": "object",
    "properties": {"zone": {"type": "string", "format": "date-time"}},
    "required": ["zone"],
}
NO_AFC = types.AutomaticFunctionCallingConfig(disable=True)
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="
)


def _tools() -> list[types.Tool]:
    return [
        types.Tool(
            function_declarations=[
                types.FunctionDeclaration(
                    name="get_weather", description="w", parameters_json_schema=WEATHER
                ),
                types.FunctionDeclaration(name="get_time", parameters_json_schema=TIME),
            ]
        )
    ]


def _config(
    mode: str | None = None, allowed: list[str] | None = None, **extra: Any
) -> types.GenerateContentConfig:
    tool_config = None
    if mode is not None:
        calling = types.FunctionCallingConfig(mode=mode, allowed_function_names=allowed)  # type: ignore[arg-type]
        tool_config = types.ToolConfig(function_calling_config=calling)
    return types.GenerateContentConfig(
        tools=_tools(), tool_config=tool_config, automatic_function_calling=NO_AFC, **extra
    )


async def _chunks(
    client: genai.Client, contents: Any, config: types.GenerateContentConfig, model: str = MODEL
) -> list[Any]:
    stream = await client.aio.models.generate_content_stream(model=model, contents=contents, config=config)
    return [chunk async for chunk in stream]


def _calls(response: types.GenerateContentResponse) -> list[types.FunctionCall]:
    return list(response.function_calls or [])


@pytest.mark.parametrize("stream", [False, True])
async def test_a_function_call_whole_with_arguments_of_its_schema(
    sim: SimulatorServer, genai_client: genai.Client, stream: bool
) -> None:
    if stream:
        chunks = await _chunks(genai_client, "weather in Oslo?", _config())
        # Gemini streams a function call whole, in one chunk, and ends that chunk with STOP.
        [chunk] = chunks
        calls = _calls(chunk)
        finish = chunk.candidates[0].finish_reason
        usage = chunk.usage_metadata
    else:
        response = await genai_client.aio.models.generate_content(
            model=MODEL, contents="weather in Oslo?", config=_config()
        )
        calls, finish, usage = _calls(response), response.candidates[0].finish_reason, response.usage_metadata  # type: ignore[index]
    [call] = calls
    assert call.name == "get_weather"
    assert call.id is None  # Gemini gives no call ids
    jsonschema.validate(call.args, WEATHER)
    assert finish == types.FinishReason.STOP
    assert usage is not None and usage.candidates_token_count and usage.candidates_token_count > 0
    [record] = sim.requests()
    declared = record["body"]["tools"][0]["functionDeclarations"]
    assert [d["name"] for d in declared] == ["get_weather", "get_time"]


@pytest.mark.parametrize("stream", [False, True])
async def test_parallel_calls_come_in_one_turn(genai_client: genai.Client, stream: bool) -> None:
    prompt = "weather and time [[sim:calls=2]]"
    if stream:
        [chunk] = await _chunks(genai_client, prompt, _config())
        calls = _calls(chunk)
    else:
        calls = _calls(
            await genai_client.aio.models.generate_content(model=MODEL, contents=prompt, config=_config())
        )
    assert [c.name for c in calls] == ["get_weather", "get_time"]
    jsonschema.validate(calls[1].args, TIME)


@pytest.mark.parametrize(
    ("mode", "allowed", "names"),
    [
        ("NONE", None, []),
        ("AUTO", None, ["get_weather"]),
        ("VALIDATED", None, ["get_weather"]),
        ("ANY", None, ["get_weather"]),
        ("ANY", ["get_time"], ["get_time"]),
    ],
)
async def test_function_calling_modes(
    genai_client: genai.Client, mode: str, allowed: list[str] | None, names: list[str]
) -> None:
    response = await genai_client.aio.models.generate_content(
        model=MODEL, contents="what now? [[sim:tokens=4]]", config=_config(mode, allowed)
    )
    assert [c.name for c in _calls(response)] == names
    if not names:
        assert response.text and len(response.text.split()) == 4


async def test_any_mode_calls_even_after_a_result(genai_client: genai.Client) -> None:
    contents = _loop("get_time", {"zone": "UTC"})
    response = await genai_client.aio.models.generate_content(
        model=GEMINI_UNSIGNED_MODEL, contents=contents, config=_config("ANY", ["get_time"])
    )
    assert [c.name for c in _calls(response)] == ["get_time"]


def _loop(
    name: str, args: dict[str, Any], *, call_id: str | None = None, response_name: str | None = None
) -> list[types.Content]:
    return [
        types.Content(role="user", parts=[types.Part(text="weather in Oslo?")]),
        types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(id=call_id, name=name, args=args))],
        ),
        types.Content(
            role="user",
            parts=[
                types.Part(
                    function_response=types.FunctionResponse(
                        id=call_id, name=response_name or name, response={"output": "sunny, 21 C"}
                    )
                )
            ],
        ),
    ]


@pytest.mark.parametrize("stream", [False, True])
async def test_after_the_function_response_the_model_answers_in_text(
    sim: SimulatorServer, genai_client: genai.Client, stream: bool
) -> None:
    contents = _loop("get_weather", {"city": "Oslo", "days": 3}, call_id="c-1")  # a turn with no signature
    if stream:
        chunks = await _chunks(genai_client, contents, _config(), GEMINI_UNSIGNED_MODEL)
        text = "".join(c.text or "" for c in chunks)
        assert not any(_calls(c) for c in chunks)
        assert chunks[-1].candidates[0].finish_reason == types.FinishReason.STOP
    else:
        response = await genai_client.aio.models.generate_content(
            model=GEMINI_UNSIGNED_MODEL, contents=contents, config=_config()
        )
        assert not _calls(response)
        text = response.text or ""
    assert text.strip()
    [record] = sim.requests()
    response_part = record["body"]["contents"][2]["parts"][0]["functionResponse"]
    assert response_part == {"id": "c-1", "name": "get_weather", "response": {"output": "sunny, 21 C"}}


@pytest.mark.parametrize(
    ("contents", "match"),
    [
        # A response whose name no call of the previous turn has.
        (_loop("get_weather", {}, response_name="get_time"), "answers no call"),
        # Ids that do not match.
        (
            [
                *_loop("get_weather", {}, call_id="c-1")[:2],
                types.Content(
                    role="user",
                    parts=[
                        types.Part(
                            function_response=types.FunctionResponse(
                                id="c-2", name="get_weather", response={}
                            )
                        )
                    ],
                ),
            ],
            "answers no call",
        ),
        # A response with no call turn before it.
        ([_loop("get_weather", {})[0], _loop("get_weather", {})[2]], "number of function response parts"),
        # Two calls, one response.
        (
            [
                types.Content(role="user", parts=[types.Part(text="two")]),
                types.Content(
                    role="model",
                    parts=[
                        types.Part(function_call=types.FunctionCall(name="get_weather", args={})),
                        types.Part(function_call=types.FunctionCall(name="get_time", args={})),
                    ],
                ),
                _loop("get_weather", {})[2],
            ],
            "number of function response parts",
        ),
    ],
)
async def test_a_function_response_must_answer_the_call_turn_before_it(
    sim: SimulatorServer, genai_client: genai.Client, contents: list[types.Content], match: str
) -> None:
    with pytest.raises(errors.ClientError) as info:
        await genai_client.aio.models.generate_content(model=MODEL, contents=contents, config=_config())
    assert (info.value.code, info.value.status) == (400, "INVALID_ARGUMENT")
    # The reason, read from the very body the SDK sent (the error body carries the app's generic text).
    [record] = sim.requests()
    with pytest.raises(WireError, match=match):
        gemini_wire.read(record["body"])


async def test_allowed_names_must_be_declared(genai_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        await genai_client.aio.models.generate_content(
            model=MODEL, contents="x", config=_config("ANY", ["get_stock"])
        )
    assert info.value.code == 400


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("field", ["response_json_schema", "response_schema"])
async def test_json_output_follows_the_schema(genai_client: genai.Client, stream: bool, field: str) -> None:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    config = types.GenerateContentConfig(response_mime_type="application/json", **{field: schema})
    if stream:
        text = "".join(c.text or "" for c in await _chunks(genai_client, "a person", config))
    else:
        text = (
            await genai_client.aio.models.generate_content(model=MODEL, contents="a person", config=config)
        ).text or ""
    jsonschema.validate(orjson.loads(text), schema)


async def test_json_mime_type_without_a_schema_is_a_json_object(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(response_mime_type="application/json")
    response = await genai_client.aio.models.generate_content(model=MODEL, contents="hello", config=config)
    assert isinstance(orjson.loads(response.text or ""), dict)


async def test_images_and_documents_count_in_the_prompt_tokens(genai_client: genai.Client) -> None:
    parts = [
        types.Part(text="describe"),
        types.Part.from_bytes(data=PNG, mime_type="image/png"),
        types.Part.from_uri(file_uri="https://example.com/cat.png", mime_type="image/png"),
        types.Part.from_bytes(data=b"%PDF-1.4", mime_type="application/pdf"),
    ]
    response = await genai_client.aio.models.generate_content(
        model=MODEL, contents=[types.Content(role="user", parts=parts)]
    )
    assert response.usage_metadata is not None
    assert response.usage_metadata.prompt_token_count == 1 + 3 * MEDIA_TOKENS


async def test_camel_case_rest_body_with_openapi_parameters(sim: SimulatorServer) -> None:
    """The REST reference's spelling: ``parameters`` with upper-case types, ``toolConfig`` in camelCase,
    and streamGenerateContent without alt=sse (a JSON array)."""
    body = {
        "contents": [
            {
                "role": "user",
                "parts": [{"text": "weather?"}, {"inlineData": {"mimeType": "image/png", "data": "AA=="}}],
            }
        ],
        "tools": [
            {
                "functionDeclarations": [
                    {
                        "name": "get_weather",
                        "parameters": {
                            "type": "OBJECT",
                            "properties": {"city": {"type": "STRING"}},
                            "required": ["city"],
                        },
                    }
                ]
            }
        ],
        "toolConfig": {"functionCallingConfig": {"mode": "ANY"}},
    }
    async with httpx2.AsyncClient() as client:
        response = await client.post(f"{sim.url}/v1beta/models/{MODEL}:streamGenerateContent", json=body)
    [chunk] = response.json()
    [part] = chunk["candidates"][0]["content"]["parts"]
    assert part["functionCall"]["name"] == "get_weather"
    jsonschema.validate(
        part["functionCall"]["args"],
        {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    )
    assert chunk["usageMetadata"]["promptTokenCount"] == 1 + MEDIA_TOKENS
