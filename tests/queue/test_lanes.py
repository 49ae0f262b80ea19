"""The consumer's lane policy, as a table: what it reads next, and where each read leads."""

from __future__ import annotations

import itertools

import pytest

from llmrelay.worker.lanes import (
    BATCH,
    BLOCK_COUNT,
    CAPPED_BLOCK_MS,
    INTERACTIVE,
    READ_BLOCK_MS,
    Read,
    Step,
    WaitForSlot,
    after,
    next_read,
)

BOTH = (INTERACTIVE, BATCH)


@pytest.mark.parametrize(
    ("step", "free", "batch_room", "expected"),
    [
        # A round polls interactive first, for every free slot.
        (Step.POLL, 4, 2, Read(Step.POLL, (INTERACTIVE,), 4)),
        (Step.POLL, 4, 0, Read(Step.POLL, (INTERACTIVE,), 4)),
        (Step.POLL, 0, 2, WaitForSlot(Step.POLL)),
        (Step.POLL, -1, 2, WaitForSlot(Step.POLL)),
        # Then batch, within its share and the slots the interactive poll left.
        (Step.POLL_BATCH, 3, 2, Read(Step.POLL_BATCH, (BATCH,), 2)),
        (Step.POLL_BATCH, 1, 2, Read(Step.POLL_BATCH, (BATCH,), 1)),
        (Step.POLL_BATCH_LAST, 4, 2, Read(Step.POLL_BATCH_LAST, (BATCH,), 2)),
        # Batch at (or past, after reclaims) its share: no batch poll.
        (Step.POLL_BATCH, 3, 0, Read(Step.POLL, (INTERACTIVE,), 3)),
        (Step.POLL_BATCH, 3, -1, Read(Step.POLL, (INTERACTIVE,), 3)),
        (Step.POLL_BATCH_LAST, 4, 0, Read(Step.BLOCK, (INTERACTIVE,), 1, CAPPED_BLOCK_MS)),
        # Interactive took every slot: once one frees, interactive is polled before batch again.
        (Step.POLL_BATCH, 0, 2, WaitForSlot(Step.POLL)),
        # Both lanes empty: block on both, for at most half the free slots and the batch room.
        (Step.BLOCK, 64, 32, Read(Step.BLOCK, BOTH, BLOCK_COUNT, READ_BLOCK_MS)),
        (Step.BLOCK, 6, 32, Read(Step.BLOCK, BOTH, 3, READ_BLOCK_MS)),
        (Step.BLOCK, 10, 2, Read(Step.BLOCK, BOTH, 2, READ_BLOCK_MS)),
        (Step.BLOCK, 1, 1, Read(Step.BLOCK, BOTH, 1, READ_BLOCK_MS)),
        # Batch at its share: wait on interactive only, briefly, to notice a batch slot freeing.
        (Step.BLOCK, 4, 0, Read(Step.BLOCK, (INTERACTIVE,), 1, CAPPED_BLOCK_MS)),
        # Every slot taken after a blocking read that drained both lanes: block again once one frees.
        (Step.BLOCK, 0, 0, WaitForSlot(Step.BLOCK)),
    ],
)
def test_next_read(step: Step, free: int, batch_room: int, expected: Read | WaitForSlot) -> None:
    assert next_read(step, free, batch_room) == expected


@pytest.mark.parametrize(
    ("read", "got", "expected"),
    [
        (Read(Step.POLL, (INTERACTIVE,), 4), 2, Step.POLL_BATCH),
        (Read(Step.POLL, (INTERACTIVE,), 4), 0, Step.POLL_BATCH_LAST),
        # The interactive poll found work: after batch, a new round, whatever batch gave.
        (Read(Step.POLL_BATCH, (BATCH,), 2), 0, Step.POLL),
        (Read(Step.POLL_BATCH, (BATCH,), 2), 2, Step.POLL),
        # Both polls found nothing: block; batch had some: a new round.
        (Read(Step.POLL_BATCH_LAST, (BATCH,), 2), 0, Step.BLOCK),
        (Read(Step.POLL_BATCH_LAST, (BATCH,), 2), 1, Step.POLL),
        # A blocking read that gave less than it asked of every lane left both empty: block again.
        (Read(Step.BLOCK, BOTH, 8, READ_BLOCK_MS), 0, Step.BLOCK),
        (Read(Step.BLOCK, BOTH, 8, READ_BLOCK_MS), 3, Step.BLOCK),
        # A lane gave all it was asked: it may hold more, poll again.
        (Read(Step.BLOCK, BOTH, 8, READ_BLOCK_MS), 8, Step.POLL),
        # A read of one entry cannot tell whether a lane holds more.
        (Read(Step.BLOCK, BOTH, 1, READ_BLOCK_MS), 0, Step.POLL),
        (Read(Step.BLOCK, (INTERACTIVE,), 1, CAPPED_BLOCK_MS), 0, Step.POLL),
    ],
)
def test_after(read: Read, got: int, expected: Step) -> None:
    assert after(read, got) == expected


def test_only_a_read_of_both_lanes_counts_per_stream() -> None:
    assert Read(Step.BLOCK, BOTH, 8, READ_BLOCK_MS).per_stream
    assert not Read(Step.BLOCK, (INTERACTIVE,), 1, CAPPED_BLOCK_MS).per_stream
    assert not Read(Step.POLL, (INTERACTIVE,), 4).per_stream


@pytest.mark.parametrize("step", list(Step))
def test_never_reads_past_the_free_slots_nor_the_batch_share(step: Step) -> None:
    for free, batch_room in itertools.product(range(-1, 12), range(-2, 12)):
        read = next_read(step, free, batch_room)
        if isinstance(read, WaitForSlot):
            assert free <= 0
            continue
        assert 1 <= read.count <= free
        if BATCH in read.lanes:
            assert read.count <= batch_room
        if read.block_ms is None:
            assert len(read.lanes) == 1  # a poll reads one lane: interactive strictly first


def test_an_idle_consumer_blocks_once_per_job() -> None:
    """At low load the polls run once; after that each job costs one blocking read."""
    reads: list[Read] = []
    step = Step.POLL
    for got in (0, 0, 1, 1, 0):
        read = next_read(step, 64, 32)
        assert isinstance(read, Read)
        reads.append(read)
        step = after(read, got)
    assert [r.step for r in reads] == [Step.POLL, Step.POLL_BATCH_LAST, Step.BLOCK, Step.BLOCK, Step.BLOCK]
    assert all(r.block_ms == READ_BLOCK_MS and r.lanes == BOTH for r in reads[2:])


def test_a_busy_consumer_polls_interactive_before_batch_every_round() -> None:
    reads: list[tuple[tuple[str, ...], int] | None] = []
    step = Step.POLL
    for free, got in ((8, 3), (5, 2), (3, 3), (0, 0), (2, 2)):
        read = next_read(step, free, 4)
        if isinstance(read, WaitForSlot):
            reads.append(None)
            step = read.step
            continue
        reads.append((read.lanes, read.count))
        step = after(read, got)
    assert reads == [
        ((INTERACTIVE,), 8),
        ((BATCH,), 4),
        ((INTERACTIVE,), 3),
        None,  # every slot taken: wait for one
        ((INTERACTIVE,), 2),  # a new round, not the batch poll the full one skipped
    ]
