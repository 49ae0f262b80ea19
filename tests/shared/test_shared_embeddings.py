"""The embedding contract: strict validation, routing by kind, the float32 codec, the job and event forms."""

from __future__ import annotations

import time
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from llmrelay.shared import EmbeddingRequest, EmbeddingResponse, Governance, LLMRequest, Settings
from llmrelay.shared.catalog import Catalog
from llmrelay.shared.embeddings import (
    MAX_EMBEDDING_INPUT_CHARS,
    MAX_EMBEDDING_INPUTS,
    EmbeddingUsage,
    decode_embedding_result,
    decode_vector,
    encode_embedding_result,
    encode_vector,
)
from llmrelay.shared.errors import ContextLengthExceededError, InvalidRequestError, ModelNotAllowedError
from llmrelay.shared.events import EmbeddingDoneEvent, MalformedEventError, decode, encode
from llmrelay.shared.jobs import Job, decode_result, encode_result
from llmrelay.shared.models import LLMResponse
from llmrelay.shared.queue import make_job
from tests.support import GEMINI_EMBEDDING_MODEL, GEMINI_MODEL, OPENAI_EMBEDDING_MODEL, OPENAI_MODEL

SETTINGS = Settings(_env_file=None)
GOVERNANCE = Governance.from_settings(SETTINGS)


