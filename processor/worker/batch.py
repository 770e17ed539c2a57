"""Records in flight between the agent and Kafka: the worker's unit of durability.

The agent processes records one by one, but it waits for Kafka once per batch:

1. Each record's outputs (and dead letters) are handed to the outbox as it is
   processed (`processor.worker.outbox`), which sends them without waiting.
2. Its new contact states stay staged in the partition's `JourneyStore`.
3. When the batch is flushed: the outbox waits for every acknowledgement, then the staged
   states are written to the journeys table (one write per contact, its latest
   state), and only then are the batch's records acked to Faust, whose consumer
   commits an input offset only once every record up to it is acked (and flushes
   its producer, table changelogs included, before committing).

So an input offset is never committed before its outputs are acknowledged and its
states are in the table, and a state is never written before its outputs are
acknowledged; a crash anywhere re-delivers the batch, which re-emits exact copies.

Faust writes a table key to the changelog partition, and RocksDB store, of the
event being processed (`faust.streams.current_event()`). A batch holds records of
several partitions, so each partition's states are written while that partition's
last record of the batch is made the current event (`acting_for`).
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from faust.streams import _current_event

from processor.funnel.outputs import Output
from processor.funnel.state import Attribution


@contextmanager
def acting_for(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event (for table writes) within the block, in this task."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def behind_highwater(consumer: Any, read_to: Mapping[Any, int]) -> bool:
    """Whether a partition being read has records on the broker not yet taken: its high
    watermark (as Faust's consumer last saw it) is past the offset after the last record taken.

    The stream's buffer alone is no guide: Faust hands fetched records to it one by one, so
    it is often empty in the middle of a backlog. Behind the high watermark, more records
    are on their way and a batch can wait for them (FUNNEL_BATCH_WAIT at most); caught up,
    it is flushed at once, so latency stays low at low rates.
    """
    for tp, position in read_to.items():
        try:
            highwater = consumer.highwater(tp)
        except (KeyError, AssertionError, TypeError, ValueError):
            continue
        if highwater is not None and highwater > position:
            return True
    return False


class Batch:
    """Records processed since the last flush, with what must happen before they are acked."""

    def __init__(self) -> None:
        self.records: list[Any] = []  # Faust events, in processing order
        self.last_of: dict[int, Any] = {}  # input partition -> its latest event in the batch
        # Outputs, the clock (s) they left at, and their attributions (for the breakdown metrics).
        self.counted: list[tuple[list[Output], float | None, list[Attribution]]] = []
        # Records taken in partition lists (processor/worker/patches/partitionbatches.py): their
        # offsets by partition and the consumer generation they were fetched in, acked as such.
        self.taken: dict[tuple[Any, int], list[int]] = {}
        self.size = 0
        self.opened = 0.0  # time.monotonic() of the first record

    def __len__(self) -> int:
        return self.size

    def add(self, event: Any, partition: int) -> None:
        if not self.size:
            self.opened = time.monotonic()
        self.size += 1
        self.records.append(event)
        self.last_of[partition] = event

    def offsets_for(self, tp: Any, generation: int) -> list[int]:
        """The list the offsets of records taken in partition lists go to (the caller appends each
        and counts it in `size`); opens the batch if it is empty."""
        if not self.size:
            self.opened = time.monotonic()
        offsets = self.taken.get((tp, generation))
        if offsets is None:
            offsets = self.taken[(tp, generation)] = []
        return offsets

    def age(self) -> float:
        return time.monotonic() - self.opened if self.size else 0.0

    def clear(self) -> None:
        self.records = []
        self.last_of = {}
        self.counted = []
        self.taken = {}
        self.size = 0
