"""The official google-genai SDK (client.aio, on httpx2) against the simulator."""

from __future__ import annotations

import httpx2
import pytest
from google import genai
from google.genai import errors, types

from llmrelay.simulator import SimulatorServer, reply_for
from tests.support import GEMINI_MODEL

MODEL = GEMINI_MODEL


async def _generate(
    client: genai.Client, prompt: str, *, stream: bool, into: list[str] | None = None
) -> None:
    texts = into if into is not None else []
    if not stream:
        texts.append((await client.aio.models.generate_content(model=MODEL, contents=prompt)).text or "")
        return
    async for chunk in await client.aio.models.generate_content_stream(model=MODEL, contents=prompt):
        texts.append(chunk.text or "")


def test_sdk_runs_on_httpx2(genai_client: genai.Client) -> None:
    assert not genai_client._api_client._use_aiohttp()  # as in the worker, whether aiohttp is installed or not
    assert isinstance(genai_client.aio._api_client._async_httpx_client, httpx2.AsyncClient)


async def test_generate_content_usage_and_headers(sim: SimulatorServer, genai_client: genai.Client) -> None:
    response = await genai_client.aio.models.generate_content(
        model=MODEL,
        contents=[
            types.Content(role="user", parts=[types.Part(text="first turn")]),
            types.Content(role="model", parts=[types.Part(text="sure")]),
            types.Content(role="user", parts=[types.Part(text="Name three rivers")]),
        ],
        config=types.GenerateContentConfig(
            system_instruction="answer in one line",
            http_options=types.HttpOptions(headers={"X-Trace-Id": "trace-gemini-1", "X-Session-Id": "g-s"}),
        ),
    )
    assert response.text == "".join(reply_for("Name three rivers", 20))
    candidate = response.candidates[0]  # type: ignore[index]
    assert candidate.finish_reason == types.FinishReason.STOP
    usage = response.usage_metadata
    assert usage is not None
    assert (usage.prompt_token_count, usage.candidates_token_count, usage.total_token_count) == (10, 20, 30)

    [record] = sim.requests(provider="gemini")
    assert record["path"] == f"/v1beta/models/{MODEL}:generateContent"
    assert record["model"] == MODEL and record["stream"] is False
    assert record["headers"]["x-trace-id"] == "trace-gemini-1"
    assert record["headers"]["x-session-id"] == "g-s"
    assert record["headers"]["x-goog-api-key"]
    assert record["body"]["systemInstruction"]["parts"][0]["text"] == "answer in one line"


async def test_generate_content_stream(sim: SimulatorServer, genai_client: genai.Client) -> None:
    chunks = [
        chunk
        async for chunk in await genai_client.aio.models.generate_content_stream(
            model=MODEL, contents="stream rivers [[sim:tokens=5]]"
        )
    ]
    assert [c.text for c in chunks] == reply_for("stream rivers", 5)
    last = chunks[-1]
    assert last.candidates[0].finish_reason == types.FinishReason.STOP  # type: ignore[index]
    assert last.usage_metadata is not None
    assert (last.usage_metadata.prompt_token_count, last.usage_metadata.candidates_token_count) == (2, 5)
    assert last.usage_metadata.total_token_count == 7
    [record] = sim.requests()
    assert record["path"] == f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert record["query"] == "alt=sse"
    assert record["stream"] is True


async def test_truncated_by_max_output_tokens(genai_client: genai.Client) -> None:
    config = types.GenerateContentConfig(max_output_tokens=3)
    response = await genai_client.aio.models.generate_content(
        model=MODEL, contents="many words", config=config
    )
    assert response.text == "".join(reply_for("many words", 3))
    assert response.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]

    chunks = [
        c
        async for c in await genai_client.aio.models.generate_content_stream(
            model=MODEL, contents="many words", config=config
        )
    ]
    assert "".join(c.text or "" for c in chunks) == response.text
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS  # type: ignore[index]


@pytest.mark.parametrize(
    ("fault", "exc", "code", "status"),
    [
        ("429", errors.ClientError, 429, "RESOURCE_EXHAUSTED"),
        ("400", errors.ClientError, 400, "INVALID_ARGUMENT"),
        ("401", errors.ClientError, 401, "UNAUTHENTICATED"),
        ("500", errors.ServerError, 500, "INTERNAL"),
        ("503", errors.ServerError, 503, "UNAVAILABLE"),
        ("529", errors.ServerError, 503, "UNAVAILABLE"),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_status_faults(
    genai_client: genai.Client, fault: str, exc: type[errors.APIError], code: int, status: str, stream: bool
) -> None:
    prompt = f"[[sim:fault={fault} retry_after=2]] boom"
    with pytest.raises(exc) as info:
        await _generate(genai_client, prompt, stream=stream)
    assert type(info.value) is exc
    assert info.value.code == code
    assert info.value.status == status
    if code == 429:
        assert info.value.response.headers["retry-after"] == "2"


async def test_auth_error_quotes_the_key(genai_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError) as info:
        await genai_client.aio.models.generate_content(model=MODEL, contents="[[sim:fault=401]] k")
    assert genai_client._api_client.api_key in str(info.value)


@pytest.mark.parametrize("fault", ["cut after=2", "overloaded_in_stream after=2"])
async def test_stream_cut_raises_raw_remote_protocol_error(genai_client: genai.Client, fault: str) -> None:
    texts: list[str] = []
    with pytest.raises(httpx2.RemoteProtocolError):
        await _generate(genai_client, f"[[sim:fault={fault}]] cut", stream=True, into=texts)
    assert texts == reply_for("cut", 2)


async def test_non_stream_cut(genai_client: genai.Client) -> None:
    with pytest.raises(httpx2.RemoteProtocolError):
        await genai_client.aio.models.generate_content(model=MODEL, contents="[[sim:fault=cut]] cut")


async def test_stream_without_alt_sse_is_a_json_array(sim: SimulatorServer) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.post(
            f"{sim.url}/v1beta/models/{MODEL}:streamGenerateContent",
            json={"contents": [{"parts": [{"text": "array please [[sim:tokens=3]]"}]}]},
        )
    chunks = response.json()
    assert [c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks] == reply_for("array please", 3)
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
