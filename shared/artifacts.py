"""What a provider attached to a tool call and wants back on the next turn, as stored in Redis.

Callers that speak a stateless format (OpenAI chat: ``tool_calls`` with ids, results with
``tool_call_id``; or our own ``LLMRequest``) send back only the call ids, but some providers need more
to continue a tool loop:

- Gemini puts a ``thoughtSignature`` on ``functionCall`` parts; Gemini 3 models must get it back on the
  next turn or answer 400 (ai.google.dev/gemini-api/docs/thought-signatures, read 2026-12-01: "When
  using Gemini 3 models, you must pass back thought signatures during function calling, otherwise you
  will get a validation error (4xx status code)"; with parallel calls only the first part has one).
- Anthropic, with extended thinking on, answers a tool call with ``thinking`` / ``redacted_thinking``
  blocks before its ``tool_use`` blocks; the assistant turn sent back must start with them, unmodified
  (platform.claude.com/docs/en/build-with-claude/extended-thinking, "Preserving thinking blocks", read
  2026-12-01; otherwise 400 "a final `assistant` message must start with a thinking block").
- OpenAI's Responses API, called with ``store: false``, returns reasoning items only when asked with
  ``include: ["reasoning.encrypted_content"]``; they are to be passed back before the function calls
  of a tool loop (platform.openai.com/docs/api-reference/responses/create, ``include``, read
  2026-12-01: "enables reasoning items to be used in multi-turn conversations when using the Responses
  API statelessly").

The worker keeps each call's artifacts under :func:`artifact_key`, for the result TTL, and the adapter
re-attaches them in the provider's own form when a later request's assistant turn carries that call id.
The key is a digest of the call id and its scope: provider, model, the caller's ``source_agent`` and
``session_id``, and the conversation before the call (the request that produced it). Only a request
that replays that very conversation, in the same caller's name, on the same model, finds the record;
what the provider issued for one conversation is never offered to another.

A record holds only what the provider needs back: a Gemini signature, or the provider's own blocks
(Anthropic thinking blocks, OpenAI reasoning items with their encrypted content and without summary
text). Never a key; nothing here is logged.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from llmrelay.shared import keys
from llmrelay.shared.models import LLMRequest, Message
from llmrelay.shared.payloads import PayloadError, load_object

if TYPE_CHECKING:
    from _hashlib import HASH

#: Bumped when the record's shape changes: a record of another version reads as missing.
VERSION = 1


@dataclass(frozen=True, slots=True)
class CallArtifacts:
    """What one tool call carried: a Gemini ``thoughtSignature`` (base64, as the wire has it), and/or
    the provider-native blocks that came before the call in the reply (in order)."""

    signature: str | None = None
    blocks: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def __bool__(self) -> bool:
        return self.signature is not None or bool(self.blocks)


def encode_artifacts(artifacts: CallArtifacts) -> bytes:
    record: dict[str, Any] = {"v": VERSION}
    if artifacts.signature is not None:
        record["sig"] = artifacts.signature
    if artifacts.blocks:
        record["pre"] = list(artifacts.blocks)
    return orjson.dumps(record)


def decode_artifacts(raw: bytes | str) -> CallArtifacts:
    """The record in ``raw``; PayloadError when it is not one (or is of another version)."""
    data = load_object(raw, "a tool-call artifact record")
    if data.get("v") != VERSION:
        raise PayloadError("a tool-call artifact record of another version")
    signature = data.get("sig")
    blocks = data.get("pre", [])
    if signature is not None and not _is_base64(signature):
        raise PayloadError("a tool-call artifact's signature is base64 text")
    if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
        raise PayloadError("a tool-call artifact's blocks are a list of objects")
    return CallArtifacts(signature, tuple(blocks))


def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        base64.b64decode(value, validate=True)
    except ValueError:
        return False
    return True


def conversation_digest(request: LLMRequest, provider: str, model: str, messages: Sequence[Message]) -> str:
    """The scope of the calls an assistant turn makes after ``messages``: who asks, on which model,
    after which conversation (every field of every message but the system ones, in a canonical form)."""
    digest = _scope_start(request, provider, model)
    for message in messages:
        _add(digest, message)
    return digest.hexdigest()


def artifact_key(provider: str, scope: str, call_id: str) -> str:
    """The Redis key of one call's record in ``scope`` (a :func:`conversation_digest`)."""
    return keys.tool_artifacts(provider, hashlib.sha256(f"{scope}\x00{call_id}".encode()).hexdigest())


def turn_scopes(request: LLMRequest, provider: str, model: str) -> dict[str, str]:
    """Each tool call id of the request's assistant turns -> the scope it was stored in (one pass: each
    turn's scope is the running digest of the messages before it)."""
    out: dict[str, str] = {}
    if not any(message.tool_calls for message in request.messages):
        return out
    digest = _scope_start(request, provider, model)
    for message in request.messages:
        if message.tool_calls:
            scope = digest.copy().hexdigest()
            for call in message.tool_calls:
                out[call.id] = scope
        _add(digest, message)
    return out


def _scope_start(request: LLMRequest, provider: str, model: str) -> HASH:
    digest = hashlib.sha256()
    for part in (provider, model, request.source_agent or "", request.session_id or ""):
        digest.update(part.encode())
        digest.update(b"\x00")
    return digest


def _add(digest: HASH, message: Message) -> None:
    # System messages are not part of the scope: agent frameworks rewrite them between turns (a handoff
    # brings the next agent's instructions, a prompt may carry the date), and the provider does not sign
    # them. What the model saw of the conversation (user, assistant and tool turns) is.
    if message.role == "system":
        return
    digest.update(orjson.dumps(message.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS))
    digest.update(b"\x00")


__all__ = [
    "CallArtifacts",
    "artifact_key",
    "conversation_digest",
    "decode_artifacts",
    "encode_artifacts",
    "turn_scopes",
]
