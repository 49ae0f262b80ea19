"""Pure parts of the simulator: replies, prompts, directives, knobs, fault specs and error bodies."""

from __future__ import annotations

import orjson
import pytest

from llmrelay.simulator import SimulatorConfig, clean_prompt, parse_directives, reply_for
from llmrelay.simulator.faults import Fault, FaultBook, error_response, parse_fault_name
from llmrelay.simulator.providers import parse_call
from llmrelay.simulator.reply import WORDS


def test_reply_is_deterministic_and_well_formed() -> None:
    first = reply_for("What is the capital of France?", 12)
    assert first == reply_for("What is the capital of France?", 12)
    assert len(first) == 12
    assert not first[0].startswith(" ")
    assert all(t.startswith(" ") and t[1:] in WORDS for t in first[1:])
    assert first[0] in WORDS
    assert reply_for("another prompt", 12) != first


def test_shorter_reply_is_a_prefix_and_zero_is_empty() -> None:
    assert reply_for("p", 5) == reply_for("p", 20)[:5]
    assert reply_for("p", 0) == []
    assert reply_for("p", -3) == []


def test_reply_ignores_directives_and_whitespace() -> None:
    plain = reply_for("Hello world", 8)
    assert reply_for("Hello [[sim:tokens=5 fault=500]]  world ", 8) == plain
    assert reply_for("  Hello\n\tworld", 8) == plain
    assert clean_prompt("Hello [[sim:tokens=5]]  world") == "Hello world"
    assert clean_prompt(clean_prompt("a [[sim:x]] b")) == "a b"


def test_reply_result_is_a_fresh_list() -> None:
    reply = reply_for("mutable", 3)
    reply.append("junk")
    assert len(reply_for("mutable", 3)) == 3


def test_parse_directives() -> None:
    d = parse_directives(
        "hi [[sim:fault=429 retry_after=2.5 times=2]] and [[sim:tokens=7, tps=100 ttft_ms=20]]"
    )
    assert (d.fault, d.retry_after, d.times, d.tokens, d.tps, d.ttft_ms) == ("429", 2.5, 2, 7, 100.0, 20.0)
    assert parse_directives("[[sim:cut after=3]]").fault == "cut"
    assert parse_directives("[[sim:fault=503 provider=OpenAI model=gpt-6.1-terra]]").provider == "openai"
    assert parse_directives("[[sim:fault=503 provider=openai model=GPT-X]]").model == "GPT-X"
    assert parse_directives("no directives here") == parse_directives("")
    # unparsable values and unknown keys are ignored
    d = parse_directives("[[sim:tokens=abc after=-1 colour=blue ttft_ms=5]]")
    assert (d.tokens, d.after, d.ttft_ms) == (None, None, 5.0)


def test_prompt_extraction_openai_chat() -> None:
    call = parse_call(
        "chat",
        {
            "model": "gpt-6.1-terra",
            "messages": [
                {"role": "system", "content": "be brief please"},
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "an answer"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "second"}, {"type": "text", "text": "one"}],
                },
            ],
            "max_completion_tokens": 5,
            "max_tokens": 50,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    assert call.prompt == "second one"
    assert call.prompt_tokens == 3 + 2 + 2 + 2
    assert call.max_tokens == 5  # max_completion_tokens wins
    assert call.stream and call.include_usage
    assert call.model == "gpt-6.1-terra"


def test_prompt_extraction_responses_anthropic_gemini() -> None:
    responses = parse_call(
        "responses", {"model": "m", "input": "just text [[sim:tokens=3]]", "instructions": "x y"}
    )
    assert (responses.prompt, responses.prompt_tokens, responses.last_user) == (
        "just text",
        4,
        "just text [[sim:tokens=3]]",
    )
    items = parse_call(
        "responses",
        {
            "input": [{"role": "user", "content": [{"type": "input_text", "text": "list form"}]}],
            "max_output_tokens": 9,
        },
    )
    assert (items.prompt, items.max_tokens) == ("list form", 9)

    anth = parse_call(
        "messages",
        {
            "model": "claude",
            "system": [{"type": "text", "text": "sys words here"}],
            "messages": [{"role": "user", "content": "hello there"}],
            "max_tokens": 64,
        },
    )
    assert (anth.provider, anth.prompt, anth.prompt_tokens, anth.max_tokens) == (
        "anthropic",
        "hello there",
        5,
        64,
    )

    gem = parse_call(
        "gemini",
        {
            "contents": [
                {"role": "user", "parts": [{"text": "one"}]},
                {"role": "model", "parts": [{"text": "two words"}]},
                {"parts": [{"text": "three"}, {"text": "four"}]},
            ],
            "systemInstruction": {"parts": [{"text": "sys"}]},
            "generationConfig": {"maxOutputTokens": 4},
        },
        model="gemini-3.8-flash",
        stream=True,
    )
    assert (gem.provider, gem.prompt, gem.prompt_tokens, gem.max_tokens, gem.stream) == (
        "gemini",
        "three four",
        6,
        4,
        True,
    )


