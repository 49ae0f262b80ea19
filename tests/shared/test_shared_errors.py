"""The error hierarchy: unique JSON-RPC codes, and a wire form every class survives."""

from __future__ import annotations

import orjson
import pytest

from llmrelay import shared
from llmrelay.shared import errors
from llmrelay.shared.errors import (
    ERRORS_BY_NAME,
    InvalidRequestError,
    LLMRelayError,
    ModelNotAllowedError,
    QueueFullError,
    RateLimitedError,
)


def all_subclasses(cls: type[LLMRelayError]) -> set[type[LLMRelayError]]:
    found: set[type[LLMRelayError]] = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= all_subclasses(sub)
    return found


def product_errors() -> list[type[LLMRelayError]]:
    """Every error class the product defines (classes a test module defines for itself excluded)."""
    classes: list[type[LLMRelayError]] = [LLMRelayError, *all_subclasses(LLMRelayError)]
    return sorted(
        (c for c in classes if not c.__module__.split(".")[0].startswith(("test", "conftest"))),
        key=lambda c: c.__name__,
    )


ALL = product_errors()


def test_errors_by_name_covers_every_subclass() -> None:
    missing = [c.__qualname__ for c in ALL if ERRORS_BY_NAME.get(c.__name__) is not c]
    assert missing == []


def test_errors_by_name_holds_only_error_classes_under_their_own_name() -> None:
    for name, cls in ERRORS_BY_NAME.items():
        assert cls.__name__ == name
        assert issubclass(cls, LLMRelayError)


def test_every_error_class_is_exported_from_shared() -> None:
    for name in ERRORS_BY_NAME:
        assert getattr(shared, name) is getattr(errors, name)
        assert name in shared.__all__


def test_codes_are_unique_and_in_the_service_range() -> None:
    codes = [cls.code for cls in ERRORS_BY_NAME.values()]
    assert len(codes) == len(set(codes))
    assert all(-32099 <= code <= -32000 for code in codes)


def test_http_statuses_are_error_statuses() -> None:
    assert all(400 <= cls.http_status <= 599 for cls in ERRORS_BY_NAME.values())


def test_only_transient_failures_are_retryable() -> None:
    retryable = {name for name, cls in ERRORS_BY_NAME.items() if cls.retryable}
    assert retryable == {"RateLimitedError", "ProviderUnavailableError", "RequestTimeoutError"}


def test_request_errors_are_invalid_request_errors() -> None:
    for name in ("ModelNotAllowedError", "UnknownModelError", "ContextLengthExceededError"):
        assert issubclass(ERRORS_BY_NAME[name], InvalidRequestError)
    assert issubclass(QueueFullError, RateLimitedError)


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_round_trips_through_its_wire_form(cls: type[LLMRelayError]) -> None:
    original = cls('something failed: "quoted" ✓', data={"field": "model", "n": 3})
    wire = orjson.loads(orjson.dumps(original.to_dict()))
    again = LLMRelayError.from_dict(wire)
    assert type(again) is cls
    assert again.message == original.message
    assert again.data == original.data
    assert again.code == cls.code
    assert wire["type"] == cls.__name__
    assert wire["code"] == cls.code


@pytest.mark.parametrize("cls", ALL, ids=lambda c: c.__name__)
def test_every_class_has_a_default_message(cls: type[LLMRelayError]) -> None:
    err = cls()
    assert err.message
    assert str(err) == err.message
    assert LLMRelayError.from_dict(err.to_dict()).message == err.message


def test_to_dict_leaves_out_empty_data() -> None:
    assert InvalidRequestError("bad").to_dict() == {
        "type": "InvalidRequestError",
        "code": -32001,
        "message": "bad",
    }


def test_data_is_copied_not_shared() -> None:
    data = {"field": "model"}
    err = ModelNotAllowedError("no", data=data)
    data["field"] = "changed"
    assert err.data == {"field": "model"}


@pytest.mark.parametrize("cls", [RateLimitedError, QueueFullError])
def test_retry_after_survives_the_round_trip(cls: type[RateLimitedError]) -> None:
    original = cls("slow down", retry_after=1.5, data={"scope": "openai"})
    assert original.data == {"scope": "openai", "retry_after": 1.5}
    again = LLMRelayError.from_dict(orjson.loads(orjson.dumps(original.to_dict())))
    assert type(again) is cls
    assert isinstance(again, RateLimitedError)
    assert again.retry_after == 1.5
    assert again.data == original.data


def test_integer_retry_after_becomes_a_float() -> None:
    again = LLMRelayError.from_dict({"type": "RateLimitedError", "message": "m", "data": {"retry_after": 3}})
    assert isinstance(again, RateLimitedError)
    assert again.retry_after == 3.0


def test_rate_limited_without_retry_after_has_none() -> None:
    err = RateLimitedError("m")
    assert err.retry_after is None
    assert "data" not in err.to_dict()
    again = LLMRelayError.from_dict(err.to_dict())
    assert isinstance(again, RateLimitedError)
    assert again.retry_after is None


def test_non_numeric_retry_after_is_dropped() -> None:
    again = LLMRelayError.from_dict(
        {"type": "RateLimitedError", "message": "m", "data": {"retry_after": "soon"}}
    )
    assert isinstance(again, RateLimitedError)
    assert again.retry_after is None


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "NoSuchError", "message": "m"},
        {"type": "Exception", "message": "m"},
        {"message": "m"},
        {"type": None, "message": "m"},
    ],
)
def test_unknown_type_becomes_the_base_class(payload: dict[str, object]) -> None:
    again = LLMRelayError.from_dict(payload)
    assert type(again) is LLMRelayError
    assert again.message == "m"


def test_from_dict_ignores_data_that_is_not_a_mapping() -> None:
    again = LLMRelayError.from_dict({"type": "ProviderError", "message": "m", "data": ["x"]})
    assert type(again).__name__ == "ProviderError"
    assert again.data == {}


def test_from_dict_of_an_empty_payload_is_the_base_error_with_its_default_message() -> None:
    again = LLMRelayError.from_dict({})
    assert type(again) is LLMRelayError
    assert again.message


def test_repr_names_the_class_and_message() -> None:
    assert repr(ModelNotAllowedError("nope")) == "ModelNotAllowedError('nope')"
    assert ModelNotAllowedError("nope").type_name == "ModelNotAllowedError"


def test_an_output_validation_error_is_a_provider_error_of_its_own() -> None:
    from llmrelay.shared.errors import OutputValidationError, ProviderError

    assert issubclass(OutputValidationError, ProviderError)
    assert OutputValidationError.code == -32024 and OutputValidationError.http_status == 502
    assert not OutputValidationError.retryable
    original = OutputValidationError("not JSON", data={"raw": "{oops", "field": "response_format"})
    again = LLMRelayError.from_dict(orjson.loads(orjson.dumps(original.to_dict())))
    assert type(again) is OutputValidationError and again.data["raw"] == "{oops"
