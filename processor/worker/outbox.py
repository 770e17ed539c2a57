"""Where the agent's records go: sent as they are made, awaited once per batch.

`put()` hands over a record for the partition its key maps to, `append()` one for a
given partition (a table changelog's); `delivered()` returns once Kafka has
acknowledged every record handed over since the last call, or raises. The agent
writes states and acks its input records only after `delivered()` (see
`processor.worker.batch`).

Two kinds:

- `KafkaOutbox` (at_least_once, the default): the worker's own aiokafka producer,
  filling one record batch per topic partition and sending it when full or when the
  agent's batch is flushed. A record costs an append to a batch, not a per-record
  future, sensor calls and send as through Faust's topics: outputs are most of what
  the worker writes. Partitions are chosen as Kafka's default partitioner does
  (murmur2 of the key), so each contact's outputs stay in one partition, in order.
- `FaustOutbox` (exactly_once): each record through the transactional producer Faust
  keeps for the input partition being processed, so that it is committed, or
  aborted, together with that partition's table writes and input offsets.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2
from faust.transport.consumer import TopicPartitionGroup, TransactionManager

MAX_BATCH_BYTES = 512 * 1024  # a record batch of one partition (a dead letter can be ~90 KiB)
Headers = list[tuple[str, bytes]]


def default_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (murmur2) gives a key."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class KafkaOutbox:
    def __init__(self, connection: dict[str, Any], source_partitions: int) -> None:
        self.connection = connection
        self.producer: Any = None  # an AIOKafkaProducer between start() and stop()
        self.source_partitions = source_partitions
        self._counts: dict[str, int] = {}  # topic -> partition count
        self._open: dict[tuple[str, int], Any] = {}  # (topic, partition) -> BatchBuilder being filled
        self._full: list[tuple[tuple[str, int], Any]] = []  # filled by append(), sent by delivered()
        self._sent: list[tuple[tuple[str, int], int, Awaitable[Any]]] = []  # (slot, records, acknowledgement)
        self._spread = 0

    async def start(self) -> None:
        """Start a producer (a stopped aiokafka producer cannot start again)."""
        self.producer = AIOKafkaProducer(
            **self.connection, acks="all", linger_ms=0, max_batch_size=MAX_BATCH_BYTES, enable_idempotence=False
        )
        await self.producer.start()

    async def stop(self) -> None:
        """Stop the producer; records not yet delivered are dropped (their input is not acked)."""
        producer, self.producer = self.producer, None
        self._open.clear()
        self._full.clear()
        self._sent.clear()
        if producer is not None:
            await producer.stop()

    async def put(
        self, topic: str, key: bytes | None, value: bytes, placed: int | None = None, *, source: int | None = None
    ) -> None:
        """Queue one record for the partition Kafka's default partitioner gives its key.

        `placed`: the input partition, when the key is known to be placed there (a contact's
        outputs: the agent checks every touchpoint's partition). A topic with as many
        partitions as the input puts the key in that same partition, so murmur2 is skipped.
        `source`: the input partition whose record caused this one (used with exactly_once).
        """
        count = self._counts.get(topic)
        if count is None:
            count = self._counts[topic] = len(await self.producer.partitions_for(topic))
        if placed is not None and count == self.source_partitions:
            partition = placed
        elif key is None:  # spread, as the default partitioner does for keyless records
            partition = self._spread = (self._spread + 1) % count
        else:
            partition = default_partition(key, count)
        full = self._add((topic, partition), key, value)
        if full is not None:
            await self._ship((topic, partition), full)

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        """Queue one record for this partition; it is sent by the next `delivered()` at the latest."""
        slot = (topic, partition)
        full = self._add(slot, key, value)
        if full is not None:
            self._full.append((slot, full))

    async def put_in_order(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        timestamp_ms: int | None,
        headers: Headers,
        *,
        source: int | None = None,
    ) -> None:
        """Queue one record for this partition, with its own timestamp and headers, and never two
        batches of a partition in flight at once: when the partition's batch is full, everything
        handed over so far is delivered first. So a later batch never lands while an earlier one
        failed, and the partition's records reach Kafka in order with no gap (processor/worker/rekey.py)."""
        slot = (topic, partition)
        record = {"timestamp": timestamp_ms, "key": key, "value": value, "headers": headers}
        batch = self._open.get(slot)
        if batch is not None and batch.append(**record) is not None:
            return
        if batch is not None:
            await self.delivered()
        batch = self._open[slot] = self.producer.create_batch()
        batch.append(**record)  # an empty batch takes any record, even a larger one

    def _add(self, slot: tuple[str, int], key: bytes | None, value: bytes) -> Any:
        """Append to the slot's open batch; returns the batch it filled, if one filled up."""
        batch = self._open.get(slot)
        if batch is None:
            batch = self._open[slot] = self.producer.create_batch()
        if batch.append(timestamp=None, key=key, value=value) is not None:
            return None
        full = batch
        batch = self._open[slot] = self.producer.create_batch()
        batch.append(timestamp=None, key=key, value=value)  # an empty batch takes any record, even a larger one
        return full

    async def _ship(self, slot: tuple[str, int], batch: Any) -> None:
        topic, partition = slot
        acknowledgement = await self.producer.send_batch(batch, topic, partition=partition)
        self._sent.append((slot, batch.record_count(), acknowledgement))

    async def delivered(self) -> dict[tuple[str, int], int]:
        """Wait for every record handed over so far; returns the last offset written per (topic, partition)."""
        for slot, batch in self._full:
            await self._ship(slot, batch)
        self._full.clear()
        for slot, batch in self._open.items():
            await self._ship(slot, batch)
        self._open.clear()
        self._counts.clear()  # partition counts are read again (from the producer's metadata) per batch
        sent, self._sent = self._sent, []
        last: dict[tuple[str, int], int] = {}
        for slot, records, acknowledgement in sent:
            metadata = await acknowledgement
            last[slot] = max(last.get(slot, -1), metadata.offset + records - 1)
        return last


class FaustOutbox:
    """exactly_once: records go through the transactional producer of their input partition.

    Faust keeps one transactional producer per input partition (transactional id
    "{app id}-{topic group}-{partition}") and commits that partition's input offsets in
    its transaction. Faust's own `topic.send()` would choose the producer from the
    *destination* topic instead, and for a topic this worker does not consume (the
    outputs, the dead letters) it falls back to its plain producer: those records were
    then outside every transaction, visible before the offsets that made them were
    committed, and written again after a crash. Here every record is sent with the
    input partition's transactional id, so a read_committed consumer sees it exactly
    when the input offset that caused it is committed.
    """

    def __init__(self, app: faust.App, source_topic: str) -> None:
        self.app = app
        self.source_topic = source_topic  # the touchpoints topic: its topic group names the producers
        self._sent: list[Awaitable[Any]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        self._sent.clear()

    def transactional_id(self, partition: int) -> str:
        """The id of the producer Faust commits this input partition's offsets with."""
        group = self.app.assignor.group_for_topic(self.source_topic)
        tpg = TopicPartitionGroup(self.source_topic, partition, group)
        return TransactionManager.transactional_id_format.format(group_id=self.app.conf.id, tpg=tpg)

    async def put(
        self, topic: str, key: bytes | None, value: bytes, placed: int | None = None, *, source: int | None = None
    ) -> None:
        partition = source if source is not None else placed
        if partition is None:
            raise ValueError("with exactly_once, every record needs the input partition that caused it")
        # Partition None: the producer's default partitioner (murmur2 of the key), as Kafka's.
        sent = await self.app.producer.send(
            topic, key, value, None, None, None, transactional_id=self.transactional_id(partition)
        )
        self._sent.append(sent)

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        raise TypeError("with exactly_once, tables write through Faust")

    async def put_in_order(
        self,
        topic: str,
        partition: int,
        key: bytes,
        value: bytes,
        timestamp_ms: int | None,
        headers: Headers,
        *,
        source: int | None = None,
    ) -> None:
        """In the transaction of the source partition that caused it; one producer per source
        partition keeps each source partition's records in order (processor/worker/rekey.py)."""
        if source is None:
            raise ValueError("with exactly_once, every record needs the input partition that caused it")
        timestamp = None if timestamp_ms is None else timestamp_ms / 1000  # Faust's producer takes seconds
        sent = await self.app.producer.send(
            topic, key, value, partition, timestamp, headers, transactional_id=self.transactional_id(source)
        )
        self._sent.append(sent)

    async def delivered(self) -> dict[tuple[str, int], int]:
        """Wait for the records put here, and for what Faust's tables wrote meanwhile: a table write
        goes to Faust's producer buffer, which would otherwise send its changelog record later,
        possibly after the transaction that commits the input offset the state belongs to."""
        sent, self._sent = self._sent, []
        for acknowledgement in sent:
            await acknowledgement
        await self.app.producer.flush()  # the buffer, then every transactional producer
        return {}
