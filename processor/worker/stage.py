"""What the journeys agent and the re-keyer share: their input taken in batches.

Each is a stage. Its input topic's records come a fetched partition list at a time,
past Faust's per-record delivery (`processor.worker.patches.partitionbatches`); what
else its Faust stream carries (the journeys agent's ticks) comes one event at a time
(acks are manual, `stream.noack()`). Under the stage's lock each record is processed
and added to its `Batch`, and the batch is flushed (the stage's own `flush`: wait for
Kafka, then ack) when it holds FUNNEL_BATCH_SIZE records, is FUNNEL_BATCH_WAIT old, or
the stage has caught up with its input (no list or event waiting, nothing on the broker
behind the partitions read). A batch the stream leaves
waiting (Faust can clear the stream's buffer between two records while rebalancing or
stopping, then waits for every record to be acked) is flushed by a timer. With
exactly_once the stage joins Faust's commits (`WholeBatchCommits`), which flush it
first. A failure stops the worker with the batch unacked, for the next worker to process
again: Faust would restart the agent alone, in a process that has applied the batch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.types import TP, ChannelT

from processor.config.settings import Settings
from processor.worker.batch import Batch, behind_highwater
from processor.worker.outbox import FaustOutbox, KafkaOutbox
from processor.worker.patches.partitionbatches import PartitionBatches, Taken
from processor.worker.transactions import WholeBatchCommits

log = logging.getLogger(__name__)


class Stage:
    """One batched stage; subclasses say what a list (`list_taken`), a record of a list
    (`take_record`) and a Faust event (`take`) do, how a batch is made durable (`flush`) and
    what a failure drops (`discard`)."""

    doing = "processing"  # for the log line when the stage fails

    def __init__(self, app: faust.App, settings: Settings, outbox: KafkaOutbox | FaustOutbox, topic: str) -> None:
        self.app, self.settings, self.outbox = app, settings, outbox
        self.batches = PartitionBatches(app, topic)  # `topic`'s records, a fetched partition list at a time
        self.batch = Batch()
        self._lock = asyncio.Lock()  # one record, or one flush, at a time
        self._acker: faust.StreamT[bytes] | None = None
        self.commits: WholeBatchCommits | None = None  # exactly_once: Faust commits between batches only
        self._waiting: Any = None  # records Faust has fetched and the stream not yet taken
        self._read_to: dict[TP, int] = {}  # partition -> the offset after the last record taken

    async def take(self, event: Any) -> None:
        """Process one event of the Faust stream (and add it to the batch)."""
        raise NotImplementedError

    async def list_taken(self, taken: Taken) -> Any:
        """A partition list is about to be processed; what `take_record` gets with each record."""
        raise NotImplementedError

    async def take_record(self, record: Any, context: Any) -> None:
        """Process one record of a partition list (an aiokafka `ConsumerRecord`)."""
        raise NotImplementedError

    async def flush(self) -> None:
        raise NotImplementedError

    def discard(self) -> None:
        """A failure: what the batch holds beyond its records is dropped (it is processed again)."""

    async def run(self, stream: faust.StreamT[bytes]) -> None:
        """The stream loop: the agent's body."""
        assert isinstance(stream, faust.Stream)
        records = self._acker = stream.noack()
        assert isinstance(records.channel, ChannelT)
        self._waiting = records.channel.queue
        await self.outbox.start()
        if isinstance(self.outbox, FaustOutbox) and self.commits is None:
            self.commits = WholeBatchCommits.of(self.app).join(self._lock, self.flush)
        if self.batches.installed is None:
            self.batches.install(self.app.consumer)  # before the fetcher starts: at the first assignment
        helpers = [asyncio.ensure_future(self._flush_when_stale()), asyncio.ensure_future(self._take_lists())]
        try:
            async for event in records.events():
                async with self._lock:
                    if not self.open():
                        continue  # exactly_once, transactions ended: delivered again after the rebalance
                    await self.take(event)
                    message = event.message
                    self._read_to[message.tp] = message.offset + 1
                    if self.flush_due():
                        await self.flush()
        except Exception as exc:
            await self.fail(exc)
            raise
        finally:
            for helper in helpers:
                helper.cancel()
            await self.outbox.stop()

    async def _take_lists(self) -> None:
        """The partition lists the consumer hands over, each under the lock."""
        waiting = self.batches.waiting
        while True:
            taken = await waiting.get()
            async with self._lock:
                try:
                    await self.on_records(taken)
                except Exception as exc:
                    await self.fail(exc)
                    return

    async def on_records(self, taken: Taken) -> None:
        """One partition's fetched records, in offset order, into the batch, flushed by the rules
        above. What a rebalance leaves is left unacked: read again from the committed offset.

        The loop is the hot path: per record it calls only `take_record`; the batch's and the
        hand-over's bookkeeping happen once per list and after each flush."""
        batches, batch, tp, records = self.batches, self.batch, taken.tp, taken.records
        if not records or not batches.current(taken) or not self.open():
            return
        context = await self.list_taken(taken)
        consumer, app, generation = batches.installed, self.app, taken.generation
        size, wait = self.settings.batch_size, self.settings.batch_wait_s
        offsets: list[int] | None = None
        due = 0.0
        last = None
        for record in records:
            # As `PartitionBatches.current`: the flow still runs, in the generation of the fetch.
            if not (consumer.flow_active and app.consumer_generation_id == generation and self.open()):
                break
            if offsets is None:  # a batch opens (or the list's first record joins one)
                batches.opened()
                offsets = batch.offsets_for(tp, generation)
                due = batch.opened + wait
            await self.take_record(record, context)
            offsets.append(record.offset)
            batch.size += 1
            last = record
            if batch.size >= size or time.monotonic() >= due:
                self._took(tp, last)
                await self.flush()
                offsets, last = None, None
        if last is not None:
            self._took(tp, last)
        if self.nothing_waiting():
            await self.flush()

    def _took(self, tp: TP, last: Any) -> None:
        """The batch's last record of this partition so far: table writes are made under its event."""
        self.batch.last_of[tp.partition] = self.batches.event_for(tp, last)
        self._read_to[tp] = last.offset + 1

    def open(self) -> bool:
        """Whether records may be taken: not between the end of Faust's transactions and the rebalance."""
        return self.commits is None or self.commits.open

    def flush_due(self) -> bool:
        batch = self.batch
        return (
            len(batch) >= self.settings.batch_size
            or batch.age() >= self.settings.batch_wait_s
            or self.nothing_waiting()
        )

    def nothing_waiting(self) -> bool:
        """No list or event fetched and not yet taken, nothing on the broker behind the partitions read."""
        if not self.batches.waiting.empty() or (self._waiting is not None and not self._waiting.empty()):
            return False
        return not behind_highwater(self.app.consumer, self._read_to)

    async def _flush_when_stale(self) -> None:
        wait = self.settings.batch_wait_s
        while True:
            await asyncio.sleep(wait)
            if self.batch.age() >= wait:
                async with self._lock:
                    try:
                        await self.flush()
                    except Exception as exc:
                        await self.fail(exc)
                        return

    async def fail(self, exc: BaseException) -> None:
        """Stop the worker, leaving the batch unwritten and unacked for a new one to process again
        (dropping its records, unacked, also lets Faust's shutdown stop waiting for them)."""
        # The exception's type only: a message may quote a record (the logs hold no contact id or payload).
        log.error(
            "%s failed (%s): stopping; the records since the last commit will be read again",
            self.doing,
            type(exc).__name__,
        )
        self.discard()
        self.batches.dropped()
        self.batch.clear()
        await self.app.crash(exc)

    def rebalanced(self) -> None:
        self._read_to.clear()
        self.batches.clear()
