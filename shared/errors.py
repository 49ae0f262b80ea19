"""The one exception hierarchy of llmrelay, with its JSON-RPC codes and a wire form for Redis."""

from __future__ import annotations

from typing import Any, ClassVar

#: Every class of the hierarchy by name, for rebuilding an error from its wire form.
ERRORS_BY_NAME: dict[str, type[LLMRelayError]] = {}


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

    def __init_subclass__(
        cls,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retryable: bool | None = None,
        openai_type: str | None = None,
        **kwargs: Any,
    ) -> None:
        """A subclass states in its header what differs from its parent, and is known by its name."""
        super().__init_subclass__(**kwargs)
        if code is not None:
            cls.code = code
        if http_status is not None:
            cls.http_status = http_status
        if retryable is not None:
            cls.retryable = retryable
        if openai_type is not None:
            cls.openai_type = openai_type
        ERRORS_BY_NAME[cls.__name__] = cls

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


ERRORS_BY_NAME[LLMRelayError.__name__] = LLMRelayError


class InvalidRequestError(LLMRelayError, code=-32001, http_status=400, openai_type="invalid_request_error"):
    """The request is malformed or refused as invalid."""


class ModelNotAllowedError(InvalidRequestError, code=-32002, http_status=403):
    """The model is not in ALLOWED_MODELS."""


class UnknownModelError(InvalidRequestError, code=-32003, http_status=404):
    """The model is not in the catalog."""


class ContextLengthExceededError(InvalidRequestError, code=-32004):
    """The prompt and max_tokens do not fit the model's context window."""


class ModelRetiredError(InvalidRequestError, code=-32007, http_status=410):
    """The provider has retired the model (its shutdown date has passed); ``data["successor"]`` names the
    catalog model to use instead. An operator's catalog may mark a retired model as still served."""


class CapabilityNotSupportedError(InvalidRequestError, code=-32008):
    """The request asks the model for what it cannot do (tools, images, documents, a JSON schema,
    reasoning, or an embedding model for chat); ``data["field"]`` names the request field."""


class AuthenticationError(LLMRelayError, code=-32005, http_status=401, openai_type="authentication_error"):
    """The provider refused the configured credentials (or the façade refused the caller's)."""


class PermissionDeniedError(AuthenticationError, code=-32006, http_status=403):
    """The provider refused access to this resource."""


class RateLimitedError(
    LLMRelayError, code=-32010, http_status=429, retryable=True, openai_type="rate_limit_error"
):
    """A provider or llmrelay's own limiter refused the request for now."""

    def __init__(
        self, message: str = "", *, retry_after: float | None = None, data: dict[str, Any] | None = None
    ) -> None:
        merged = dict(data or {})
        if retry_after is not None:
            merged["retry_after"] = retry_after
        super().__init__(message, data=merged)
        self.retry_after = retry_after


class QueueFullError(RateLimitedError, code=-32011, retryable=False):
    """The provider's queue is at its configured maximum length; try again later."""


class ProviderUnavailableError(LLMRelayError, code=-32020, http_status=503, retryable=True):
    """The provider failed or could not be reached (5xx, overload, connection error, cut stream)."""


class StreamRestartedError(ProviderUnavailableError, code=-32023, retryable=False):
    """A retried attempt produced text or tool calls that differ from what the stream had already yielded."""


class ProviderError(LLMRelayError, code=-32021, http_status=502):
    """The provider answered with an error that fits no other class."""


class ContentFilteredError(LLMRelayError, code=-32022, http_status=400, openai_type="invalid_request_error"):
    """The provider refused to generate the content."""


class RequestTimeoutError(LLMRelayError, code=-32030, http_status=504, retryable=True, openai_type="timeout"):
    """The request's deadline passed before it completed."""


class RequestCancelledError(LLMRelayError, code=-32031, http_status=499):
    """The request was cancelled."""


class DeadLetteredError(LLMRelayError, code=-32032, http_status=500):
    """The job failed too many deliveries and was moved to the dead-letter stream."""


class JobNotFoundError(LLMRelayError, code=-32033, http_status=404, openai_type="not_found_error"):
    """No job or result is known under this request id (never submitted, or expired)."""


class BackendUnavailableError(LLMRelayError, code=-32040, http_status=503):
    """Redis cannot be reached."""


class OutputValidationError(ProviderError, code=-32024):
    """The reply is not the JSON the request's response_format asked for: it does not parse, or does not
    validate against the schema. ``data["raw"]`` holds the reply's text (redacted). Not retried: the
    model answered, and asking again is the caller's choice (a paid call), not a transient fault."""
