"""What one input partition owns in this worker, in one object.

As Kafka Streams gives each input partition a `StreamTask`, the journeys agent keeps a
`PartitionTask` per partition it has taken on: the partition's engine (the pure core's
`Engine` over its contacts), the store the engine reads and writes its states through,
the changelog writer under that store (at-least-once; with exactly_once the table writes
through Faust and there is none), and the partition's idle clock. It is created on the
partition's first record or tick after an assignment (`Tasks.for_partition`) and
dropped whole when the partition is revoked (`Tasks.drop`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from processor.funnel.definition import Funnel
from processor.funnel.engine import Engine
from processor.funnel.state import Limits
from processor.worker.outbox import KafkaOutbox, default_partition
from processor.worker.state.entry import Layout
from processor.worker.state.sourcemarks import SourceMarks
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import Entry, JourneyStore, Stored, stored_by_partition
from processor.worker.state.tablewrites import BatchedTable

log = logging.getLogger(__name__)


@dataclass
class PartitionClock:
    """What a partition's idle clock needs, beyond its engine."""

    latest: int | None = None  # largest occurred_at seen (µs)
    wall_at_latest: float = 0.0  # wall time when `latest` was last raised
    last_wall: float = 0.0  # wall time of the last touchpoint processed here
    next_offset: int | None = None  # offset after the last touchpoint processed here
    saved: tuple[int, float] | None = None  # what the clocks table holds


@dataclass(eq=False)
class PartitionTask:
    """One input partition's engine, store, changelog writer and clock."""

    partition: int
    engine: Engine
    store: JourneyStore
    changelog: BatchedTable | None  # None with exactly_once: Faust's table writes the changelog
    clock: PartitionClock


class Tasks:
    """This worker's partition tasks: made on a partition's first record or tick after an
    assignment (`for_partition`), dropped whole when it is revoked (`drop`)."""

    def __init__(
        self,
        funnels: Sequence[Funnel],
        limits: Limits,
        journeys: MutableMapping[bytes, bytes],
        clocks: Mapping[bytes, bytes],
        outbox: Any,
        stage_counts: StageCounts,
        marks: SourceMarks | None,
        partitions: int,
        layout: Layout | None = None,
    ) -> None:
        self.funnels, self.limits, self.journeys, self.clocks = tuple(funnels), limits, journeys, clocks
        self.outbox, self.stage_counts, self.marks, self.partitions = outbox, stage_counts, marks, partitions
        # How journeys entries' headers record these funnels (and read entries of earlier definitions).
        self.layout = Layout(self.funnels) if layout is None else layout
        self.by_partition: dict[int, PartitionTask] = {}
        self._cache: dict[str, Entry] = {}  # decoded entries, shared by the partitions' stores
        self._contacts_by_partition: dict[int, Stored] | None = None  # one table scan per rebalance

    def __getitem__(self, partition: int) -> PartitionTask:
        return self.by_partition[partition]

    def get(self, partition: int) -> PartitionTask | None:
        return self.by_partition.get(partition)

    def values(self) -> Iterable[PartitionTask]:
        return self.by_partition.values()

    def for_partition(self, partition: int) -> PartitionTask:
        """The partition's task, made if it has none: its store over the journeys table (through a
        changelog writer of its own at-least-once), its engine with the stored contacts' timers,
        its clock from the clocks table, and its stage counts rebuilt from the entries' headers."""
        task = self.by_partition.get(partition)
        if task is not None:
            return task
        table: MutableMapping[bytes, bytes] = self.journeys
        changelog = None
        if isinstance(self.outbox, KafkaOutbox):
            table = changelog = BatchedTable(self.journeys, partition, self.outbox)
        store = JourneyStore(table, self.layout, cache=self._cache)
        engine = Engine(self.funnels, store, self.limits, attributed=True)
        clock = PartitionClock(last_wall=time.time())
        task = self.by_partition[partition] = PartitionTask(partition, engine, store, changelog, clock)
        if self.marks is not None:
            self.marks.load(partition)
        saved = self.clocks.get(b"%d" % partition)
        if saved is not None:
            # Only the idle clock starts from the saved time. The engine's event clock
            # comes from the touchpoints Kafka delivers again after a restart: table
            # recovery may hold contact states older than the saved time, and a clock
            # ahead of them would fire stalls their next touchpoints had prevented.
            latest, wall = orjson.loads(saved)
            clock.latest, clock.wall_at_latest, clock.saved = latest, wall, (latest, wall)
        started = time.monotonic()
        stored = self._contacts_of(partition)
        engine.add_timers(stored.timers)
        self.stage_counts.rebuild(partition, stored.stages)
        log.info(
            "partition %d: %d contacts, timers rebuilt in %.2fs",
            partition,
            stored.contacts,
            time.monotonic() - started,
        )
        for shape in self.layout.dormant:
            held = sum(n for (name, _, _), n in stored.stages.items() if name == shape.name)
            if held:
                log.info("partition %d: %d contacts hold a dormant position in funnel %r", partition, held, shape.name)
        return task

    def drop(self, partition: int) -> None:
        """A revoked partition: its task, stage counts and source marks go, whole."""
        self.by_partition.pop(partition, None)
        self.stage_counts.drop(partition)
        if self.marks is not None:
            self.marks.drop(partition)

    def rebalanced(self) -> None:
        """After any rebalance: the shared entry cache and the table scan are stale."""
        self._cache.clear()
        self._contacts_by_partition = None

    def _contacts_of(self, partition: int) -> Stored:
        """The timers and stage counts of a partition's stored contacts, from one scan of the
        table per rebalance that reads entry headers, not states (see `processor.worker.state.entry`).

        A partition's contacts are only written by its own events, which create its
        engine first, so a scan made for any partition holds every later one's too.
        """
        if self._contacts_by_partition is None:
            partitions = self.partitions
            self._contacts_by_partition = stored_by_partition(
                self.journeys.items(), self.layout, lambda key: default_partition(key, partitions)
            )
        return self._contacts_by_partition.pop(partition, Stored.none())
