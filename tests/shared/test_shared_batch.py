"""A batch's records in Redis: its hash, its item list and its request list read back as written."""

from __future__ import annotations

import pytest

from llmrelay.shared.batch import (
    BatchMeta,
    decode_item,
    decode_request,
    encode_item,
    encode_request,
)
from llmrelay.shared.models import LLMRequest
from llmrelay.shared.payloads import PayloadError


def as_hgetall(mapping: dict[str, str | int | float]) -> dict[bytes, bytes]:
    """What HGETALL answers for a hash written with this mapping (redis-py writes str() of numbers)."""
    return {k.encode(): str(v).encode() for k, v in mapping.items()}


def test_batch_meta_round_trips_through_its_hash() -> None:
    meta = BatchMeta(state="running", total=30, fed=12, created=1_700_000_000.125)
    assert BatchMeta.decode(as_hgetall(meta.encode())) == meta


def test_a_new_batch_has_fed_nothing() -> None:
    meta = BatchMeta.decode(as_hgetall(BatchMeta(state="feeding", total=3).encode()))
    assert (meta.fed, meta.created) == (0, 0.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "not a batch's state"),
        ({b"fed": b"3"}, "not a batch's state"),
        ({b"state": b"paused", b"total": b"3"}, "not a batch's state"),
        ({b"state": b"feeding"}, "a batch without 'total'"),
        ({b"state": b"feeding", b"total": b"many"}, "do not parse"),
    ],
    ids=["empty", "no-state", "unknown-state", "no-total", "garbled-total"],
)
def test_what_is_not_a_batch_is_refused(raw: dict[bytes, bytes], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        BatchMeta.decode(raw)


def test_an_item_names_its_provider_and_request_id() -> None:
    assert decode_item(encode_item("anthropic", "b-1-000007").encode()) == ("anthropic", "b-1-000007")
    # Request ids may hold ':' and '.', never '|'.
    assert decode_item(encode_item("openai", "a:b.c").encode()) == ("openai", "a:b.c")


def test_a_request_round_trips_and_leaves_out_its_defaults() -> None:
    request = LLMRequest(
        model="gpt-6.1-terra", messages=[{"role": "user", "content": "hi"}], request_id="r-1", priority="batch"
    )
    raw = encode_request(request)
    assert decode_request(raw) == request
    assert decode_request(raw.encode()) == request
    assert "temperature" not in raw
