"""The simulator's embedding endpoints, driven by the official SDKs and by raw HTTP for the wire rules."""

from __future__ import annotations

import array
import base64
import math

import httpx2
import openai
import pytest
from google import genai
from google.genai import errors, types

from llmrelay.simulator import SimulatorServer
from llmrelay.simulator.embeddings import vector
from tests.support import GEMINI_EMBEDDING_MODEL, OPENAI_EMBEDDING_MODEL


async def test_openai_float_and_base64_carry_the_same_unit_vectors(
    openai_client: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    floats = await openai_client.embeddings.create(
        model=OPENAI_EMBEDDING_MODEL, input=["alpha beta", "gamma"], encoding_format="float"
    )
    raw = await openai_client.embeddings.create(
        model=OPENAI_EMBEDDING_MODEL, input=["alpha beta", "gamma"], encoding_format="base64"
    )
    decoded = [array.array("f", base64.b64decode(str(d.embedding))).tolist() for d in raw.data]
    assert decoded == [d.embedding for d in floats.data]
    assert [len(v) for v in decoded] == [1536, 1536]
    assert math.isclose(sum(x * x for x in decoded[0]), 1.0, rel_tol=1e-5)
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == 3
    assert decoded[0] == vector("alpha beta", 1536, 1536)  # derived from the text alone
    [first, second] = sim.requests("openai")
    assert (first["api"], first["body"]["encoding_format"], second["body"]["encoding_format"]) == (
        "embeddings",
        "float",
        "base64",
    )


async def test_openai_dimensions_shorten_and_renormalise(openai_client: openai.AsyncOpenAI) -> None:
    short = await openai_client.embeddings.create(
        model="text-embedding-3-large", input="x", dimensions=8, encoding_format="float"
    )
    full = await openai_client.embeddings.create(
        model="text-embedding-3-large", input="x", encoding_format="float"
    )
    head = full.data[0].embedding[:8]
    norm = math.sqrt(sum(v * v for v in head))
    assert short.data[0].embedding == pytest.approx([v / norm for v in head], rel=1e-5)
    with pytest.raises(openai.BadRequestError, match="dimensions"):
        await openai_client.embeddings.create(model="text-embedding-ada-002", input="x", dimensions=8)


@pytest.mark.parametrize("bad", [[], [""], ["x"] * 2049])
async def test_openai_refuses_what_the_api_refuses(openai_client: openai.AsyncOpenAI, bad: list[str]) -> None:
    with pytest.raises(openai.BadRequestError):
        await openai_client.embeddings.create(model=OPENAI_EMBEDDING_MODEL, input=bad)


async def test_openai_embeddings_carry_rate_limit_headers_and_faults(
    openai_client: openai.AsyncOpenAI, sim: SimulatorServer
) -> None:
    raw = await openai_client.embeddings.with_raw_response.create(model=OPENAI_EMBEDDING_MODEL, input="x")
    assert raw.headers["x-ratelimit-remaining-requests"].isdigit()
    sim.add_fault(429, retry_after=3, provider="openai")
    with pytest.raises(openai.RateLimitError) as limited:
        await openai_client.embeddings.create(model=OPENAI_EMBEDDING_MODEL, input="x")
    assert limited.value.response.headers["retry-after"] == "3"
    assert sim.requests("openai")[-1]["fault"] == "429"


async def test_gemini_sdk_embeds_one_and_many_through_batch_embed_contents(
    genai_client: genai.Client, sim: SimulatorServer
) -> None:
    one = await genai_client.aio.models.embed_content(model=GEMINI_EMBEDDING_MODEL, contents="hello")
    many = await genai_client.aio.models.embed_content(
        model=GEMINI_EMBEDDING_MODEL,
        contents=["hello", "world"],
        config=types.EmbedContentConfig(output_dimensionality=768),
    )
    assert one.embeddings and many.embeddings
    assert len(one.embeddings[0].values or []) == 3072
    assert [len(e.values or []) for e in many.embeddings] == [768, 768]
    assert many.embeddings[0].values == pytest.approx(vector("hello", 768, 3072))
    paths = [r["path"] for r in sim.requests("gemini")]
    assert paths == [f"/v1beta/models/{GEMINI_EMBEDDING_MODEL}:batchEmbedContents"] * 2


async def test_gemini_refuses_a_batch_over_100(genai_client: genai.Client) -> None:
    with pytest.raises(errors.ClientError, match="at most 100 requests"):
        await genai_client.aio.models.embed_content(
            model=GEMINI_EMBEDDING_MODEL, contents=[f"t{i}" for i in range(101)]
        )


async def test_gemini_embed_content_and_its_wire_rules(sim: SimulatorServer) -> None:
    base = f"{sim.gemini_base_url}/v1beta/models/{GEMINI_EMBEDDING_MODEL}"
    async with httpx2.AsyncClient(timeout=10) as http:
        single = await http.post(
            f"{base}:embedContent", json={"content": {"parts": [{"text": "hi"}]}, "outputDimensionality": 4}
        )
        other_model = await http.post(
            f"{base}:batchEmbedContents",
            json={"requests": [{"model": "models/another", "content": {"parts": [{"text": "x"}]}}]},
        )
        no_text = await http.post(f"{base}:embedContent", json={"content": {"parts": []}})
    assert single.status_code == 200
    assert single.json() == {"embedding": {"values": vector("hi", 4, 3072)}}
    assert other_model.status_code == 400 and "requests[0].model" in other_model.json()["error"]["message"]
    assert no_text.status_code == 400
    assert [r["api"] for r in sim.requests("gemini")] == [
        "embedContent",
        "batchEmbedContents",
        "embedContent",
    ]
