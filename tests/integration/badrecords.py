"""Bad records and how they are put on a topic: each with the dead-letter reason it must get."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from kafka import KafkaProducer

from processor.config.settings import Settings
from processor.kafka.connection import Connection


@dataclass(frozen=True)
class Bad:
    name: str
    reason: str  # the dead-letter reason code expected
    value: bytes | None  # None: a record with no value (a tombstone)
    key: bytes | None
    partition: int | None = None  # produced to this partition instead of the key's


def sized(document: dict[str, Any], size: int) -> bytes:
    """The document with a 'blob' property padded so that its JSON is exactly `size` bytes."""
    bare = len(orjson.dumps({**document, "properties": {"blob": ""}}))
    value = orjson.dumps({**document, "properties": {"blob": "x" * (size - bare)}})
    assert len(value) == size
    return value


def produce_each(settings: Settings, topic: str, records: Iterable[Bad]) -> None:
    """Records one by one, in order, each to its chosen partition if it has one (which
    kafkaio.produce_records leaves to the partitioner) and with a null value if it has none."""
    producer = KafkaProducer(**Connection.of(settings).kafka_python(), acks="all")
    try:
        for bad in records:
            producer.send(topic, key=bad.key, value=bad.value, partition=bad.partition).get(timeout=30)
    finally:
        producer.close()
