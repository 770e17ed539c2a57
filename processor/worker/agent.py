"""The stream worker's agent: touchpoints and clock ticks in, outputs out.

Thin by design: decode, check the key, hand the touchpoint to the partition's
engine, send the outputs, and only once Kafka has acknowledged them write the new
states to the journeys table (see `processor.worker.state.store`). No funnel rule lives
here.

Throughput comes from waiting for Kafka once per batch of records, not once per
record (`processor.worker.batch`): acks are manual (`stream.noack()`), and a record is
acked to Faust only after its outputs are acknowledged and its states written. A
batch is flushed when it holds FUNNEL_BATCH_SIZE records, when it is
FUNNEL_BATCH_WAIT old, or as soon as the agent has caught up with the input (no
record waiting in the stream, none behind the high watermark), so at low rates a
record is flushed right after it is processed.

Time: each input partition has its own engine and clock (the largest occurred_at
seen). A touchpoint dated more than FUNNEL_FUTURE_TOLERANCE after it arrived (see
`arrival_us`) is dead-lettered before it reaches the engine, so it moves no clock.
An internal ticks topic, co-partitioned with the touchpoints, carries a tick per
owned partition every tick interval; a tick lets a quiet, caught-up partition's
clock run on with the wall clock, so its stall deadlines still fire. Ticks go
through the same stream because table writes are only allowed inside stream
iteration, from an event of the partition the key lives in.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Sequence
from typing import Any

import faust
import orjson
from aiokafka.structs import ConsumerRecord
from faust.types import TP, ChannelT
from prometheus_client import CollectorRegistry

from processor.config.settings import Settings
from processor.funnel.deadletter import dead_letter, topic_source
from processor.funnel.definition import Funnel
from processor.funnel.engine import DUPLICATE, LATE, Engine
from processor.funnel.journey import Limits
from processor.funnel.outputs import Output
from processor.funnel.touchpoint import KEY_MISMATCH, NOT_JSON, Invalid, check_not_ahead, decode
from processor.kafka.clients import input_topic
from processor.kafka.connect import aiokafka_connection
from processor.worker.batch import Batch, behind_highwater
from processor.worker.checkpoint import Checkpoint
from processor.worker.metrics import FunnelMetrics
from processor.worker.outbox import FaustOutbox, KafkaOutbox, default_partition
from processor.worker.patches.partitionbatches import PartitionBatches, Taken
from processor.worker.patches.skippedrecords import SkippedWatch, consumer_config, skip_in_commits
from processor.worker.state.sourcemarks import SourceMarks, origin
from processor.worker.state.stagecounts import StageCounts
from processor.worker.task import PartitionClock, Tasks
from processor.worker.transactions import WholeBatchCommits

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
    # faust: seconds (float); aiokafka's ConsumerRecord (processor/worker/patches/skippedrecords.py): ms
    stamp = message.timestamp
    if stamp is None or stamp < 0:
        return wall
    ms = int(stamp) if isinstance(message, ConsumerRecord) else round(stamp * 1000)
    return min(ms * 1000, wall)


class JourneyAgent:
    def __init__(
        self, app: faust.App, settings: Settings, funnels: Sequence[Funnel], registry: CollectorRegistry | None = None
    ) -> None:
        self.app, self.settings, self.funnels = app, settings, tuple(funnels)
        self.limits = Limits(dedup_horizon_us=settings.dedup_horizon_us)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        # Touchpoints keyed by contact: the input itself, or its copy re-keyed by processor/worker/rekey.py.
        self.input_topic = input_topic(settings)
        self.source = app.topic(self.input_topic, settings.topic_ticks, **raw)
        self.ticks = app.topic(settings.topic_ticks, partitions=settings.partitions, **raw)
        # Tables take no serializer arguments in faust 0.15.3: bytes types mean raw.
        table: dict[str, Any] = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
        self.journeys = app.Table("journeys", **table)
        self.clocks = app.Table("clocks", **table)
        # Re-keyed input: the source records applied per partition, so a copy is never applied twice.
        self.marks = SourceMarks(self.clocks) if settings.rekeyed else None
        self.upstream: Any = None  # the re-keying step (processor/worker/rekey.py), if this worker runs one
        self.batch = Batch()
        # The touchpoints themselves come a fetched partition list at a time, past Faust's per-record delivery.
        self.batches = PartitionBatches(app, self.input_topic)
        self._lock = asyncio.Lock()  # one record, or one flush, at a time
        self._acker: faust.StreamT[bytes] | None = None
        self.commits: WholeBatchCommits | None = None  # exactly_once: Faust commits between batches only
        self._placement: dict[bytes, int] = {}  # contact id -> its partition
        self._read_to: dict[TP, int] = {}  # input partition -> the offset after the last record taken
        self._connection = aiokafka_connection(settings)
        # The records a gap read fetches are the ones Faust's consumer would deliver: with
        # exactly_once, committed ones only (aborted records and markers are skipped).
        committed_only = settings.processing_guarantee == "exactly_once"
        fetch_config = consumer_config(self._connection, committed_only=committed_only)
        self.gaps = SkippedWatch(fetch_config, settings.app_id, lambda: app.consumer, "processing")
        self._ticks_seen: set[int] = set()  # ticks partitions with a record since the last rebalance
        self.outbox: KafkaOutbox | FaustOutbox = (
            FaustOutbox(app, self.input_topic)  # exactly_once: outputs join the input's transactions
            if settings.processing_guarantee == "exactly_once"
            else KafkaOutbox(self._connection, settings.partitions)
        )
        self.stage_counts = StageCounts(self.funnels)
        self.metrics = FunnelMetrics(registry or CollectorRegistry(), self.funnels, self.stage_counts)
        self.checkpoint = Checkpoint(self.outbox, self.metrics, self.stage_counts, self.marks)
        self.tasks = Tasks(
            self.funnels,
            self.limits,
            self.journeys,
            self.clocks,
            self.outbox,
            self.stage_counts,
            self.marks,
            settings.partitions,
        )
        app.agent(self.source, name="funnel-journeys")(self.process)
        app.timer(settings.tick_interval_s)(self.send_ticks)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # faust types it narrower than it calls
        app.on_partitions_assigned.connect(self._on_assigned)  # type: ignore[arg-type]

    # -- the stream ---------------------------------------------------------------

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        assert isinstance(stream, faust.Stream)
        records = self._acker = stream.noack()
        assert isinstance(records.channel, ChannelT)
        waiting = records.channel.queue  # records Faust has fetched and this stream not yet taken
        touchpoints = self.input_topic
        await self.outbox.start()
        if isinstance(self.outbox, FaustOutbox) and self.commits is None:
            self.commits = WholeBatchCommits.of(self.app).join(self._lock, self.flush)
        # The cyclic GC kept rescanning Faust's and the cache's long-lived objects: about a
        # quarter of the agent's own time per touchpoint. What exists now is kept for good
        # (gc.freeze), and young collections run less often; states hold no cycles.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        stale = asyncio.ensure_future(self._flush_when_stale())
        if self.batches.installed is None:
            self.batches.install(self.app.consumer)
        taker = asyncio.ensure_future(self._take_batches())
        try:
            async for event in records.events():
                async with self._lock:
                    if self.commits is not None and not self.commits.open:
                        continue  # exactly_once, transactions ended: delivered again after the rebalance
                    message = event.message
                    if message.topic == self.settings.topic_ticks:
                        await self._first_tick(message)
                        await self.on_tick(message.partition)
                    else:
                        await self.on_touchpoint(message)
                    self.batch.add(event, message.partition)
                    if message.topic == touchpoints:
                        self._read_to[message.tp] = message.offset + 1
                    if (
                        len(self.batch) >= self.settings.batch_size
                        or self.batch.age() >= self.settings.batch_wait_s
                        or (
                            waiting.empty()
                            and self.batches.waiting.empty()
                            and not behind_highwater(self.app.consumer, self._read_to)
                        )
                    ):
                        await self.flush()
        except Exception as exc:
            await self._fail(exc)
            raise
        finally:
            stale.cancel()
            taker.cancel()
            await self.outbox.stop()

    async def _take_batches(self) -> None:
        """The touchpoints of each partition list the consumer hands over (patches/partitionbatches.py)."""
        waiting = self.batches.waiting
        while True:
            taken = await waiting.get()
            async with self._lock:
                try:
                    await self.on_records(taken)
                except Exception as exc:
                    await self._fail(exc)
                    return

    async def on_records(self, taken: Taken) -> None:
        """One partition's fetched touchpoints, in offset order, into the batch; the batch is flushed
        as the stream loop does (full, old, or caught up). Records left when a rebalance stops the
        flow are left unacked: Faust reads them again from the committed offset."""
        batches, batch, tp = self.batches, self.batch, taken.tp
        partition, size, wait = tp.partition, self.settings.batch_size, self.settings.batch_wait_s
        last = None
        for record in taken.records:
            if not batches.current(taken) or (self.commits is not None and not self.commits.open):
                break
            batches.opened()
            await self.on_touchpoint(record)
            batch.take(tp, taken.generation, record.offset)
            last = record
            if len(batch) >= size or batch.age() >= wait:
                batch.last_of[partition] = batches.event_for(tp, last)
                self._read_to[tp] = last.offset + 1
                await self.flush()
                last = None
        if last is not None:
            batch.last_of[partition] = batches.event_for(tp, last)
            self._read_to[tp] = last.offset + 1
        if batches.waiting.empty() and not behind_highwater(self.app.consumer, self._read_to):
            await self.flush()

    async def _fail(self, exc: BaseException) -> None:
        """Stop the worker, leaving the batch unwritten and unacked for a new one to process again.

        Faust would restart the agent alone, in a process whose engines have applied the
        batch: the batch would never be written, and its offsets never committed. Dropping
        the batch's records (unacked) also lets Faust's shutdown stop waiting for them.
        """
        # The exception's type only: a message may quote a record (the logs hold no contact id or payload).
        log.error(
            "the agent failed (%s): stopping; the records since the last commit will be processed again",
            type(exc).__name__,
        )
        for task in self.tasks.values():
            task.store.discard()
        self.batch.clear()
        self.batches.dropped()
        await self.app.crash(exc)

    async def _flush_when_stale(self) -> None:
        """Flush a batch the stream left waiting: while rebalancing or stopping, Faust can
        clear the stream's buffer between a record and the next, and then waits for every
        record to be acked."""
        wait = self.settings.batch_wait_s
        while True:
            await asyncio.sleep(wait)
            if self.batch.age() >= wait:
                async with self._lock:
                    try:
                        await self.flush()
                    except Exception as exc:
                        await self._fail(exc)
                        return

    async def on_touchpoint(self, message: Any) -> None:
        # First the records Faust left out just after taking on this partition (patches/skippedrecords.py).
        self.metrics.recovered.inc(await self.gaps.recover(message, self._apply))
        await self._apply(message)

    async def _first_tick(self, message: Any) -> None:
        """A ticks partition's first record since the rebalance may come after offsets its consumer
        never delivers (the markers and aborted ticks of the worker's own transactions, with
        exactly_once); a tick only carries the wall clock, so nothing is lost by skipping them."""
        if message.partition in self._ticks_seen:
            return
        self._ticks_seen.add(message.partition)
        consumer: Any = self.app.consumer
        committed = consumer._committed_offset.get(message.tp)  # noqa: SLF001 -- faust internal, README Design
        if committed is not None:
            await skip_in_commits(consumer, message.tp, committed, message.offset)

    async def _apply(self, message: Any) -> None:
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
        try:
            check_not_ahead(tp, arrival_us(message, time.time()), self.settings.future_tolerance_us)
        except Invalid as ahead:  # before the engine: no state, clock, count or dedup memory changes
            await self.dead(ahead.reason, ahead.detail, message)
            return
        task = self.tasks.for_partition(partition)
        engine, store = task.engine, task.store
        source = None if self.marks is None else origin(message)
        copy = source is not None and self.marks is not None and self.marks.applied(partition, source)
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
        if source is not None and self.marks is not None:
            self.marks.note(partition, source)
        clock = task.clock
        now = time.time()
        if clock.latest is None or tp.at > clock.latest:
            clock.latest, clock.wall_at_latest = tp.at, now
        clock.last_wall, clock.next_offset = now, message.offset + 1
        await self.emit(partition, outputs)

    async def on_tick(self, partition: int) -> None:
        task = self.tasks.for_partition(partition)
        engine, clock = task.engine, task.clock
        now = time.time()
        idle = clock.latest is not None and now - clock.last_wall >= self.settings.idle_after_s
        if idle and clock.latest is not None and await self._caught_up(partition, clock):
            await self.emit(partition, engine.advance_to(clock.latest + int((now - clock.wall_at_latest) * _US)))
        if clock.latest is not None and clock.saved != (clock.latest, clock.wall_at_latest):
            clock.saved = (clock.latest, clock.wall_at_latest)
            self.clocks[b"%d" % partition] = orjson.dumps(clock.saved)

    async def _caught_up(self, partition: int, clock: PartitionClock) -> bool:
        """No touchpoint waiting in this partition (else the clock must not run ahead of it), nor, on a
        re-keyed input, in the source partitions this worker re-keys."""
        if self.upstream is not None and not self.upstream.caught_up():
            return False
        tp = TP(self.input_topic, partition)
        try:
            highwater = self.app.consumer.highwater(tp)
            # Nothing processed since this worker took the partition: where it reads next.
            position = clock.next_offset if clock.next_offset is not None else await self.app.consumer.position(tp)
        except (KeyError, AssertionError, TypeError, ValueError):
            return False
        return highwater is not None and position is not None and highwater <= position

    # -- outputs ------------------------------------------------------------------

    async def emit(self, partition: int, outputs: list[Output]) -> None:
        """Send outputs; their acknowledgements are awaited when the batch is flushed."""
        if not outputs:
            return
        outbox = self.outbox
        transitions, dropoffs = self.settings.topic_transitions, self.settings.topic_dropoffs
        for output in outputs:
            topic = transitions if output["kind"] == "transition" else dropoffs
            await outbox.put(topic, output["contact_id"].encode(), orjson.dumps(output), partition)
        engine = self.tasks[partition].engine
        clock = engine.clock
        self.batch.counted.append((outputs, None if clock is None else clock / _US, engine.take_attributions()))

    async def flush(self) -> None:
        """Make the batch durable, in the order `processor.worker.checkpoint` gives."""
        await self.checkpoint.commit(self.batch, self.tasks, self._acker, self.batches)

    async def dead(self, reason: str, detail: str, message: Any) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        source = topic_source(message.topic, message.partition, message.offset)
        letter = dead_letter(reason, detail, message.value or b"", source, message.key)
        await self.outbox.put(
            self.settings.topic_deadletter, message.key, orjson.dumps(letter), source=message.partition
        )

    # -- partitions and clocks ----------------------------------------------------

    def engine_for(self, partition: int) -> Engine:
        return self.tasks.for_partition(partition).engine

    async def send_ticks(self) -> None:
        clocks = [task.clock for task in self.tasks.values()]
        lags = [time.time() - c.latest / _US for c in clocks if c.latest is not None]
        self.metrics.event_time_lag.set(max(lags, default=0.0))
        now = orjson.dumps(time.time())
        # With exactly_once, ticks go outside the transactions: a tick only nudges a clock, and
        # transaction markers in the ticks topic would leave gaps in its offsets that Faust's
        # commit bookkeeping trips over (processor/worker/transactions.py).
        plain = self.commits is not None
        for tp in self.app.assignor.assigned_actives():
            if tp.topic != self.input_topic:
                continue
            if plain:
                await self.app.producer.send(self.settings.topic_ticks, None, now, tp.partition, None, None)
            else:
                await self.ticks.send(value=now, partition=tp.partition)

    async def _on_assigned(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        if self.commits is not None:
            self.commits.reopen()

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        for tp in revoked:
            if tp.topic == self.input_topic:
                self.tasks.drop(tp.partition)  # whole: engine, store, changelog writer, clock, counts, marks
        self.tasks.rebalanced()
        self._read_to.clear()
        self.gaps.clear()
        self._ticks_seen.clear()
        self.batches.clear()
