"""The job envelope carried in a work stream entry, and its codec; the outcome a request's state keeps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import orjson
from pydantic import ValidationError

from llmrelay.shared.catalog import PROVIDERS, Provider
from llmrelay.shared.embeddings import EmbeddingRequest
from llmrelay.shared.errors import InvalidRequestError, LLMRelayError
from llmrelay.shared.keys import LANES, valid_request_id
from llmrelay.shared.models import LLMRequest, LLMResponse, Priority
from llmrelay.shared.payloads import load_object

#: The fields of a work stream entry (``scripts.ENQUEUE`` writes them): the request id, and the encoded
#: Job. The id stands apart so that an entry whose job does not decode can still be dead-lettered by id.
ENTRY_ID: Final = "id"
ENTRY_JOB: Final = "j"
_ENTRY_ID, _ENTRY_JOB = ENTRY_ID.encode(), ENTRY_JOB.encode()


def read_entry(fields: Mapping[bytes, bytes]) -> tuple[str, bytes]:
    """A work stream entry's request id and job payload (``Job.decode`` it); each empty when missing."""
    return fields.get(_ENTRY_ID, b"").decode(errors="replace"), fields.get(_ENTRY_JOB, b"")


#: The job kinds a work stream carries (``k`` in the job; a completion leaves it out).
EMBED: Final = "embed"


def request_payload(request: LLMRequest | EmbeddingRequest) -> dict[str, Any]:
    """The request as compact JSON-ready data: defaults left out (the tags of parts and formats are
    always written, see ``models._Tagged``)."""
    data: dict[str, Any] = request.model_dump(mode="json", exclude_defaults=True)
    return data


@dataclass(slots=True)
class Job:
    """What a worker needs to run one request (a completion, or an embedding); ``model`` and
    ``fallbacks`` are catalog names."""

    request_id: str
    provider: Provider
    model: str
    request: LLMRequest | EmbeddingRequest
    enqueued_at: float
    deadline: float
    stream: bool = True
    lane: Priority = "interactive"
    fallbacks: list[str] = field(default_factory=list)

    def encode(self) -> bytes:
        kind = {"k": EMBED} if isinstance(self.request, EmbeddingRequest) else {}
        return orjson.dumps(
            {
                **kind,
                "id": self.request_id,
                "p": self.provider,
                "m": self.model,
                "r": request_payload(self.request),
                "t": self.enqueued_at,
                "d": self.deadline,
                "s": self.stream,
                "l": self.lane,
                "f": self.fallbacks,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> Job:
        """Parse a job; anything malformed is an InvalidRequestError, never a crash."""
        try:
            data: dict[str, Any] = orjson.loads(raw)
            provider = data["p"]
            if provider not in PROVIDERS:
                raise InvalidRequestError(f"job names unknown provider {provider!r}")
            request_id = data["id"]
            if not isinstance(request_id, str) or not valid_request_id(request_id):
                raise InvalidRequestError("job id is not a valid request id")
            kind = data.get("k")
            if kind not in (None, EMBED):
                raise InvalidRequestError(f"job names unknown kind {kind!r}")
            request_model = EmbeddingRequest if kind == EMBED else LLMRequest
            lane = data.get("l", "interactive")
            if lane not in LANES:
                raise InvalidRequestError(f"job names unknown lane {lane!r}")
            return cls(
                request_id=request_id,
                provider=provider,
                model=str(data["m"]),
                request=request_model.model_validate(data["r"]),
                enqueued_at=float(data["t"]),
                deadline=float(data["d"]),
                stream=bool(data.get("s", True)),
                lane=lane,
                fallbacks=[str(m) for m in data.get("f", [])],
            )
        except InvalidRequestError:
            raise
        except ValidationError as exc:
            raise InvalidRequestError(
                "job payload does not validate",
                data={"errors": exc.errors(include_url=False, include_input=False)},
            ) from None
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            raise InvalidRequestError(f"job payload does not decode: {type(exc).__name__}") from None


# -- the outcome a request's state keeps once it has ended (``result`` or ``error``, see ``scripts``) --


def encode_result(response: LLMResponse) -> bytes:
    return response.__pydantic_serializer__.to_json(response)


def decode_result(raw: bytes | str) -> LLMResponse:
    """The stored completion; InvalidRequestError when the id holds another kind of result."""
    try:
        return LLMResponse.model_validate_json(raw)
    except ValidationError:
        raise InvalidRequestError(
            "this request_id already names a request that is not a completion", data={"field": "request_id"}
        ) from None


def encode_error(error: LLMRelayError) -> bytes:
    return orjson.dumps(error.to_dict())


def decode_error(raw: bytes | str) -> dict[str, Any]:
    """The stored error's wire form (``LLMRelayError.from_dict`` rebuilds the error); PayloadError when
    it is not a JSON object."""
    return load_object(raw, "a stored error")
