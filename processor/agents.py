"""The stream worker's agent: touchpoints and clock ticks in, outputs out.

Thin by design: decode, check the key, hand the touchpoint to the partition's
engine, send the outputs, and only once Kafka has acknowledged them write the new
states to the journeys table (see `processor.journeystore`). No funnel rule lives
here.

Time: each input partition has its own engine and clock (the largest occurred_at
seen). An internal ticks topic, co-partitioned with the touchpoints, carries a tick
per owned partition every tick interval; a tick lets a quiet, caught-up partition's
clock run on with the wall clock, so its stall deadlines still fire. Ticks go
through the same stream because table writes are only allowed inside stream
iteration, from an event of the partition the key lives in.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from aiokafka.partitioner import murmur2
from faust.types import TP
from prometheus_client import CollectorRegistry

from processor.app import ssl_context
from processor.deadletter import dead_letter, topic_source
from processor.funnel.definition import Funnel
from processor.funnel.engine import Engine
from processor.funnel.journey import Limits
from processor.funnel.outputs import Output
from processor.funnel.touchpoint import KEY_MISMATCH, NOT_JSON, Invalid, decode
from processor.gaps import WATCH_RECORDS, consumer_config, fetch_range
from processor.journeystore import JourneyStore
from processor.metrics import FunnelMetrics
from processor.settings import Settings
from processor.stagecounts import StageCounts

log = logging.getLogger(__name__)
_US = 1_000_000


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


@dataclass
class PartitionClock:
    """What a partition's idle clock needs, beyond its engine."""

    latest: int | None = None  # largest occurred_at seen (µs)
    wall_at_latest: float = 0.0  # wall time when `latest` was last raised
    last_wall: float = 0.0  # wall time of the last touchpoint processed here
    next_offset: int | None = None  # offset after the last touchpoint processed here
    saved: tuple[int, float] | None = None  # what the clocks table holds


