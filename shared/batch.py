"""Bulk workloads: a batch is many requests fed into the batch lane at the pace the queue accepts.

A batch's requests are stored in Redis at submission; a feeder (an arq job, run by whichever worker
takes it) moves them into the providers' batch streams as room frees up (the streams never hold more
than ``LLMRELAY_MAX_QUEUE_LENGTH``), checkpointing how far it got, so that a feeder that dies is
resumed by another without losing or doubling any item (items carry fixed request ids and enqueueing
is idempotent). Each item then lives as an ordinary request: its deadline counts from when it is fed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from llmrelay.shared.keys import PREFIX
from llmrelay.shared.models import LLMResponse

#: Items a batch may hold. Through the façade, a submission is one HTTP body: at the default
#: LLMRELAY_MAX_BODY_BYTES (1 MiB) that is a few thousand short prompts; raise it for larger batches.
MAX_BATCH_ITEMS = 50_000
#: The arq function that feeds a batch, and the arq queue the workers' arq workers consume.
FEED_FUNCTION = "feed_batch"
ARQ_QUEUE = f"{PREFIX}:arq"

BatchState = Literal["feeding", "running", "done", "cancelled"]
ItemStatus = Literal["pending", "queued", "running", "done", "failed", "cancelled", "expired", "dead"]


def meta_key(batch_id: str) -> str:
    """Hash: state, total, fed (items moved into the streams so far), created, ttl."""
    return f"{PREFIX}:batch:{batch_id}"


def items_key(batch_id: str) -> str:
    """List, in submission order: ``<provider>|<request id>`` of each item."""
    return f"{PREFIX}:batch:{batch_id}:items"


def requests_key(batch_id: str) -> str:
    """List, in submission order: each item's LLMRequest as JSON, read by the feeder."""
    return f"{PREFIX}:batch:{batch_id}:requests"


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
