"""The commit sequence of one batch, written once.

A batch of input records is made durable in this order, and a record is acked to Faust
(which commits its offset on its own timer) only at the end:

1. Outputs acknowledged: every output and dead letter the batch produced is on Kafka
   (`Outbox.delivered`; it raises if Kafka did not take them, and the worker stops with
   nothing acked, so the next worker processes the batch again: outputs are idempotent).
2. Counted: the outputs go to the metrics, now that they exist for consumers.
3. States written: each partition's staged states go into the journeys table (their
   changelog records through the same outbox), and the stage counts follow them.
4. Changelog acknowledged: the states' changelog records are on Kafka; each partition's
   table learns the changelog offsets it holds. Source marks (re-keyed input) are saved
   after the states, so a mark never claims more than the states hold.
5. Inputs acked.

A crash before step 5 leaves the batch's offsets uncommitted: Kafka delivers the
records again, and a record whose state was written (its contact's last applied offset,
or its source mark) only moves the clock. With exactly_once the same steps run inside
the input partitions' transactions, and Faust commits only between batches
(`processor/worker/transactions.py`).
"""

from __future__ import annotations

from typing import Any, Protocol

from processor.worker.batch import Batch, acting_for
from processor.worker.metrics import FunnelMetrics
from processor.worker.state.sourcemarks import SourceMarks
from processor.worker.state.stagecounts import StageCounts
from processor.worker.task import Tasks


class Delivering(Protocol):
    async def delivered(self) -> dict[tuple[str, int], int]: ...


class Checkpoint:
    """Runs the commit sequence above for the journeys agent's batches."""

    def __init__(
        self, outbox: Delivering, metrics: FunnelMetrics, stage_counts: StageCounts, marks: SourceMarks | None
    ) -> None:
        self.outbox, self.metrics, self.stage_counts, self.marks = outbox, metrics, stage_counts, marks

    async def commit(self, batch: Batch, tasks: Tasks, acker: Any, taken: Any = None) -> None:
        """`acker` acks the batch's Faust events (the stream's); `taken` the records taken in partition
        lists (`processor.worker.patches.partitionbatches.PartitionBatches`)."""
        if not batch:
            return
        assert acker is not None, "records taken before the stream was set up"
        # 1. outputs acknowledged (raises if Kafka did not take them: the caller stops the worker)
        await self.outbox.delivered()
        # 2. counted
        for outputs, clock_s, attributions in batch.counted:
            self.metrics.count(outputs, clock_s, attributions)
        # 3. states written, under an event of their partition (Faust's tables need one)
        for partition, event in batch.last_of.items():
            task = tasks.get(partition)
            if task is not None and task.store.staged:
                with acting_for(event):
                    self.stage_counts.apply(partition, task.store.commit())
        # 4. changelog acknowledged, then source marks
        written = await self.outbox.delivered()
        for task in tasks.values():
            if task.changelog is not None:
                task.changelog.persisted(written)
        if self.marks is not None:
            for partition, event in batch.last_of.items():
                with acting_for(event):
                    self.marks.save(partition)
        # 5. inputs acked
        for event in batch.records:
            await acker.ack(event)
        if taken is not None:
            taken.ack(batch.taken)
        batch.clear()
