"""Bulk workloads: a batch is many requests fed into the batch lane at the pace the queue accepts.

A batch's requests are stored in Redis at submission; a feeder (an arq job, run by whichever worker
takes it) moves them into the providers' batch streams as room frees up (the streams never hold more
than ``LLMRELAY_MAX_QUEUE_LENGTH``), checkpointing how far it got, so that a feeder that dies is
resumed by another without losing or doubling any item (items carry fixed request ids and enqueueing
is idempotent). Each item then lives as an ordinary request: its deadline counts from when it is fed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field

from llmrelay.shared.jobs import request_payload
from llmrelay.shared.keys import PREFIX
from llmrelay.shared.models import LLMRequest, LLMResponse
from llmrelay.shared.payloads import PayloadError

#: Items a batch may hold. Through the façade, a submission is one HTTP body: at the default
#: LLMRELAY_MAX_BODY_BYTES (1 MiB) that is a few thousand short prompts; raise it for larger batches.
MAX_BATCH_ITEMS = 50_000
#: The arq function that feeds a batch, and the arq queue the workers' arq workers consume.
FEED_FUNCTION = "feed_batch"
ARQ_QUEUE = f"{PREFIX}:arq"

BatchState = Literal["feeding", "running", "done", "cancelled"]
ItemStatus = Literal["pending", "queued", "running", "done", "failed", "cancelled", "expired", "dead"]
_BATCH_STATES: frozenset[str] = frozenset(get_args(BatchState))


def meta_key(batch_id: str) -> str:
    """Hash: a ``BatchMeta``."""
    return f"{PREFIX}:batch:{batch_id}"


def items_key(batch_id: str) -> str:
    """List, in submission order: each item's provider and request id (``encode_item``)."""
    return f"{PREFIX}:batch:{batch_id}:items"


def requests_key(batch_id: str) -> str:
    """List, in submission order: each item's request (``encode_request``), read by the feeder."""
    return f"{PREFIX}:batch:{batch_id}:requests"


#: Fields of the batch's hash that are written one at a time: the feeder's checkpoint, and the state
#: (which ``scripts.CANCEL_BATCH`` sets to cancelled).
STATE_FIELD = "state"
FED_FIELD = "fed"


@dataclass(frozen=True, slots=True)
class BatchMeta:
    """A batch's hash: its state, how many items it holds, how many are fed (moved into the streams so
    far), and when it was submitted."""

    state: BatchState
    total: int
    fed: int = 0
    created: float = 0.0

    def encode(self) -> dict[str, str | int | float]:
        return {STATE_FIELD: self.state, "total": self.total, FED_FIELD: self.fed, "created": self.created}

    @classmethod
    def decode(cls, raw: Mapping[bytes, bytes]) -> BatchMeta:
        """The batch in an HGETALL reply; PayloadError when it holds none (an empty reply: no such batch)."""
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        state = fields.get(STATE_FIELD)
        if state not in _BATCH_STATES:
            raise PayloadError(f"not a batch's state: {state!r}")
        try:
            return cls(
                state=cast(BatchState, state),
                total=int(fields["total"]),
                fed=int(fields.get(FED_FIELD, 0)),
                created=float(fields.get("created", 0.0)),
            )
        except KeyError as exc:
            raise PayloadError(f"a batch without {exc}") from None
        except ValueError as exc:
            raise PayloadError(f"a batch's figures do not parse: {exc}") from None


def encode_item(provider: str, request_id: str) -> str:
    return f"{provider}|{request_id}"


def decode_item(raw: bytes) -> tuple[str, str]:
    """``(provider, request id)`` of an entry of ``items_key``."""
    provider, _, request_id = raw.decode().partition("|")
    return provider, request_id


def encode_request(request: LLMRequest) -> str:
    return orjson.dumps(request_payload(request)).decode()


def decode_request(raw: bytes | str) -> LLMRequest:
    """An entry of ``requests_key``."""
    return LLMRequest.model_validate_json(raw)


class BatchStatus(BaseModel):
    """Progress of a batch: how many items are in each state."""

    model_config = ConfigDict(extra="forbid")

    batch_id: str
    state: BatchState
    total: int
    fed: int
    counts: dict[str, int] = Field(default_factory=dict)
    completed: int = 0
    created_at: float = 0.0

    @property
    def finished(self) -> bool:
        """Every item has its outcome (a cancelled batch's items that were never fed count as cancelled)."""
        return self.completed >= self.total


class BatchItem(BaseModel):
    """One item's outcome, in submission order."""

    model_config = ConfigDict(extra="forbid")

    index: int
    request_id: str
    status: ItemStatus
    response: LLMResponse | None = None
    error: dict[str, Any] | None = None


TERMINAL_ITEM_STATES = frozenset({"done", "failed", "cancelled", "expired", "dead"})
