"""Every exception class of the three SDKs and of httpx2 is translated into the shared hierarchy."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import anthropic
import httpx2
import openai
import pytest
from google.genai import errors as genai_errors
from provider_test_support import CANARY_KEYS

from llmrelay.shared.errors import (
    AuthenticationError,
    ContextLengthExceededError,
    InvalidRequestError,
    LLMRelayError,
    PermissionDeniedError,
    ProviderError,
    ProviderUnavailableError,
    RateLimitedError,
    RequestTimeoutError,
    UnknownModelError,
)
from llmrelay.shared.redaction import register_secrets
from llmrelay.worker.providers import anthropic as anthropic_adapter
from llmrelay.worker.providers import gemini as gemini_adapter
from llmrelay.worker.providers import openai as openai_adapter

Translate = Callable[[BaseException], LLMRelayError]

TRANSLATORS: dict[str, Translate] = {
    "openai": openai_adapter._translate,
    "anthropic": anthropic_adapter._translate,
    "gemini": gemini_adapter._translate,
}

#: What a provider's HTTP status means for the worker; the spec the walk checks every class against.
EXPECTED_BY_STATUS: dict[int, type[LLMRelayError]] = {
    400: InvalidRequestError,
    401: AuthenticationError,
    402: ProviderError,
    403: PermissionDeniedError,
    404: UnknownModelError,
    408: RequestTimeoutError,
    409: ProviderError,
    412: ProviderError,
    413: InvalidRequestError,
    418: ProviderError,
    422: InvalidRequestError,
    429: RateLimitedError,
    431: ProviderError,
    499: ProviderError,
    500: ProviderUnavailableError,
    501: ProviderUnavailableError,
    502: ProviderUnavailableError,
    503: ProviderUnavailableError,
    504: ProviderUnavailableError,
    529: ProviderUnavailableError,
}


@pytest.fixture(autouse=True, scope="module")
def _canaries_registered() -> None:
    # The adapters register their key at construction; these tests build no adapter.
    register_secrets(CANARY_KEYS.values())


def _subclasses(root: type[BaseException]) -> Iterator[type[BaseException]]:
    seen: set[type[BaseException]] = set()
    stack = [root]
    while stack:
        cls = stack.pop()
        if cls in seen:
            continue
        seen.add(cls)
        # The SDK's own classes: other libraries loaded in the same process (litellm, in the compat
        # suite) subclass them, and what they raise never reaches an adapter.
        if cls.__module__.split(".")[0] == root.__module__.split(".")[0]:
            yield cls
        stack.extend(cls.__subclasses__())


def _request() -> httpx2.Request:
    return httpx2.Request("POST", "http://127.0.0.1:9/v1/anything")


def _response(status: int, headers: dict[str, str] | None = None, body: Any = None) -> httpx2.Response:
    return httpx2.Response(status, headers=headers or {}, json=body, request=_request())


def _bare(cls: type[BaseException], message: str) -> BaseException:
    """An instance of a class whose constructor wants objects a test cannot sensibly make."""
    exc = cls.__new__(cls)
    BaseException.__init__(exc, message)
    return exc


def _status_of(cls: type[BaseException], default: int) -> int:
    for klass in cls.__mro__:
        status = klass.__dict__.get("status_code")
        if isinstance(status, int):
            return status
    return default


def _assert_clean(error: LLMRelayError, key: str) -> None:
    assert isinstance(error, LLMRelayError)
    for text in (str(error), repr(error), json.dumps(error.to_dict())):
        assert key not in text
        assert "Traceback" not in text


# -- openai -------------------------------------------------------------------------------------------


def _openai_instance(cls: type[BaseException], key: str) -> tuple[BaseException, type[LLMRelayError]]:
    message = f"Incorrect API key provided: {key}"
    if issubclass(cls, openai.APIStatusError):
        status = _status_of(cls, 500 if issubclass(cls, openai.InternalServerError) else 418)
        body = {"error": {"message": message, "type": "x", "code": None}}
        response = _response(status, {"retry-after": "7"}, body)
        if cls is openai.OAuthError:
            return cls(response=response, body=body), EXPECTED_BY_STATUS[status]  # type: ignore[call-arg]
        return cls(message, response=response, body=body), EXPECTED_BY_STATUS[status]  # type: ignore[call-arg]
    if issubclass(cls, openai.APITimeoutError):
        return cls(request=_request()), RequestTimeoutError  # type: ignore[call-arg]
    if issubclass(cls, openai.APIConnectionError):
        return cls(message=message, request=_request()), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, openai.APIResponseValidationError):
        return cls(_response(200), None, message=message), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, openai.APIError):
        # An error event inside a stream: without a known code, a failure on the provider's side.
        exc = cls(message, _request(), body={"message": message})  # type: ignore[call-arg]
        return exc, ProviderUnavailableError
    return _bare(cls, message), ProviderError


def test_every_openai_exception_is_translated() -> None:
    key = CANARY_KEYS["openai"]
    classes = list(_subclasses(openai.OpenAIError))
    assert len(classes) > 20
    for cls in classes:
        exc, expected = _openai_instance(cls, key)
        error = openai_adapter._translate(exc)
        assert type(error) is expected, cls
        _assert_clean(error, key)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"type": "server_error", "message": "boom"}, ProviderUnavailableError),
        ({"code": "rate_limit_exceeded", "message": "slow down"}, RateLimitedError),
        ({"code": "context_length_exceeded", "message": "too long"}, ContextLengthExceededError),
        ({"code": "invalid_prompt", "message": "no"}, InvalidRequestError),
        ({"code": "something_new", "message": "?"}, ProviderUnavailableError),
        (None, ProviderUnavailableError),
    ],
)
def test_openai_errors_inside_a_stream_map_by_their_code(
    body: dict[str, str] | None, expected: type[LLMRelayError]
) -> None:
    error = openai_adapter._translate(openai.APIError("streamed error", _request(), body=body))
    assert type(error) is expected
    assert error.data["status"] == 200


def test_openai_exhausted_quota_is_not_a_rate_limit_to_wait_out() -> None:
    # The SDK hands the exception the body's inner "error" object.
    body = {
        "message": "You exceeded your current quota",
        "type": "insufficient_quota",
        "code": "insufficient_quota",
    }
    exc = openai.RateLimitError("quota", response=_response(429, {"retry-after": "1"}, body), body=body)
    error = openai_adapter._translate(exc)
    assert type(error) is ProviderError
    assert not error.retryable
    assert error.data["status"] == 429


def test_openai_cut_stream_is_unwrapped_to_its_httpx2_cause() -> None:
    wrapped = openai.APIConnectionError(request=_request())
    wrapped.__cause__ = httpx2.RemoteProtocolError("peer closed connection")
    error = openai_adapter._translate(wrapped)
    assert type(error) is ProviderUnavailableError
    assert "RemoteProtocolError" in error.message


def test_openai_read_timeout_inside_a_stream_is_a_timeout() -> None:
    wrapped = openai.APIConnectionError(request=_request())
    wrapped.__cause__ = httpx2.ReadTimeout("read timed out")
    assert type(openai_adapter._translate(wrapped)) is RequestTimeoutError


# -- anthropic ----------------------------------------------------------------------------------------


def _anthropic_instance(cls: type[BaseException], key: str) -> tuple[BaseException, type[LLMRelayError]]:
    message = f"invalid x-api-key: {key}"
    if issubclass(cls, anthropic.APIStatusError):
        status = _status_of(cls, 500 if issubclass(cls, anthropic.InternalServerError) else 418)
        body = {"type": "error", "error": {"type": "x", "message": message}}
        response = _response(status, {"retry-after-ms": "1500"}, body)
        return cls(message, response=response, body=body), EXPECTED_BY_STATUS[status]  # type: ignore[call-arg]
    if issubclass(cls, anthropic.APITimeoutError):
        return cls(request=_request()), RequestTimeoutError  # type: ignore[call-arg]
    if issubclass(cls, anthropic.APIConnectionError):
        return cls(message=message, request=_request()), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, anthropic.APIResponseValidationError):
        return cls(_response(200), None, message=message), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, anthropic.APIError):
        return cls(message, _request(), body=None), ProviderUnavailableError  # type: ignore[call-arg]
    return _bare(cls, message), ProviderError


def test_every_anthropic_exception_is_translated() -> None:
    key = CANARY_KEYS["anthropic"]
    classes = list(_subclasses(anthropic.AnthropicError))
    assert len(classes) > 30
    for cls in classes:
        exc, expected = _anthropic_instance(cls, key)
        error = anthropic_adapter._translate(exc)
        assert type(error) is expected, cls
        _assert_clean(error, key)


def test_anthropic_overload_is_unavailable_with_retry_after() -> None:
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    response = _response(529, {"retry-after": "4"}, body)
    error = anthropic_adapter._translate(
        anthropic.OverloadedError("Overloaded", response=response, body=body)
    )
    assert type(error) is ProviderUnavailableError
    assert error.data == {
        "provider": "anthropic",
        "status": 529,
        "code": "overloaded_error",
        "retry_after": 4.0,
    }


@pytest.mark.parametrize(
    ("error_type", "expected"),
    [
        ("overloaded_error", ProviderUnavailableError),
        ("api_error", ProviderUnavailableError),
        ("rate_limit_error", RateLimitedError),
        ("invalid_request_error", InvalidRequestError),
        ("something_new", ProviderUnavailableError),
    ],
)
def test_anthropic_error_event_inside_a_stream_maps_by_its_type(
    error_type: str, expected: type[LLMRelayError]
) -> None:
    body = {"type": "error", "error": {"type": error_type, "message": "in stream"}}
    exc = anthropic.APIStatusError(str(body), response=_response(200), body=body)
    error = anthropic_adapter._translate(exc)
    assert type(error) is expected
    assert error.data["status"] == 200


def test_anthropic_prompt_too_long_is_context_length_exceeded() -> None:
    body = {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "prompt is too long: 210000 tokens > 200000 maximum",
        },
    }
    exc = anthropic.BadRequestError("x", response=_response(400, body=body), body=body)
    assert type(anthropic_adapter._translate(exc)) is ContextLengthExceededError


# -- google-genai -------------------------------------------------------------------------------------


def test_every_genai_exception_is_translated() -> None:
    key = CANARY_KEYS["gemini"]
    classes = list(_subclasses(genai_errors.APIError))
    assert {genai_errors.ClientError, genai_errors.ServerError} <= set(classes)
    for cls in classes:
        codes = {
            genai_errors.ClientError: [400, 401, 403, 404, 408, 409, 413, 422, 429],
            genai_errors.ServerError: [500, 502, 503, 504],
        }.get(cls, [418, 500])
        for code in codes:
            body = {"error": {"code": code, "message": f"API key not valid: {key}", "status": "X"}}
            exc = cls(code, body, _response(code, {}, body))
            error = gemini_adapter._translate(exc)
            assert type(error) is EXPECTED_BY_STATUS[code], (cls, code)
            assert error.data["status"] == code
            _assert_clean(error, key)


def test_genai_429_reads_retry_info_when_no_header_is_sent() -> None:
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2.5s"}],
        }
    }
    error = gemini_adapter._translate(genai_errors.ClientError(429, body, _response(429, {}, body)))
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == 2.5


def test_genai_error_without_a_code_is_a_bad_gateway() -> None:
    error = gemini_adapter._translate(genai_errors.APIError(0, {"message": "odd"}, None))
    assert type(error) is ProviderUnavailableError
    assert error.data["status"] == 502


# -- httpx2 (raised raw by google-genai and by anthropic inside streams) ------------------------------


def _httpx2_instance(cls: type[BaseException]) -> tuple[BaseException, type[LLMRelayError]]:
    if issubclass(cls, httpx2.HTTPStatusError):
        return cls("bad", request=_request(), response=_response(503)), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, httpx2.TimeoutException):
        return cls("timed out", request=_request()), RequestTimeoutError  # type: ignore[call-arg]
    if issubclass(cls, httpx2.TransportError):
        return cls("dropped", request=_request()), ProviderUnavailableError  # type: ignore[call-arg]
    if issubclass(cls, httpx2.RequestError):
        return cls("bad reply", request=_request()), ProviderError  # type: ignore[call-arg]
    if issubclass(cls, httpx2.StreamError) and cls is not httpx2.StreamError:
        return cls(), ProviderError
    return cls("odd"), ProviderError  # type: ignore[call-arg]


def _httpx2_classes() -> list[type[BaseException]]:
    classes: list[type[BaseException]] = []
    for root in (httpx2.HTTPError, httpx2.StreamError, httpx2.InvalidURL, httpx2.CookieConflict):
        classes.extend(cls for cls in _subclasses(root) if cls not in classes)
    return classes


@pytest.mark.parametrize("provider", sorted(TRANSLATORS))
def test_every_httpx2_exception_is_translated(provider: str) -> None:
    classes = _httpx2_classes()
    assert {httpx2.RemoteProtocolError, httpx2.ReadError, httpx2.ConnectError, httpx2.PoolTimeout} <= set(
        classes
    )
    for cls in classes:
        exc, expected = _httpx2_instance(cls)
        error = TRANSLATORS[provider](exc)
        assert type(error) is expected, cls
        assert error.data["provider"] == provider


@pytest.mark.parametrize("provider", sorted(TRANSLATORS))
def test_anything_else_becomes_a_provider_error_naming_only_its_type(provider: str) -> None:
    error = TRANSLATORS[provider](ValueError(f"odd reply {CANARY_KEYS['openai']}"))
    assert type(error) is ProviderError
    assert "ValueError" in error.message
    _assert_clean(error, CANARY_KEYS["openai"])
