"""Reading what a worker left on Kafka: its outputs as a read_committed consumer sees them,
and whether its consumer group has committed the whole input.

For the tests that need more than `processor.kafka.clients.read_topic` (which reads
uncommitted records and never asks about a group): exactly_once, broker outages,
compaction. And, for tests of bad input, every output and dead letter as the plain
client reads them, read again until enough arrived (`outputs_of`, `letters_of`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, cast

import orjson
from kafka import KafkaConsumer, TopicPartition

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.kafka.clients import ConsumedRecord
from processor.kafka.connection import Connection

POLL_MS = 200
_last_lags: dict[str, dict[int, int]] = {}  # topic -> partition -> lag, as last read
IDLE_S = 2.0  # a read ends this long after the last new record once every partition reached its end
OUTPUT_TIMEOUT_S = 90.0  # every good output and every dead letter through the worker


def read_outputs(settings: Settings, *, committed_only: bool, topics: Iterable[str] | None = None) -> list[Any]:
    """Every output (transitions and drop-offs) on the topics from the beginning, decoded.

    With committed_only, as a `read_committed` consumer sees them: records of aborted or
    still open transactions are left out.
    """
    isolation = "read_committed" if committed_only else "read_uncommitted"
    names = list(topics or (settings.topic_transitions, settings.topic_dropoffs))
    consumer = KafkaConsumer(
        **Connection.of(settings).kafka_python(),
        enable_auto_commit=False,
        isolation_level=isolation,
        consumer_timeout_ms=0,
    )
    try:
        tps = [TopicPartition(t, p) for t in names for p in sorted(consumer.partitions_for_topic(t) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)  # read_committed: the last stable offsets
        read: list[Any] = []
        last_new = time.monotonic()
        while True:
            batch = consumer.poll(timeout_ms=POLL_MS)
            for records in batch.values():
                read += [orjson.loads(r.value) for r in records]
            if batch:
                last_new = time.monotonic()
            elif all(consumer.position(tp) >= ends[tp] for tp in tps) and time.monotonic() - last_new >= IDLE_S:
                return read
            elif time.monotonic() - last_new >= 30 * IDLE_S:
                raise AssertionError(f"reading {names} stalled at {[consumer.position(tp) for tp in tps]} < {ends}")
    finally:
        consumer.close()


def group_lag(settings: Settings, topic: str) -> int | None:
    """Records of `topic` the worker's consumer group has not committed; None before its first commit.

    The group's committed offsets are read without joining it."""
    consumer = KafkaConsumer(
        **Connection.of(settings).kafka_python(), group_id=settings.app_id, enable_auto_commit=False
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = {tp: consumer.committed(tp) for tp in tps}
        if all(offset is None for offset in committed.values()):
            return None
        ends = consumer.end_offsets(tps)
        lags: dict[int, int] = {tp.partition: ends[tp] - (committed[tp] or 0) for tp in tps}
        _last_lags[topic] = lags
        return sum(lags.values())
    finally:
        consumer.close()


def records_not_committed(settings: Settings, topic: str) -> int | None:
    """Like group_lag, for a topic written in transactions: the records (not the transaction
    markers, which also take offsets) past the group's committed offsets; None before its first
    commit. A consumer commits the offset after the last record it took, so the marker that ends
    a partition's last transaction always stays past it, and group_lag never reaches 0."""
    consumer = KafkaConsumer(
        **Connection.of(settings).kafka_python(),
        group_id=settings.app_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        committed = {tp: consumer.committed(tp) for tp in tps}
        if all(offset is None for offset in committed.values()):
            return None
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        behind = 0
        while any(consumer.position(tp) < ends[tp] for tp in tps):
            for tp, records in consumer.poll(timeout_ms=POLL_MS).items():
                behind += sum(1 for r in records if r.offset >= (committed[tp] or 0))
        return behind
    finally:
        consumer.close()


def wait_caught_up(settings: Settings, timeout_s: float) -> float:
    """Wait until the group has committed every touchpoint; returns the seconds it took."""
    started = time.monotonic()
    lag = None
    while time.monotonic() - started < timeout_s:
        lag = group_lag(settings, settings.topic_touchpoints)
        if lag == 0:
            return time.monotonic() - started
        time.sleep(1.0)
    by_partition = _last_lags.get(settings.topic_touchpoints)
    raise AssertionError(f"the worker's group still lags {lag} touchpoints after {timeout_s:g} s: {by_partition}")


def read_until(read: Callable[[], list[Any]], enough: Callable[[list[Any]], bool], timeout_s: float) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = read()
        if enough(got) or time.monotonic() > deadline:
            return got
        time.sleep(1.0)


def outputs_of(settings: Settings, expect: int, timeout_s: float = OUTPUT_TIMEOUT_S) -> list[dict[str, Any]]:
    def read() -> list[dict[str, Any]]:
        topics = (settings.topic_transitions, settings.topic_dropoffs)
        return [
            orjson.loads(cast(bytes, r.value)) for t in topics for r in kafkaio.read_topic(settings, t, timeout_s=1.0)
        ]

    return read_until(read, lambda got: len({o["id"] for o in got}) >= expect, timeout_s)


def letters_of(settings: Settings, expect: int, timeout_s: float = OUTPUT_TIMEOUT_S) -> list[ConsumedRecord]:
    def read() -> list[ConsumedRecord]:
        return kafkaio.read_topic(settings, settings.topic_deadletter, timeout_s=1.0)

    return read_until(read, lambda got: len({r.value for r in got}) >= expect, timeout_s)
