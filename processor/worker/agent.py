"""The stream worker's agent: touchpoints and clock ticks in, outputs out.

Thin by design: decode, check the key, hand the touchpoint to the partition's engine,
send the outputs; the batch is made durable later (`processor.worker.checkpoint`). No
funnel rule lives here. Touchpoints come a fetched partition list at a time, past
Faust's per-record delivery (`processor.worker.patches.partitionbatches`); ticks, which
let a quiet partition's clock follow the wall clock (`processor.worker.ticks`), come
through the agent's Faust stream. The batch rules are `processor.worker.stage`'s.

Time: each input partition has its own engine and clock (the largest occurred_at
seen). A touchpoint dated more than FUNNEL_FUTURE_TOLERANCE after it arrived (see
`arrival_us`) is dead-lettered before it reaches the engine, so it moves no clock.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

import faust
import orjson
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from processor.config.settings import Settings
from processor.funnel.deadletter import dead_letter, topic_source
from processor.funnel.engine import DUPLICATE, LATE, Engine
from processor.funnel.outputs import Output
from processor.funnel.touchpoint import KEY_MISMATCH, NOT_JSON, Invalid, check_not_ahead, decode
from processor.kafka.topics import input_topic
from processor.worker.checkpoint import Checkpoint
from processor.worker.metrics import FunnelMetrics
from processor.worker.outbox import FaustOutbox, KafkaOutbox, default_partition
from processor.worker.patches.partitionbatches import Taken
from processor.worker.patches.skippedrecords import SkippedWatch
from processor.worker.stage import Stage
from processor.worker.state.sourcemarks import origin
from processor.worker.task import PartitionTask, Tasks
from processor.worker.ticks import IdleClock

log = logging.getLogger(__name__)
_US = 1_000_000
PLACEMENTS_KEPT = 200_000
GC_THRESHOLDS = (10_000, 50, 100)  # CPython's defaults are (700, 10, 10)


__all__ = ["JourneyAgent", "arrival_us", "default_partition"]


def arrival_us(message: Any, wall_s: float) -> int:
    """When a record arrived, for the bound on the future: its Kafka timestamp, never later
    than this worker's wall clock (µs).

    The timestamp is the producer's send time (CreateTime), or the broker's append time on a
    LogAppendTime topic. It is the same on every delivery, so a record delivered again after
    a crash gets the same verdict, unless its timestamp was itself ahead of the wall clock at
    the first delivery (a producer clock running fast, or a producer stamping records with
    their event time): then the wall clock decided, and a later delivery may accept it.
    A record without a timestamp arrives at the wall clock.
    """
    wall = int(wall_s * _US)
    stamp = message.timestamp
    if stamp is None or stamp < 0:
        return wall
    # faust: seconds (float); aiokafka's ConsumerRecord (the partition lists, a gap read): ms
    ms = int(stamp) if isinstance(message, ConsumerRecord) else round(stamp * 1000)
    return min(ms * 1000, wall)


class JourneyAgent(Stage):
    doing = "the agent"

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        *,
        journeys: Any,
        clocks: Any,
        outbox: KafkaOutbox | FaustOutbox,
        tasks: Tasks,
        metrics: FunnelMetrics,
        gaps: SkippedWatch,
    ) -> None:
        """Its parts are wired by `processor.worker.bootstrap.journeys_agent`."""
        super().__init__(app, settings, outbox, input_topic(settings))
        self.journeys, self.clocks, self.tasks, self.metrics, self.gaps = journeys, clocks, tasks, metrics, gaps
        self.funnels, self.marks, self.stage_counts = tasks.funnels, tasks.marks, tasks.stage_counts
        self.checkpoint = Checkpoint(outbox, metrics, tasks.stage_counts, tasks.marks)
        # Touchpoints keyed by contact: the input itself, or its copy re-keyed by processor/worker/rekey.py.
        self.input_topic = input_topic(settings)
        self.source = app.topic(self.input_topic, settings.topic_ticks, key_serializer="raw", value_serializer="raw")
        self._placement: dict[bytes, int] = {}  # contact id -> its partition
        self.idle = IdleClock(app, settings, tasks, clocks, metrics, self.emit)
        self.idle.input_topic = self.input_topic
        app.agent(self.source, name="funnel-journeys")(self.process)
        app.timer(settings.tick_interval_s)(self.idle.send)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # faust types it narrower than it calls
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # -- the records --------------------------------------------------------------

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        # The cyclic GC kept rescanning Faust's and the cache's long-lived objects: about a
        # quarter of the agent's own time per touchpoint. What exists now is kept for good
        # (gc.freeze), and young collections run less often; states hold no cycles.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.idle.outside_transactions = isinstance(self.outbox, FaustOutbox)
        await self.run(stream)

    async def take(self, event: Any) -> None:
        """A record of the Faust stream: a tick, or a touchpoint Faust delivered itself (before the
        hand-over was installed)."""
        message = event.message
        if message.topic == self.settings.topic_ticks:
            await self.idle.on_tick(message)
        else:
            self.metrics.recovered.inc(await self.gaps.recover(message, self.apply))
            await self.apply(message)
        self.batch.add(event, message.partition)

    async def list_taken(self, taken: Taken) -> PartitionTask:
        """First the records Faust left out just after this worker took the partition
        (patches/skippedrecords.py); then the partition's task, for each record of the list."""
        records = taken.records
        self.metrics.recovered.inc(await self.gaps.recover(records[0], self.apply))
        self.gaps.through(taken.tp.partition, records[-1].offset, len(records) - 1)
        return self.tasks.for_partition(taken.tp.partition)

    async def take_record(self, record: Any, context: Any) -> None:
        await self.apply(record, context)

    async def apply(self, message: Any, task: PartitionTask | None = None) -> None:
        """One touchpoint record (a Faust message or an aiokafka record): checked, applied, its outputs
        sent. `task`: the record's partition's, when the caller has it."""
        partition, raw, key = message.partition, message.value, message.key
        if raw is None:
            await self.dead(NOT_JSON, "record has no value (a tombstone); a touchpoint is a JSON object", message)
            return
        try:
            tp = decode(raw)
        except Invalid as bad:
            await self.dead(bad.reason, bad.detail, message)
            return
        contact = tp.contact_id.encode()
        if key != contact:
            detail = f"record key {key!r} is not the contact_id {tp.contact_id!r}; key records by contact_id"
            await self.dead(KEY_MISMATCH, detail, message)
            return
        expected = self._placement.get(contact)
        if expected is None:  # murmur2 is pure Python: remembered per contact
            if len(self._placement) >= PLACEMENTS_KEPT:
                self._placement.clear()
            expected = self._placement[contact] = default_partition(contact, self.settings.partitions)
        if expected != partition:  # checked on every record: a contact's state lives in one partition
            detail = (
                f"contact {tp.contact_id!r} arrived in partition {partition}, but Kafka's default "
                f"(murmur2) partitioner puts its key in partition {expected}; produce with it"
            )
            await self.dead(KEY_MISMATCH, detail, message)
            return
        now = time.time()
        try:
            check_not_ahead(tp, arrival_us(message, now), self.settings.future_tolerance_us)
        except Invalid as ahead:  # before the engine: no state, clock, count or dedup memory changes
            await self.dead(ahead.reason, ahead.detail, message)
            return
        if task is None:
            task = self.tasks.for_partition(partition)
        engine, store, marks = task.engine, task.store, self.marks
        source = None if marks is None else origin(message)
        copy = source is not None and marks is not None and marks.applied(partition, source)
        if copy or store.applied(tp.contact_id, message.offset):
            # Delivered again after a crash (or re-keyed twice), already applied before it: move the clock only.
            self.metrics.redelivered.inc()
            outputs = engine.advance_to(tp.at)
        else:
            outputs, verdict = engine.apply(tp)
            store.mark_applied(tp.contact_id, message.offset)
            self.metrics.touchpoints.inc()
            if verdict == DUPLICATE:
                self.metrics.duplicates.inc()
            elif verdict == LATE:
                self.metrics.late.inc()
        if source is not None and marks is not None:
            marks.note(partition, source)
        clock = task.clock
        if clock.latest is None or tp.at > clock.latest:
            clock.latest, clock.wall_at_latest = tp.at, now
        clock.last_wall, clock.next_offset = now, message.offset + 1
        if outputs:
            await self.emit(partition, outputs, engine)

    # -- outputs and durability ---------------------------------------------------

    async def emit(self, partition: int, outputs: list[Output], engine: Engine | None = None) -> None:
        """Send outputs (made by `engine`, else the partition's); their acknowledgements are awaited
        when the batch is flushed."""
        if not outputs:
            return
        put = self.outbox.put
        transitions, dropoffs = self.settings.topic_transitions, self.settings.topic_dropoffs
        for output in outputs:
            topic = transitions if output["kind"] == "transition" else dropoffs
            await put(topic, output["contact_id"].encode(), orjson.dumps(output), partition)
        if engine is None:
            engine = self.tasks[partition].engine
        clock = engine.clock
        self.batch.counted.append((outputs, None if clock is None else clock / _US, engine.take_attributions()))

    async def dead(self, reason: str, detail: str, message: Any) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        source = topic_source(message.topic, message.partition, message.offset)
        letter = dead_letter(reason, detail, message.value or b"", source, message.key)
        await self.outbox.put(
            self.settings.topic_deadletter, message.key, orjson.dumps(letter), source=message.partition
        )

    async def flush(self) -> None:
        """Make the batch durable, in the order `processor.worker.checkpoint` gives."""
        await self.checkpoint.commit(self.batch, self.tasks, self._acker, self.batches)

    def discard(self) -> None:
        for task in self.tasks.values():
            task.store.discard()

    # -- partitions ---------------------------------------------------------------

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        if self.commits is not None:
            self.commits.reopen()

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        for tp in revoked:
            if tp.topic == self.input_topic:
                self.tasks.drop(tp.partition)  # whole: engine, store, changelog writer, clock, counts, marks
        self.tasks.rebalanced()
        self.rebalanced()
        self.gaps.clear()
        self.idle.rebalanced()