def field_of(exc: ValidationError) -> str:
    return ".".join(str(p) for p in exc.errors()[0]["loc"])


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"input": []}, "input"),
        ({"input": "a string, not a list"}, "input"),
        ({"input": ["ok", 3]}, "input.1"),
        ({"input": ["ok", ""]}, "input.1"),
        ({"input": ["x"] * (MAX_EMBEDDING_INPUTS + 1)}, "input"),
        ({"input": ["x" * (MAX_EMBEDDING_INPUT_CHARS + 1)]}, "input.0"),
        ({"input": ["x" * 90_000] * 30}, "input"),  # past the total bound
        ({"input": ["x"], "dimensions": 0}, "dimensions"),
        ({"input": ["x"], "temperature": 0.5}, "temperature"),
        ({"input": ["x"], "request_id": "spaces are not ids"}, "request_id"),
        ({"input": ["x"], "metadata": {"big": "x" * 20_000}}, "metadata"),
    ],
)
def test_bad_input_is_refused_naming_the_field(values: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        EmbeddingRequest.model_validate({"model": OPENAI_EMBEDDING_MODEL, **values})
    assert field_of(caught.value) == field


def test_a_request_carries_its_context() -> None:
    request = EmbeddingRequest(
        model=OPENAI_EMBEDDING_MODEL, input=["x"], trace_id="t", session_id="s", request_id="r-1", timeout=5
    )
    assert request.a2a() == {"trace_id": "t", "session_id": "s"}
    assert request.log_context() == {"request_id": "r-1", "trace_id": "t", "session_id": "s"}
    assert request.context.headers() == {"X-Trace-Id": "t", "X-Session-Id": "s"}
    assert request.timeout == 5.0


def test_routing_checks_kind_allowance_dimensions_and_input_length() -> None:
    assert (
        GOVERNANCE.route_embedding(EmbeddingRequest(model=OPENAI_EMBEDDING_MODEL, input=["x"])).fallbacks
        == ()
    )
    with pytest.raises(InvalidRequestError) as chat_model:
        GOVERNANCE.route_embedding(EmbeddingRequest(model=OPENAI_MODEL, input=["x"]))
    assert chat_model.value.data["field"] == "model"
    with pytest.raises(InvalidRequestError) as wide:
        GOVERNANCE.route_embedding(
            EmbeddingRequest(model=OPENAI_EMBEDDING_MODEL, input=["x"], dimensions=2000)
        )
    assert wide.value.data == {"field": "dimensions", "limit": 1536, "model": OPENAI_EMBEDDING_MODEL}
    with pytest.raises(ContextLengthExceededError) as long:
        GOVERNANCE.route_embedding(EmbeddingRequest(model=GEMINI_EMBEDDING_MODEL, input=["ok", "w" * 9000]))
    assert long.value.data["field"] == "input[1]"
    narrow = Governance(SETTINGS.catalog, [OPENAI_MODEL])
    with pytest.raises(ModelNotAllowedError):
        narrow.route_embedding(EmbeddingRequest(model=OPENAI_EMBEDDING_MODEL, input=["x"]))


def test_a_completion_may_not_name_an_embedding_model() -> None:
    def chat(**fields: Any) -> LLMRequest:
        return LLMRequest.model_validate({"messages": [{"role": "user", "content": "x"}], **fields})

    for fields, field in [
        ({"model": GEMINI_EMBEDDING_MODEL}, "model"),
        ({"model": OPENAI_MODEL, "fallback_models": [OPENAI_EMBEDDING_MODEL]}, "fallback_models"),
    ]:
        with pytest.raises(InvalidRequestError) as caught:
            GOVERNANCE.route(chat(**fields))
        assert caught.value.data["field"] == field
    configured = Governance(
        SETTINGS.catalog, SETTINGS.effective_allowed_models, failover={GEMINI_MODEL: [GEMINI_EMBEDDING_MODEL]}
    )
    assert (
        configured.route(chat(model=GEMINI_MODEL)).fallbacks == ()
    )  # a configured embedding model is skipped


def test_catalog_embedding_rows_and_kind_rules() -> None:
    info = SETTINGS.catalog.resolve(GEMINI_EMBEDDING_MODEL)
    assert (info.kind, info.provider, info.dimensions, info.output_per_mtok) == (
        "embedding",
        "gemini",
        3072,
        0.0,
    )
    assert info.public()["kind"] == "embedding" and info.public()["dimensions"] == 3072
    assert SETTINGS.catalog.resolve(OPENAI_MODEL).public()["kind"] == "chat"
    assert all(
        m.kind == "chat" for tier in ("fast", "balanced", "premium") for m in SETTINGS.catalog.by_tier(tier)
    )
    assert not any(
        m.provider == "anthropic" and m.kind == "embedding" for m in SETTINGS.catalog.models.values()
    )
    assert info.cost(1_000_000, 0) == pytest.approx(info.input_per_mtok)
    row = {
        "kind": "embedding",
        "provider": "openai",
        "api_id": "e",
        "input_per_mtok": 0.1,
        "context_window": 10,
    }
    with pytest.raises(ValueError, match="dimensions"):
        Catalog.from_dict({"models": {"e": row}})
    with pytest.raises(ValueError, match="kind"):
        Catalog.from_dict({"models": {"e": {**row, "dimensions": 8, "kind": "audio"}}})
    assert Catalog.from_dict({"models": {"e": {**row, "dimensions": 8}}}).resolve("e").dimensions == 8


def test_vectors_cross_redis_as_float32_without_loss() -> None:
    vector = decode_vector(encode_vector([0.1, -0.25, 1.0, 3.0e-8]))
    assert encode_vector(vector) == encode_vector([0.1, -0.25, 1.0, 3.0e-8])
    assert vector[1:3] == [-0.25, 1.0] and abs(vector[0] - 0.1) < 1e-7
    response = EmbeddingResponse(
        request_id="r", model=OPENAI_EMBEDDING_MODEL, provider="openai", vectors=[vector, vector[:2]],
        usage=EmbeddingUsage.of(7), trace_id="t",
    )  # fmt: skip
    assert decode_embedding_result(encode_embedding_result(response)) == response
    event = decode(encode(EmbeddingDoneEvent(9, response)))
    assert isinstance(event, EmbeddingDoneEvent) and event.response == response and event.index == 9


def test_a_stored_result_of_the_other_kind_is_refused_naming_request_id() -> None:
    chat = LLMResponse(request_id="r", model=OPENAI_MODEL, provider="openai", content="hi")
    with pytest.raises(InvalidRequestError) as caught:
        decode_embedding_result(encode_result(chat))
    assert caught.value.data == {"field": "request_id"}
    embedded = EmbeddingResponse(request_id="r", model="m", provider="openai", vectors=[[1.0]])
    with pytest.raises(InvalidRequestError):
        decode_result(encode_embedding_result(embedded))


def test_an_embedding_job_round_trips_and_an_unknown_kind_is_refused() -> None:
    request = EmbeddingRequest(
        model=OPENAI_EMBEDDING_MODEL, input=["a", "b"], request_id="e-1", priority="batch"
    )
    job = make_job(request, GOVERNANCE.route_embedding(request), SETTINGS, stream=False)
    decoded = Job.decode(job.encode())
    assert decoded.request == request and decoded.lane == "batch" and decoded.fallbacks == []
    assert decoded.deadline - time.time() <= SETTINGS.request_timeout
    data = orjson.loads(job.encode())
    assert data["k"] == "embed"
    with pytest.raises(InvalidRequestError, match="kind"):
        Job.decode(orjson.dumps({**data, "k": "audio"}))
    with pytest.raises(InvalidRequestError, match="does not validate"):
        Job.decode(orjson.dumps({**data, "r": {**data["r"], "input": []}}))
    chat = LLMRequest(model=OPENAI_MODEL, messages=[{"role": "user", "content": "x"}], request_id="c-1")
    assert "k" not in orjson.loads(make_job(chat, GOVERNANCE.route(chat), SETTINGS, stream=True).encode())


def test_metadata_must_be_json_and_a_malformed_result_event_is_refused() -> None:
    with pytest.raises(ValidationError, match="JSON-serialisable"):
        EmbeddingRequest(model=OPENAI_EMBEDDING_MODEL, input=["x"], metadata={"when": object()})
    for response in (
        {"vectors": ["not base64!"]},
        {"vectors": "nope"},
        {"vectors": [], "provider": "nobody"},
    ):
        raw = orjson.dumps({"type": "embedding_done", "index": 1, "response": response})
        with pytest.raises(MalformedEventError):
            decode(raw)
