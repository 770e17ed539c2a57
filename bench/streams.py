"""Kafka plumbing for the harness (aiokafka): topics, pre-loading input, reading outputs as they arrive.

Input records are keyed by contact_id and placed by aiokafka's default partitioner
(murmur2, as Kafka's Java client does), which is what the worker requires.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from bench.procs import BenchError, Proc

PRODUCER = {"acks": "all", "linger_ms": 5, "max_batch_size": 1 << 20, "max_request_size": 8 << 20}
EXITED_PATIENCE_S = 5.0  # reading on after a process exited normally
SEND_WINDOW = 20_000  # records in flight before the producer waits for their acknowledgements


class Record(NamedTuple):
    topic: str
    partition: int
    timestamp_ms: int  # CreateTime: set by the producing client when the record was sent
    arrival: float  # time.time() when this reader received it
    key: bytes | None
    value: bytes


async def create_topics(hosts: str, names: Iterable[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=hosts)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1) for name in names])
    finally:
        await admin.close()


async def delete_topics(hosts: str, prefix: str) -> list[str]:
    """Delete every topic whose name starts with `prefix`; the names deleted."""
    admin = AIOKafkaAdminClient(bootstrap_servers=hosts)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
        return names
    finally:
        await admin.close()


def contact_key(line: bytes) -> bytes:
    return str(orjson.loads(line)["contact_id"]).encode()


async def produce(
    hosts: str, topic: str, records: Iterable[tuple[bytes, bytes]], partition: Callable[[bytes], int] | None = None
) -> int:
    """(key, value) records, acks=all, all acknowledged before returning; how many were sent."""
    producer = AIOKafkaProducer(bootstrap_servers=hosts, **PRODUCER)
    await producer.start()
    sent = 0
    pending: list[asyncio.Future[Any]] = []
    try:
        for key, value in records:
            where = None if partition is None else partition(key)
            pending.append(await producer.send(topic, value=value, key=key, partition=where))
            sent += 1
            if len(pending) >= SEND_WINDOW:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


async def preload(hosts: str, topic: str, lines: Sequence[bytes]) -> int:
    """Touchpoint lines as records keyed by contact_id."""
    return await produce(hosts, topic, ((contact_key(line), line) for line in lines))


@dataclass
class Reader:
    """Every record of some topics, from the beginning, as it arrives (no consumer group)."""

    hosts: str
    topics: Sequence[str]
    fetch_wait_ms: int = 100
    records: list[Record] | None = None

    async def __aenter__(self) -> Reader:
        self.records = []
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=self.hosts,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=self.fetch_wait_ms,
            max_partition_fetch_bytes=4 << 20,
        )
        await self.consumer.start()
        # Metadata for every topic: the consumer's own cluster view only holds topics it already
        # knows (Tansu's answers happened to fill it; Kafka's do not).
        metadata = await self.consumer._client.fetch_all_metadata()  # noqa: SLF001 -- aiokafka has no public call
        tps = [TopicPartition(t, p) for t in self.topics for p in sorted(metadata.partitions_for_topic(t) or ())]
        if not tps:
            raise BenchError(f"none of the topics {list(self.topics)} exist")
        self.consumer.assign(tps)
        await self.consumer.seek_to_beginning(*tps)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def poll(self, timeout_ms: int = 200) -> list[Record]:
        batch = await self.consumer.getmany(timeout_ms=timeout_ms)
        now = time.time()
        new = [
            Record(m.topic, m.partition, m.timestamp, now, m.key, m.value)
            for messages in batch.values()
            for m in messages
        ]
        assert self.records is not None
        self.records.extend(new)
        return new

    async def until(
        self, done: Callable[[list[Record]], bool], *, stall_s: float, procs: Sequence[Proc] = (), what: str = ""
    ) -> list[Record]:
        """Read until done(records) holds; BenchError when nothing new arrives for stall_s or a process dies."""
        assert self.records is not None
        last_new = time.monotonic()
        while not done(self.records):
            if await self.poll():
                last_new = time.monotonic()
            for proc in procs:
                if not proc.running():
                    proc.check_running()  # raises, unless it exited 0: then what it sent is still read
                    stall_s = min(stall_s, EXITED_PATIENCE_S)
            if time.monotonic() - last_new > stall_s:
                names = ", ".join(self.topics)
                raise BenchError(f"{what or names}: nothing new for {stall_s:g} s after {len(self.records)} records")
        return self.records
