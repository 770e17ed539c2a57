"""Where the agent's records go: sent as they are made, awaited once per batch.

`put()` hands over a record for the partition its key maps to, `append()` one for a
given partition (a table changelog's); `delivered()` returns once Kafka has
acknowledged every record handed over since the last call, or raises. The agent
writes states and acks its input records only after `delivered()` (see
`processor.batch`).

Two kinds:

- `KafkaOutbox` (at_least_once, the default): the worker's own aiokafka producer,
  filling one record batch per topic partition and sending it when full or when the
  agent's batch is flushed. A record costs an append to a batch, not a per-record
  future, sensor calls and send as through Faust's topics: outputs are most of what
  the worker writes. Partitions are chosen as Kafka's default partitioner does
  (murmur2 of the key), so each contact's outputs stay in one partition, in order.
- `FaustOutbox` (exactly_once): each record through Faust's topic, so that it joins
  the transaction Faust commits the input offsets in.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import murmur2

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

    async def put(self, topic: str, key: bytes | None, value: bytes, placed: int | None = None) -> None:
        """Queue one record for the partition Kafka's default partitioner gives its key.

        `placed`: the input partition, when the key is known to be placed there (a contact's
        outputs: the agent checks every touchpoint's partition). A topic with as many
        partitions as the input puts the key in that same partition, so murmur2 is skipped.
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
        self, topic: str, partition: int, key: bytes, value: bytes, timestamp_ms: int | None, headers: Headers
    ) -> None:
        """Queue one record for this partition, with its own timestamp and headers, and never two
        batches of a partition in flight at once: when the partition's batch is full, everything
        handed over so far is delivered first. So a later batch never lands while an earlier one
        failed, and the partition's records reach Kafka in order with no gap (processor/rekey.py)."""
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
    def __init__(self, app: faust.App) -> None:
        self.app = app
        self._topics: dict[str, faust.TopicT] = {}
        self._sent: list[Awaitable[Any]] = []

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def put(self, topic: str, key: bytes | None, value: bytes, placed: int | None = None) -> None:
        channel = self._topics.get(topic)
        if channel is None:
            channel = self._topics[topic] = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        self._sent.append(await channel.send(key=key, value=value))

    def append(self, topic: str, partition: int, key: bytes, value: bytes) -> None:
        raise TypeError("with exactly_once, tables write through Faust")

    async def put_in_order(
        self, topic: str, partition: int, key: bytes, value: bytes, timestamp_ms: int | None, headers: Headers
    ) -> None:
        """Through Faust's producer, in its transaction; Faust's topic sends keep a partition's order."""
        channel = self._topics.get(topic)
        if channel is None:
            channel = self._topics[topic] = self.app.topic(topic, key_serializer="raw", value_serializer="raw")
        timestamp = None if timestamp_ms is None else timestamp_ms / 1000
        self._sent.append(
            await channel.send(key=key, value=value, partition=partition, timestamp=timestamp, headers=headers)
        )

    async def delivered(self) -> dict[tuple[str, int], int]:
        sent, self._sent = self._sent, []
        for acknowledgement in sent:
            await acknowledgement
        return {}
