"""The one exception hierarchy of llmrelay, with its JSON-RPC codes and a wire form for Redis."""

from __future__ import annotations

from typing import Any, ClassVar


class LLMRelayError(Exception):
    """Base of every error llmrelay raises to a caller.

    ``code`` is the JSON-RPC error code (service range -32000..-32099), ``http_status`` the status the
    HTTP façade answers with, ``retryable`` whether a worker may try the provider call again.
    Messages must never carry a secret: provider text is redacted before it becomes one of these.
    """

    code: ClassVar[int] = -32000
    http_status: ClassVar[int] = 500
    retryable: ClassVar[bool] = False
    openai_type: ClassVar[str] = "server_error"

    def __init__(self, message: str = "", *, data: dict[str, Any] | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        self.message = str(self.args[0])
        self.data: dict[str, Any] = dict(data or {})
        #: The index of the error event that carried this error to a caller, when it came as one.
        self.event_index: int | None = None

    @property
    def type_name(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        """The wire form carried in Redis events and in JSON-RPC ``error.data``."""
        out: dict[str, Any] = {"type": self.type_name, "code": self.code, "message": self.message}
        if self.data:
            out["data"] = self.data
        return out

    @staticmethod
    def from_dict(payload: dict[str, Any]) -> LLMRelayError:
        """Rebuild the error a worker reported; an unknown type becomes the base class."""
        cls = ERRORS_BY_NAME.get(str(payload.get("type", "")), LLMRelayError)
        data = payload.get("data")
        err = cls(str(payload.get("message", "")), data=data if isinstance(data, dict) else None)
        if isinstance(err, RateLimitedError) and err.retry_after is None:
            raw = err.data.get("retry_after")
            err.retry_after = float(raw) if isinstance(raw, int | float) else None
        return err

    def __repr__(self) -> str:
        return f"{self.type_name}({self.message!r})"


class InvalidRequestError(LLMRelayError):
    """The request is malformed or refused as invalid."""

    code = -32001
    http_status = 400
    openai_type = "invalid_request_error"


class ModelNotAllowedError(InvalidRequestError):
    """The model is not in ALLOWED_MODELS."""

    code = -32002
    http_status = 403


class UnknownModelError(InvalidRequestError):
    """The model is not in the catalog."""

    code = -32003
    http_status = 404


class ContextLengthExceededError(InvalidRequestError):
    """The prompt and max_tokens do not fit the model's context window."""

    code = -32004


class AuthenticationError(LLMRelayError):
    """The provider refused the configured credentials (or the façade refused the caller's)."""

    code = -32005
    http_status = 401
    openai_type = "authentication_error"


class PermissionDeniedError(AuthenticationError):
    """The provider refused access to this resource."""

    code = -32006
    http_status = 403


class RateLimitedError(LLMRelayError):
    """A provider or llmrelay's own limiter refused the request for now."""

    code = -32010
    http_status = 429
    retryable = True
    openai_type = "rate_limit_error"

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, data: dict[str, Any] | None = None
    ) -> None:
        merged = dict(data or {})
        if retry_after is not None:
            merged["retry_after"] = retry_after
        super().__init__(message, data=merged)
        self.retry_after = retry_after


class QueueFullError(RateLimitedError):
    """The provider's queue is at its configured maximum length; try again later."""

    code = -32011
    retryable = False


class ProviderUnavailableError(LLMRelayError):
    """The provider failed or could not be reached (5xx, overload, connection error, cut stream)."""

    code = -32020
    http_status = 503
    retryable = True


class StreamRestartedError(ProviderUnavailableError):
    """A retried attempt produced text that differs from what the stream had already yielded."""

    code = -32023
    retryable = False


class ProviderError(LLMRelayError):
    """The provider answered with an error that fits no other class."""

    code = -32021
    http_status = 502


class ContentFilteredError(LLMRelayError):
    """The provider refused to generate the content."""

    code = -32022
    http_status = 400
    openai_type = "invalid_request_error"


class RequestTimeoutError(LLMRelayError):
    """The request's deadline passed before it completed."""

    code = -32030
    http_status = 504
    retryable = True
    openai_type = "timeout"


class RequestCancelledError(LLMRelayError):
    """The request was cancelled."""

    code = -32031
    http_status = 499


class DeadLetteredError(LLMRelayError):
    """The job failed too many deliveries and was moved to the dead-letter stream."""

    code = -32032
    http_status = 500


class JobNotFoundError(LLMRelayError):
    """No job or result is known under this request id (never submitted, or expired)."""

    code = -32033
    http_status = 404
    openai_type = "not_found_error"


class BackendUnavailableError(LLMRelayError):
    """Redis cannot be reached."""

    code = -32040
    http_status = 503


ERRORS_BY_NAME: dict[str, type[LLMRelayError]] = {
    cls.__name__: cls
    for cls in (
        LLMRelayError,
        InvalidRequestError,
        ModelNotAllowedError,
        UnknownModelError,
        ContextLengthExceededError,
        AuthenticationError,
        PermissionDeniedError,
        RateLimitedError,
        QueueFullError,
        ProviderUnavailableError,
        StreamRestartedError,
        ProviderError,
        ContentFilteredError,
        RequestTimeoutError,
        RequestCancelledError,
        DeadLetteredError,
        JobNotFoundError,
        BackendUnavailableError,
    )
}
