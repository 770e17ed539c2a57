"""Plain Kafka clients (kafka-python) for the tools around the worker: no faust here.

Producing touchpoints (`simulate --to-topic`,
tests) and reading output topics back (`report --from-topics`, tests). Each call opens
its clients, does its work and closes them. Before a client is made, the connection is
checked step by step (processor/kafka/connect.py): a broker that cannot be reached within
`connect_timeout_s` raises BrokerUnavailable naming the addresses, a certificate that does
not verify TlsFailed, refused credentials AuthenticationFailed; never a bare trace.

Producing checks first that the topic exists, since brokers with auto.create.topics.enable
(and Tansu, always) create a missing topic a producer writes to. Needs kafka-python 3
(bootstrap_timeout_ms).

The commands reach all of processor/kafka through this module (`from processor.kafka import
clients as kafkaio`): the topic names (topics.py), the topic admin (admin.py) and the errors
(errors.py) are imported here under their own names.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from kafka import KafkaProducer
from kafka.structs import TopicPartition

from processor.config.settings import Settings
from processor.funnel.formats import record_key
from processor.kafka.admin import check_compaction as check_compaction
from processor.kafka.admin import check_partitions as check_partitions
from processor.kafka.admin import create_compacted as create_compacted
from processor.kafka.admin import create_topics as create_topics
from processor.kafka.errors import AuthenticationFailed as AuthenticationFailed
from processor.kafka.errors import BrokerUnavailable as BrokerUnavailable
from processor.kafka.errors import KafkaIOError as KafkaIOError
from processor.kafka.errors import ProduceFailed as ProduceFailed
from processor.kafka.errors import TlsFailed as TlsFailed
from processor.kafka.errors import TlsFilesUnusable as TlsFilesUnusable
from processor.kafka.errors import TopicMissing as TopicMissing
from processor.kafka.plainclient import CONNECT_TIMEOUT_S as CONNECT_TIMEOUT_S
from processor.kafka.plainclient import client, consumer
from processor.kafka.plainclient import partition_counts as partition_counts
from processor.kafka.topics import TABLES as TABLES
from processor.kafka.topics import all_topics as all_topics
from processor.kafka.topics import changelog_topics as changelog_topics
from processor.kafka.topics import copartitioned_topics as copartitioned_topics
from processor.kafka.topics import definitions_topic as definitions_topic
from processor.kafka.topics import input_topic as input_topic
from processor.kafka.topics import journeys_changelog as journeys_changelog
from processor.kafka.topics import output_topics as output_topics
from processor.kafka.topics import rekeyed_topic as rekeyed_topic

BEHIND_PATIENCE_S = 10.0  # read_topic: idle wait allowed while a partition is behind its end offset
POLL_MS = 200


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def produce_lines(
    settings: Settings,
    topic: str,
    lines: Iterable[bytes],
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    timestamp_ms: int | None = None,
    fmt: str = "touchpoint",
) -> int:
    """JSON lines as records (blank lines skipped); returns how many. Keyed as `record_key` says for the
    format: a touchpoint by contact_id, a Segment or Snowplow event by its message id."""
    records = ((record_key(fmt, line), line) for raw in lines if (line := raw.rstrip(b"\r\n")).strip())
    return produce_records(settings, topic, records, connect_timeout_s=connect_timeout_s, timestamp_ms=timestamp_ms)


def produce_records(
    settings: Settings,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    *,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
    timestamp_ms: int | None = None,
) -> int:
    """Raw (key, value) records, acks=all, flushed before returning; returns how many were sent.

    Records carry the producer's clock as their timestamp unless `timestamp_ms` is given (the
    worker takes it as the records' arrival time, for its bound on the future; a topic with
    message.timestamp.type=LogAppendTime replaces it with the broker's).
    """
    if partition_counts(settings, [topic], connect_timeout_s=connect_timeout_s)[topic] is None:
        raise TopicMissing(topic)
    failures: list[BaseException] = []
    sent = 0
    # acks=all with kafka-python 3's default idempotence: retries neither drop nor reorder a contact's records.
    with client(
        settings,
        KafkaProducer,
        connect_timeout_s,
        acks="all",
        linger_ms=20,
        batch_size=1 << 18,
        max_block_ms=round(connect_timeout_s * 1000),
    ) as producer:
        for key, value in records:
            producer.send(topic, key=key, value=value, timestamp_ms=timestamp_ms).add_errback(failures.append)
            sent += 1
        producer.flush()
    if failures:
        raise ProduceFailed(f"{len(failures)} of {sent} records were not written to {topic!r}: {failures[0]}")
    return sent


def read_topic(
    settings: Settings,
    topic: str,
    *,
    timeout_s: float,
    expect: int | None = None,
    group: str | None = None,
    connect_timeout_s: float = CONNECT_TIMEOUT_S,
) -> list[ConsumedRecord]:
    """Every record of every partition from the beginning, in partition order.

    Stops once `expect` records are read, or when nothing new arrived for `timeout_s` and
    every partition reached the end offset seen at the start (waited for up to
    BEHIND_PATIENCE_S). Those end offsets are exact on Kafka but only a floor on Tansu, whose
    ListOffsets(latest) answers the last batch's base offset + 1: the idle timeout, not the
    end offsets, decides when reading is done. With `group`, the consumer uses that group id
    and commits what it read at the end; partitions are still assigned directly (no group join).
    """
    extra = {"group_id": group} if group else {}
    with consumer(settings, connect_timeout_s, auto_offset_reset="earliest", **extra) as reader:
        partitions = sorted(reader.partitions_for_topic(topic) or ())
        if not partitions:
            raise TopicMissing(topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        reader.assign(tps)
        reader.seek_to_beginning(*tps)
        floor = reader.end_offsets(tps)
        read: list[ConsumedRecord] = []
        last_new = time.monotonic()
        while expect is None or len(read) < expect:
            batch = reader.poll(timeout_ms=POLL_MS)
            for messages in batch.values():
                read += [_record(m) for m in messages]
            if batch:
                last_new = time.monotonic()
                continue
            behind = any(reader.position(tp) < floor[tp] for tp in tps)
            if time.monotonic() - last_new >= (max(timeout_s, BEHIND_PATIENCE_S) if behind else timeout_s):
                break
        if group:
            reader.commit()
    read.sort(key=lambda r: (r.partition, r.offset))
    return read


def _record(message: Any) -> ConsumedRecord:
    headers = tuple((name, value or b"") for name, value in message.headers or ())
    return ConsumedRecord(message.topic, message.partition, message.offset, message.key, message.value, headers)
