"""A stored Responses-API response: the response object as it was returned and the conversation it
closes (input and output as contract messages), so a later request names it by ``previous_response_id``.

Written by the façade under ``keys.stored_response`` with the result TTL when the caller asks for
``store: true``, and read back through :func:`decode_stored_response`, which refuses (``PayloadError``)
what is not such a payload.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from llmrelay.shared.models import Message
from llmrelay.shared.payloads import PayloadError


class StoredResponse(BaseModel):
    """``response``: the Response object (OpenAI's shape); ``messages``: the conversation as of its end,
    without its instructions (a later turn brings its own, as the Responses API defines)."""

    model_config = ConfigDict(extra="forbid")

    response: dict[str, Any]
    messages: list[Message]


def encode_stored_response(stored: StoredResponse) -> bytes:
    return stored.model_dump_json(exclude_none=True).encode()


def decode_stored_response(raw: bytes | str) -> StoredResponse:
    """The stored response in ``raw``; PayloadError when it is not one."""
    try:
        return StoredResponse.model_validate_json(raw)
    except ValidationError as exc:
        raise PayloadError(f"not a stored response ({exc.error_count()} errors)") from None


__all__ = ["StoredResponse", "decode_stored_response", "encode_stored_response"]
