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

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

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


async def skip_in_commits(consumer: Any, tp: Any, start: int, end: int) -> None:
    """Let Faust commit past offsets start..end-1, which its consumer did not deliver but that are
    taken care of (processed from a gap read, or nothing to process).

    Faust records such a gap only between two records it delivered, not between the committed
    offset and a partition's first record: without this it never again commits that
    partition's offsets (with exactly_once its transactions then time out, fencing the worker).
    """
    if end - start > 1:
        await consumer._add_gap(tp, start, end - 1)  # noqa: SLF001 -- faust internal, README Design


class SkippedWatch:
    """The check above for one stream (the journeys agent's, or the re-keyer's source): per
    partition, the offsets of its first WATCH_RECORDS records since the last rebalance."""

    def __init__(self, fetch_config: dict[str, Any], group: str, consumer: Callable[[], Any], doing: str) -> None:
        self.fetch_config, self.group, self._consumer = fetch_config, group, consumer
        self.doing = doing  # what the stream does with a record, for the log line: "processing", "re-keying"
        self._watch: dict[int, tuple[int | None, int]] = {}  # partition -> (next offset, records checked)

    async def recover(self, message: Any, handle: Callable[[Any], Awaitable[None]]) -> int:
        """Hand to `handle`, in offset order, the records of the message's partition that Faust left
        out before it, then let Faust commit past them; how many there were (usually none)."""
        partition, offset = message.partition, message.offset
        expected, checked = self._watch.get(partition, (None, 0))
        if checked >= WATCH_RECORDS:
            return 0
        self._watch[partition] = (offset + 1, checked + 1)
        if expected is None:  # the partition's first record here: from where the group starts
            expected = await start_offset(self.fetch_config, self.group, message.topic, partition)
        if offset <= expected:
            return 0
        missed = await fetch_range(self.fetch_config, message.topic, partition, expected, offset)
        if missed:
            log.warning(
                "%s partition %d: %d records before offset %d were not delivered; %s them",
                message.topic,
                partition,
                len(missed),
                offset,
                self.doing,
            )
        for record in missed:
            await handle(record)
        await skip_in_commits(self._consumer(), TP(message.topic, partition), expected, offset)
        return len(missed)

    def through(self, partition: int, offset: int, count: int) -> None:
        """`count` records of the partition, up to `offset`, were taken in one list after the one
        `recover` checked: the next is checked from the offset after it."""
        expected, checked = self._watch.get(partition, (None, 0))
        if expected is not None:
            self._watch[partition] = (offset + 1, checked + count)

    def clear(self) -> None:
        """A rebalance: every partition is checked again from where the group starts."""
        self._watch.clear()
