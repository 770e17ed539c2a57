"""What one input partition owns in this worker, in one object.

As Kafka Streams gives each input partition a `StreamTask`, the journeys agent keeps a
`PartitionTask` per partition it has taken on: the partition's engine (the pure core's
`Engine` over its contacts), the store the engine reads and writes its states through,
the changelog writer under that store (at-least-once; with exactly_once the table writes
through Faust and there is none), and the partition's idle clock. It is created on the
partition's first record or tick after an assignment (`JourneyAgent.task_for`) and
dropped whole when the partition is revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

from processor.funnel.engine import Engine
from processor.worker.state.store import JourneyStore
from processor.worker.state.tablewrites import BatchedTable


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