def test_prompt_tokens_never_below_one() -> None:
    assert parse_call("chat", {"messages": []}).prompt_tokens == 1


def test_config_validation_and_update() -> None:
    config = SimulatorConfig(ttft_ms="5", reply_tokens=3.0)  # type: ignore[arg-type]
    assert (config.ttft_ms, config.reply_tokens) == (5.0, 3)
    config.update(record="false", tokens_per_second=10)
    assert config.record is False and config.tokens_per_second == 10.0
    with pytest.raises(ValueError, match="unknown"):
        config.update(nope=1)
    with pytest.raises(ValueError, match="integer"):
        config.update(reply_tokens=2.5)
    with pytest.raises(ValueError, match=">= 0"):
        config.update(ttft_ms=-1, reply_tokens=7)
    assert config.reply_tokens == 3  # a rejected update changes nothing
    assert SimulatorConfig.from_dict(config.to_dict()) == config


def test_fault_names_and_specs() -> None:
    assert parse_fault_name("429") == ("status", 429)
    assert parse_fault_name(503) == ("status", 503)
    assert parse_fault_name("overloaded") == ("status", 529)
    assert parse_fault_name("CUT") == ("cut", None)
    with pytest.raises(ValueError, match="unknown fault"):
        parse_fault_name("200")
    with pytest.raises(ValueError, match="unknown provider"):
        Fault.from_spec({"fault": "429", "provider": "mistral"})
    with pytest.raises(ValueError, match="unknown fault field"):
        Fault.from_spec({"fault": "429", "colour": "red"})
    with pytest.raises(ValueError, match="times"):
        Fault.from_spec({"fault": "429", "times": -1})


def test_fault_book_consumes_matching_faults_in_order() -> None:
    book = FaultBook()
    book.add(Fault.from_spec({"fault": "500", "times": 2, "provider": "anthropic"}))
    book.add(Fault.from_spec({"fault": "429", "times": 1}))
    assert book.take("openai", "m").status == 429  # type: ignore[union-attr]
    assert book.take("openai", "m") is None
    assert book.take("anthropic", "m").status == 500  # type: ignore[union-attr]
    assert book.take("anthropic", "m").status == 500  # type: ignore[union-attr]
    assert book.take("anthropic", "m") is None
    forever = Fault.from_spec({"fault": "503", "times": None, "model": "x"})
    book.add(forever)
    assert all(book.take("gemini", "x") is forever for _ in range(5))
    assert book.take("gemini", "y") is None


@pytest.mark.parametrize(
    ("provider", "status", "expected_status", "kind"),
    [
        ("openai", 429, 429, "requests"),
        ("openai", 529, 503, "server_error"),
        ("anthropic", 529, 529, "overloaded_error"),
        ("anthropic", 429, 429, "rate_limit_error"),
        ("gemini", 429, 429, "RESOURCE_EXHAUSTED"),
        ("gemini", 529, 503, "UNAVAILABLE"),
    ],
)
def test_error_bodies_have_each_providers_shape(
    provider: str, status: int, expected_status: int, kind: str
) -> None:
    got_status, body, headers = error_response(
        provider, status, api_key="k-1", request_id="req_1", retry_after=1.5
    )
    data = orjson.loads(body)
    assert got_status == expected_status
    assert (b"retry-after", b"2") in headers
    assert (b"retry-after-ms", b"1500") in headers
    if provider == "openai":
        assert set(data["error"]) == {"message", "type", "param", "code"}
        assert data["error"]["type"] == kind
    elif provider == "anthropic":
        assert data["type"] == "error"
        assert data["error"]["type"] == kind
    else:
        assert data["error"]["code"] == expected_status
        assert data["error"]["status"] == kind


def test_auth_errors_quote_the_key() -> None:
    for provider in ("openai", "anthropic", "gemini"):
        _, body, _ = error_response(provider, 401, api_key="sk-secret-42", request_id="r")
        assert b"sk-secret-42" in body
