"""Redis key names: every key of one provider lands in one Redis Cluster slot."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from llmrelay.shared import keys
from llmrelay.shared.catalog import PROVIDERS
from llmrelay.shared.models import LLMRequest


def crc16_xmodem(data: bytes) -> int:
    """CRC16-CCITT (XMODEM), the checksum Redis Cluster uses for key slots."""
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def key_slot(key: str) -> int:
    """The cluster slot of a key, honouring a non-empty {hash tag} as Redis does."""
    raw = key.encode()
    start = raw.find(b"{")
    if start != -1:
        end = raw.find(b"}", start + 1)
        if end > start + 1:
            raw = raw[start + 1 : end]
    return crc16_xmodem(raw) % 16384


def test_slot_function_matches_redis() -> None:
    # Reference values from the Redis Cluster specification and CLUSTER KEYSLOT.
    assert crc16_xmodem(b"123456789") == 0x31C3
    assert key_slot("foo") == 12182
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") == crc16_xmodem(b"foo{}{bar}") % 16384


def provider_keys(provider: str) -> list[str]:
    return [
        keys.work_stream(provider, "interactive"),
        keys.work_stream(provider, "batch"),
        keys.dead_letter(provider),
        keys.state(provider, "req-1"),
        keys.state(provider, "other:request.id"),
        keys.events(provider, "req-1"),
        keys.pause(provider),
        keys.rate(provider, "*", "rpm"),
        keys.rate(provider, "gpt-6.1-terra", "tpm"),
    ]


@pytest.mark.parametrize("provider", PROVIDERS)
def test_all_keys_of_a_provider_share_the_hash_tag(provider: str) -> None:
    tag = keys.tag(provider)
    assert tag == "{llmrelay:" + provider + "}"
    for key in provider_keys(provider):
        assert key.startswith(tag + ":"), key


@pytest.mark.parametrize("provider", PROVIDERS)
def test_all_keys_of_a_provider_map_to_one_cluster_slot(provider: str) -> None:
    slots = {key_slot(key) for key in provider_keys(provider)}
    assert slots == {key_slot(keys.tag(provider))}


def test_providers_have_distinct_tags() -> None:
    assert len({keys.tag(p) for p in PROVIDERS}) == len(PROVIDERS)


def test_one_work_stream_per_provider_and_lane() -> None:
    streams = {keys.work_stream(p, lane) for p in PROVIDERS for lane in keys.LANES}
    assert len(streams) == len(PROVIDERS) * len(keys.LANES)
    assert keys.LANES == ("interactive", "batch")


def test_request_keys_are_distinct_per_request_and_kind() -> None:
    names = {
        keys.state("openai", "a"),
        keys.state("openai", "b"),
        keys.events("openai", "a"),
        keys.events("openai", "b"),
        keys.dead_letter("openai"),
        keys.pause("openai"),
    }
    assert len(names) == 6


def test_channels_name_the_provider_and_request() -> None:
    assert keys.channel("gemini", "req-1", namespace="") == "llmrelay:ch:gemini:req-1"
    assert keys.control_channel("anthropic", namespace="") == "llmrelay:ctl:anthropic"
    assert keys.channel("gemini", "req-1", namespace="") != keys.channel("openai", "req-1", namespace="")


def test_process_wide_keys_use_the_prefix() -> None:
    assert keys.WORKERS_REGISTRY == "llmrelay:workers"
    assert keys.worker_heartbeat("w1") == "llmrelay:worker:w1"
    assert keys.worker_metrics("w1") == "llmrelay:metrics:w1"
    assert keys.GROUP == "workers"


@pytest.mark.parametrize("request_id", ["a", "x" * 128, "A-z_0.9:1", "01J9Z8"])
def test_valid_request_id_accepts_the_safe_alphabet(request_id: str) -> None:
    assert keys.valid_request_id(request_id)


@pytest.mark.parametrize("request_id", ["", "a b", "a/b", "{tag}", "é", "x" * 129, "abc\n", "a\nb"])
def test_valid_request_id_refuses_what_llmrequest_refuses(request_id: str) -> None:
    with pytest.raises(ValidationError):
        LLMRequest.model_validate({"messages": [{"role": "user", "content": "x"}], "request_id": request_id})
    assert not keys.valid_request_id(request_id)
