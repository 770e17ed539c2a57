"""Input keyed any way, re-keyed by contact: the worker's first step for Segment and Snowplow
events, or for touchpoints with FUNNEL_INPUT_KEYED=any.

    FUNNEL_TOPIC_TOUCHPOINTS (any key, any partition count)
      -> Rekeyer: decode in FUNNEL_INPUT_FORMAT, refuse or skip, produce the touchpoint
      -> {app_id}-touchpoints-by-contact (key contact_id, murmur2 partition, FUNNEL_PARTITIONS
         partitions, co-partitioned with the journeys table)
      -> JourneyAgent (processor/worker/agent.py), exactly as for touchpoints keyed by contact

A record that becomes a touchpoint is produced as a native touchpoint (schemas/touchpoint)
to the partition Kafka's default partitioner gives its contact. What this step keeps:

- Nothing lost: a source record is acked to Faust, whose commit then covers it, only once
  Kafka has acknowledged its re-keyed record (or its dead letter). A crash before that
  reads it again and produces it again (a copy: see processor/worker/state/sourcemarks.py).
- Order: a source partition is read in order, and each re-keyed partition gets its records
  in that order, with no gap (`KafkaOutbox.put_in_order`). Kafka orders nothing across source
  partitions, and neither can this: a contact's records keep their order when they sit in
  one source partition (a topic keyed by user, or with one partition).
- Arrival: the re-keyed record keeps the source record's timestamp. The bound on the future
  is applied here, to the source record, so a refused record is dead-lettered as it came; the
  journeys agent, measuring from the same timestamp, never refuses what passed here.
- Dead letters name the source record's topic, partition and offset, and carry its key and
  payload. Segment's identify, alias and group calls are counted (funnel_input_skipped_total)
  and passed over.
- Records Faust leaves out after taking on a partition are fetched and re-keyed first
  (processor/worker/patches/skippedrecords.py), as the journeys agent does for its own input.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust
import orjson
from aiokafka.structs import ConsumerRecord
from prometheus_client import CollectorRegistry, Counter

from processor.config.settings import Settings
from processor.funnel.deadletter import dead_letter, topic_source
from processor.funnel.eventmap import EventMapping
from processor.funnel.formats import SKIPPED_CALLS, Skipped, as_touchpoint, decoder
from processor.funnel.touchpoint import NOT_JSON, Invalid, check_not_ahead
from processor.kafka.connect import aiokafka_connection
from processor.kafka.topics import rekeyed_topic
from processor.worker.agent import arrival_us
from processor.worker.metrics import FunnelMetrics
from processor.worker.outbox import FaustOutbox, KafkaOutbox, default_partition
from processor.worker.patches.partitionbatches import Taken
from processor.worker.patches.skippedrecords import SkippedWatch, consumer_config
from processor.worker.stage import Stage
from processor.worker.state.sourcemarks import source_headers

log = logging.getLogger(__name__)
PLACEMENTS_KEPT = 200_000


def timestamp_ms(message: Any) -> int | None:
    """A record's Kafka timestamp in ms (faust gives seconds, aiokafka's ConsumerRecord ms); None if it has none."""
    stamp = message.timestamp
    if stamp is None or stamp < 0:
        return None
    return int(stamp) if isinstance(message, ConsumerRecord) else round(stamp * 1000)


class Rekeyer(Stage):
    doing = "the re-keying agent"

    def __init__(
        self,
        app: faust.App,
        settings: Settings,
        mapping: EventMapping,
        metrics: FunnelMetrics,
        registry: CollectorRegistry,
    ) -> None:
        self.metrics = metrics
        self.decode = decoder(settings.input_format, mapping)
        self.target = rekeyed_topic(settings)
        self.source = app.topic(settings.topic_touchpoints, key_serializer="raw", value_serializer="raw")
        connection = aiokafka_connection(settings)
        self.gaps = SkippedWatch(consumer_config(connection), settings.app_id, lambda: app.consumer, "re-keying")
        super().__init__(
            app,
            settings,
            FaustOutbox(app, settings.topic_touchpoints)  # exactly_once: in the source partition's transaction
            if settings.processing_guarantee == "exactly_once"
            else KafkaOutbox(connection, settings.partitions),
            settings.topic_touchpoints,
        )
        self.skipped = Counter(
            "funnel_input_skipped",
            "Input records of a known kind that are no touchpoint (Segment identify, alias, group), passed over",
            ["kind"],
            registry=registry,
        )
        for kind in SKIPPED_CALLS:
            self.skipped.labels(kind)
        self.rekeyed = Counter(
            "funnel_rekeyed_touchpoints", "Input records re-keyed by contact to the internal topic", registry=registry
        )
        self._placement: dict[bytes, int] = {}  # contact id -> its re-keyed partition
        app.agent(self.source, name="funnel-rekey")(self.run)
        app.on_partitions_revoked.connect(self._on_revoked)  # type: ignore[arg-type]  # faust types it narrower than it calls

    async def take(self, event: Any) -> None:
        """A source record Faust delivered itself (before the hand-over was installed)."""
        message = event.message
        # First the records Faust left out just after taking on this partition.
        self.metrics.recovered.inc(await self.gaps.recover(message, self.forward))
        await self.forward(message)
        self.batch.add(event, message.partition)

    async def list_taken(self, taken: Taken) -> None:
        """First the records Faust left out just after taking on this partition."""
        records = taken.records
        self.metrics.recovered.inc(await self.gaps.recover(records[0], self.forward))
        self.gaps.through(taken.tp.partition, records[-1].offset, len(records) - 1)

    async def take_record(self, record: Any, context: Any) -> None:
        await self.forward(record)

    async def forward(self, message: Any) -> None:
        """Re-key one source record, or dead-letter it, or pass it over."""
        raw = message.value
        if raw is None:
            await self.dead(NOT_JSON, "record has no value (a tombstone); an input record is a JSON object", message)
            return
        try:
            tp = self.decode(raw)
            check_not_ahead(tp, arrival_us(message, time.time()), self.settings.future_tolerance_us)
        except Skipped as skipped:
            self.skipped.labels(skipped.kind).inc()
            return
        except Invalid as bad:
            await self.dead(bad.reason, bad.detail, message)
            return
        contact = tp.contact_id.encode()
        partition = self._placement.get(contact)
        if partition is None:  # murmur2 is pure Python: remembered per contact
            if len(self._placement) >= PLACEMENTS_KEPT:
                self._placement.clear()
            partition = self._placement[contact] = default_partition(contact, self.settings.partitions)
        headers = source_headers(message.topic, message.partition, message.offset)
        value = orjson.dumps(as_touchpoint(tp))
        await self.outbox.put_in_order(
            self.target, partition, contact, value, timestamp_ms(message), headers, source=message.partition
        )
        self.rekeyed.inc()

    async def dead(self, reason: str, detail: str, message: Any) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        source = topic_source(message.topic, message.partition, message.offset)
        letter = dead_letter(reason, detail, message.value or b"", source, message.key)
        await self.outbox.put(
            self.settings.topic_deadletter, message.key, orjson.dumps(letter), source=message.partition
        )

    async def flush(self) -> None:
        """Await Kafka's acknowledgement of everything produced, then ack the source records to Faust."""
        batch = self.batch
        if not batch:
            return
        await self.outbox.delivered()  # raises if Kafka did not take them: the caller stops the worker
        acker = self._acker
        assert acker is not None, "records taken before the stream was set up"
        for event in batch.records:
            await acker.ack(event)
        self.batches.ack(batch.taken)
        batch.clear()

    def caught_up(self) -> bool:
        """Every source record read here is re-keyed and acknowledged, and none waits: the journeys
        agent's idle clock waits for that too, or a backlog here could fire drop-offs early."""
        return not self.batch and self.nothing_waiting()

    async def _on_revoked(self, sender: Any, *args: Any, signal: Any = None, **kwargs: Any) -> None:
        self.rebalanced()
        self.gaps.clear()


__all__ = ["Rekeyer", "timestamp_ms"]
