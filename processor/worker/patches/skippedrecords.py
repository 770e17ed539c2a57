"""Touchpoints Faust skipped just after taking on a partition, fetched and handed back.

Measured here (docs/research/faust-on-tansu.md, section 5.3; seen again by this
project's SIGKILL restart test): right after a worker takes on a partition, Faust
can leave out 1-3 records a few offsets past the committed offset; the cause is not
found. The benchmark's recovery runs also saw the very first record of a partition
(offset 0, nothing committed) left out. For the first records of each partition it
takes on, the agent checks that offsets follow on from where the group's consumer
starts (`start_offset`: the committed offset, else the log's first offset); where they
jump, this reads the missing range with a plain consumer. A jump can also be
legitimate (transaction markers, compaction): the read then finds nothing and costs
one short fetch.
"""

from __future__ import annotations

import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

WATCH_RECORDS = 10_000  # records checked per partition after it is taken on
FETCH_TIMEOUT_S = 10.0


def consumer_config(connection: dict[str, Any], *, committed_only: bool = False) -> dict[str, Any]:
    """A plain consumer's configuration, from `processor.kafka.connect.aiokafka_connection`; with committed_only,
    it reads as Faust's consumer does under exactly_once (records of aborted transactions left out)."""
    isolation = "read_committed" if committed_only else "read_uncommitted"
    return {**connection, "enable_auto_commit": False, "fetch_max_wait_ms": 50, "isolation_level": isolation}


async def start_offset(config: dict[str, Any], group: str, topic: str, partition: int) -> int:
    """Where `group` starts reading topic/partition: its committed offset, else the log's first."""
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**config, group_id=group)
    await consumer.start()
    try:
        committed = await consumer.committed(tp)
        if committed is not None:
            return int(committed)
        return int((await consumer.beginning_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def fetch_range(config: dict[str, Any], topic: str, partition: int, start: int, end: int) -> list[Any]:
    """Records of topic/partition with start <= offset < end, in offset order."""
    if start >= end:
        return []
    tp = TopicPartition(topic, partition)
    consumer = AIOKafkaConsumer(**config)
    await consumer.start()
    found: list[Any] = []
    try:
        consumer.assign([tp])
        consumer.seek(tp, start)
        deadline = time.monotonic() + FETCH_TIMEOUT_S
        while time.monotonic() < deadline and await consumer.position(tp) < end:
            batches = await consumer.getmany(tp, timeout_ms=200)
            found.extend(r for r in batches.get(tp, []) if start <= r.offset < end)
    finally:
        await consumer.stop()
    return found