class JourneyAgent:
    def __init__(
        self, app: faust.App, settings: Settings, funnels: Sequence[Funnel], registry: CollectorRegistry | None = None
    ) -> None:
        self.app, self.settings, self.funnels = app, settings, tuple(funnels)
        self.limits = Limits(dedup_horizon_us=settings.dedup_horizon_us)
        raw: dict[str, Any] = {"key_serializer": "raw", "value_serializer": "raw"}
        self.source = app.topic(settings.topic_touchpoints, settings.topic_ticks, **raw)
        self.ticks = app.topic(settings.topic_ticks, partitions=settings.partitions, **raw)
        self.transitions = app.topic(settings.topic_transitions, **raw)
        self.dropoffs = app.topic(settings.topic_dropoffs, **raw)
        self.deadletters = app.topic(settings.topic_deadletter, **raw)
        # Tables take no serializer arguments in faust 0.15.3: bytes types mean raw.
        table: dict[str, Any] = {"partitions": settings.partitions, "key_type": bytes, "value_type": bytes}
        self.journeys = app.Table("journeys", **table)
        self.clocks = app.Table("clocks", **table)
        self.store = JourneyStore(self.journeys)
        self.engines: dict[int, Engine] = {}
        self._contacts_by_partition: dict[int, list[str]] | None = None  # one table scan per rebalance
        self._watch: dict[int, tuple[int | None, int]] = {}  # partition -> (next offset, records checked)
        self._fetch_config = consumer_config(settings, ssl_context(settings))
        self.partition_clocks: dict[int, PartitionClock] = {}
        self.stage_counts = StageCounts(self.funnels)
        self.metrics = FunnelMetrics(registry or CollectorRegistry(), self.funnels, self.stage_counts)
        app.agent(self.source, name="funnel-journeys")(self.process)
        app.timer(settings.tick_interval_s)(self.send_ticks)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # faust types it narrower than it calls

    # -- the stream ---------------------------------------------------------------

    async def process(self, stream: faust.StreamT[bytes]) -> None:
        async for event in stream.events():
            message = event.message
            if message.topic == self.settings.topic_ticks:
                await self.on_tick(message.partition)
            else:
                await self.on_touchpoint(message)

    async def on_touchpoint(self, message: Any) -> None:
        await self._recover_skipped(message)
        await self._apply(message)

    async def _recover_skipped(self, message: Any) -> None:
        """Process records Faust left out just after taking on this partition (processor/gaps.py)."""
        partition, offset = message.partition, message.offset
        expected, checked = self._watch.get(partition, (None, 0))
        if checked >= WATCH_RECORDS:
            return
        self._watch[partition] = (offset + 1, checked + 1)
        if expected is None or offset <= expected:
            return
        missed = await fetch_range(self._fetch_config, message.topic, partition, expected, offset)
        if missed:
            log.warning(
                "partition %d: %d records before offset %d were not delivered; processing them",
                partition,
                len(missed),
                offset,
            )
            self.metrics.recovered.inc(len(missed))
        for record in missed:
            await self._apply(record)

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
        expected = default_partition(contact, self.settings.partitions)
        if expected != partition:  # checked on every record: a contact's state lives in one partition
            detail = (
                f"contact {tp.contact_id!r} arrived in partition {partition}, but Kafka's default "
                f"(murmur2) partitioner puts its key in partition {expected}; produce with it"
            )
            await self.dead(KEY_MISMATCH, detail, message)
            return
        engine = self.engine_for(partition)
        if self.store.applied(tp.contact_id, message.offset):
            # Delivered again after a crash, already applied before it: move the clock only.
            self.metrics.redelivered.inc()
            outputs = engine.advance_to(tp.at)
        else:
            duplicates, late = engine.duplicates, engine.late
            outputs = engine.observe(tp)
            self.store.mark_applied(tp.contact_id, message.offset)
            self.metrics.touchpoints.inc()
            if engine.duplicates > duplicates:
                self.metrics.duplicates.inc()
            if engine.late > late:
                self.metrics.late.inc()
        clock = self.partition_clocks[partition]
        now = time.time()
        if clock.latest is None or tp.at > clock.latest:
            clock.latest, clock.wall_at_latest = tp.at, now
        clock.last_wall, clock.next_offset = now, message.offset + 1
        await self.emit(partition, outputs)

    async def on_tick(self, partition: int) -> None:
        engine = self.engine_for(partition)
        clock = self.partition_clocks[partition]
        now = time.time()
        idle = clock.latest is not None and now - clock.last_wall >= self.settings.idle_after_s
        if idle and clock.latest is not None and await self._caught_up(partition, clock):
            await self.emit(partition, engine.advance_to(clock.latest + int((now - clock.wall_at_latest) * _US)))
        if clock.latest is not None and clock.saved != (clock.latest, clock.wall_at_latest):
            clock.saved = (clock.latest, clock.wall_at_latest)
            self.clocks[b"%d" % partition] = orjson.dumps(clock.saved)

    async def _caught_up(self, partition: int, clock: PartitionClock) -> bool:
        """No touchpoint waiting in this partition (else the clock must not run ahead of it)."""
        tp = TP(self.settings.topic_touchpoints, partition)
        try:
            highwater = self.app.consumer.highwater(tp)
            # Nothing processed since this worker took the partition: where it reads next.
            position = clock.next_offset if clock.next_offset is not None else await self.app.consumer.position(tp)
        except (KeyError, AssertionError, TypeError, ValueError):
            return False
        return highwater is not None and position is not None and highwater <= position

    # -- outputs ------------------------------------------------------------------

    async def emit(self, partition: int, outputs: list[Output]) -> None:
        """Send outputs, wait for Kafka to acknowledge them, then write the states."""
        if outputs:
            pending = []
            for output in outputs:
                topic = self.transitions if output["kind"] == "transition" else self.dropoffs
                pending.append(await topic.send(key=output["contact_id"].encode(), value=orjson.dumps(output)))
            try:
                await asyncio.gather(*pending)
            except Exception:
                self.store.discard()
                raise
            clock = self.engines[partition].clock
            self.metrics.count(outputs, None if clock is None else clock / _US)
        self.stage_counts.apply(partition, self.store.commit())

    async def dead(self, reason: str, detail: str, message: Any) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        source = topic_source(message.topic, message.partition, message.offset)
        letter = dead_letter(reason, detail, message.value or b"", source, message.key)
        await self.deadletters.send(key=message.key, value=orjson.dumps(letter))

    # -- partitions and clocks ----------------------------------------------------

    def engine_for(self, partition: int) -> Engine:
        engine = self.engines.get(partition)
        if engine is None:
            engine = self.engines[partition] = Engine(self.funnels, self.store, self.limits)
            clock = self.partition_clocks[partition] = PartitionClock(last_wall=time.time())
            saved = self.clocks.get(b"%d" % partition)
            if saved is not None:
                # Only the idle clock starts from the saved time. The engine's event clock
                # comes from the touchpoints Kafka delivers again after a restart: table
                # recovery may hold contact states older than the saved time, and a clock
                # ahead of them would fire stalls their next touchpoints had prevented.
                latest, wall = orjson.loads(saved)
                clock.latest, clock.wall_at_latest, clock.saved = latest, wall, (latest, wall)
            started = time.monotonic()
            mine = self._contacts_of(partition)
            engine.schedule(mine)
            self.stage_counts.rebuild(partition, (self.store[contact] for contact in mine))
            log.info(
                "partition %d: %d contacts, timers rebuilt in %.2fs", partition, len(mine), time.monotonic() - started
            )
        return engine

    def _contacts_of(self, partition: int) -> list[str]:
        """The contacts stored for a partition, from one scan of the table per rebalance.

        A partition's contacts are only written by its own events, which create its
        engine first, so a scan made for any partition holds every later one's too.
        """
        if self._contacts_by_partition is None:
            grouped: dict[int, list[str]] = {}
            for contact in self.store:
                grouped.setdefault(default_partition(contact.encode(), self.settings.partitions), []).append(contact)
            self._contacts_by_partition = grouped
        return self._contacts_by_partition.pop(partition, [])

    async def send_ticks(self) -> None:
        lags = [time.time() - c.latest / _US for c in self.partition_clocks.values() if c.latest is not None]
        self.metrics.event_time_lag.set(max(lags, default=0.0))
        now = orjson.dumps(time.time())
        for tp in self.app.assignor.assigned_actives():
            if tp.topic == self.settings.topic_touchpoints:
                await self.ticks.send(value=now, partition=tp.partition)

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        for tp in revoked:
            if tp.topic == self.settings.topic_touchpoints:
                self.engines.pop(tp.partition, None)
                self.partition_clocks.pop(tp.partition, None)
                self.stage_counts.drop(tp.partition)
        self.store.forget()
        self._contacts_by_partition = None
        self._watch.clear()
