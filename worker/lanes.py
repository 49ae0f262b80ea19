"""The consumer's lane policy: which lanes to read next, how many entries, and whether to block.

A round of reads polls the interactive lane, then the batch lane within its share of the slots, and
blocks on both only when both polls found nothing; a blocking read that leaves both lanes empty lets
the next round block again at once (one read per job at low load instead of three). The policy is
pure: the consumer loop in ``service`` asks ``next_read`` what to do and tells ``after`` what it got.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

#: How long a blocking read waits before the loop checks whether it should stop.
READ_BLOCK_MS = 500
#: How long the interactive lane is waited on while the batch lane is at its share: briefly, so that a
#: batch slot freed meanwhile is used without waiting out a whole blocking read.
CAPPED_BLOCK_MS = 20
#: Entries per stream a blocking read may return.
BLOCK_COUNT = 8

INTERACTIVE = "interactive"
BATCH = "batch"


class Step(Enum):
    """Where the consumer stands in its round of reads."""

    POLL = "poll"  # a round begins: poll the interactive lane
    POLL_BATCH = "poll batch"  # the interactive poll found entries: poll batch, then a new round
    POLL_BATCH_LAST = "poll batch last"  # the interactive poll found none: poll batch, block if empty
    BLOCK = "block"  # both lanes were found empty: block until either has an entry


@dataclass(frozen=True, slots=True)
class Read:
    """One XREADGROUP: up to ``count`` entries of each of ``lanes``; ``block_ms`` None polls."""

    step: Step
    lanes: tuple[str, ...]
    count: int
    block_ms: int | None = None

    @property
    def per_stream(self) -> bool:
        """Whether what it got is the most entries any one lane gave (rather than the entries started):
        that tells whether a lane may hold more."""
        return len(self.lanes) > 1


@dataclass(frozen=True, slots=True)
class WaitForSlot:
    """Every slot is taken: wait until a job ends, then go on at ``step``."""

    step: Step


def next_read(step: Step, free: int, batch_room: int) -> Read | WaitForSlot:
    """What to read at ``step`` with ``free`` slots, ``batch_room`` of them (or fewer: ``<= 0`` is
    none) left to the batch lane within its share."""
    room = min(free, batch_room)
    match step:
        case Step.POLL:
            return Read(step, (INTERACTIVE,), free) if free > 0 else WaitForSlot(step)
        case Step.POLL_BATCH:
            return Read(step, (BATCH,), room) if room > 0 else next_read(Step.POLL, free, batch_room)
        case Step.POLL_BATCH_LAST:
            return Read(step, (BATCH,), room) if room > 0 else next_read(Step.BLOCK, free, batch_room)
        case Step.BLOCK:  # pragma: no branch - the last of the steps
            if room > 0:
                count = max(1, min(BLOCK_COUNT, free // 2, room))
                return Read(step, (INTERACTIVE, BATCH), count, READ_BLOCK_MS)
            if free > 0:
                return Read(step, (INTERACTIVE,), 1, CAPPED_BLOCK_MS)
            return WaitForSlot(step)


def after(read: Read, got: int) -> Step:
    """The step that follows ``read``: ``got`` is the entries it started, or for a read of several
    lanes (``per_stream``) the most any one of them gave."""
    match read.step:
        case Step.POLL:
            return Step.POLL_BATCH if got > 0 else Step.POLL_BATCH_LAST
        case Step.POLL_BATCH_LAST if got == 0:
            return Step.BLOCK
        case Step.BLOCK if read.per_stream and read.count > 1 and got < read.count:
            return Step.BLOCK
    return Step.POLL
