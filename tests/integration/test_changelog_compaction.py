"""The table changelogs are compacted topics, and a worker recovers from one Kafka has compacted.

The test's changelogs roll a segment every half second and are cleaned at any dirty
ratio, so Kafka's log cleaner compacts them while the test runs (production changelogs
keep Kafka's defaults; `topics create` sets only cleanup.policy=compact). A worker with
the memory store works through the first half of the input, in bursts so that each
contact's state is written several times, and stops. Once the cleaner has removed
older states (fewer records held than offsets written), a new memory-store worker
rebuilds its tables from that compacted changelog alone and works through the second
half. All outputs must equal the replay of the whole input.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from expected import assert_same_outputs, oracle, simulate
from kafka import KafkaConsumer, TopicPartition
from kafkaread import read_outputs, wait_caught_up

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.kafka.connection import Connection

pytestmark = pytest.mark.kafka_only

PARTITIONS = 2
TOUCHPOINTS = 4000
BURSTS = 8  # the input in bursts: a contact's state is written once per batch that touches it
CHANGELOG_TEST_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": "500",  # a new segment at the first write after half a second
    "min.cleanable.dirty.ratio": "0.01",
    "min.compaction.lag.ms": "0",
}
COMPACTED_TIMEOUT_S = 90.0
CAUGHT_UP_TIMEOUT_S = 120.0
HELD = re.compile(r"partition (\d+): (\d+) contacts, timers rebuilt")


def held_and_written(settings: Settings, topic: str) -> tuple[int, int]:
    """(records the topic holds, offsets written to it) over all partitions."""
    consumer = KafkaConsumer(
        **Connection.of(settings).kafka_python(), enable_auto_commit=False, consumer_timeout_ms=2000
    )
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        starts, ends = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
        held = sum(1 for _ in consumer)
        return held, sum(ends[tp] - starts[tp] for tp in tps)
    finally:
        consumer.close()


def feed(settings: Settings, chunks: list[list[bytes]]) -> None:
    """Each chunk produced once the worker has committed the one before, half a second apart."""
    for chunk in chunks:
        kafkaio.produce_lines(settings, settings.topic_touchpoints, chunk)
        wait_caught_up(settings, CAUGHT_UP_TIMEOUT_S)
        time.sleep(0.6)  # past segment.ms: the next write rolls the changelog's segment


def test_a_worker_recovers_from_a_changelog_kafka_has_compacted(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    names = topics(PARTITIONS, create=False)
    env = broker.env(names, idle_after="1d", store="memory", web_port=free_port())
    settings = Settings.from_env(env)
    journeys, clocks = kafkaio.changelog_topics(settings)
    for changelog in (journeys, clocks):
        broker.create_topic(changelog, PARTITIONS, **CHANGELOG_TEST_CONFIG)
    kafkaio.create_topics(settings)  # the others; the changelogs exist and are left as they are
    assert kafkaio.check_compaction(settings) == []

    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=23)
    expected = oracle(lines, PARTITIONS)
    size = -(-len(lines) // BURSTS)
    chunks = [lines[i : i + size] for i in range(0, len(lines), size)]
    first_half = chunks[: BURSTS // 2]

    first = worker(env, "first")
    first.wait_ready()
    feed(settings, first_half)
    assert first.stop() == 0

    deadline = time.monotonic() + COMPACTED_TIMEOUT_S
    held, written = held_and_written(settings, journeys)
    while held >= written:
        assert time.monotonic() < deadline, f"{journeys}: no record cleaned within {COMPACTED_TIMEOUT_S:g} s"
        time.sleep(1.0)
        held, written = held_and_written(settings, journeys)
    contacts = {orjson.loads(line)["contact_id"] for chunk in first_half for line in chunk}
    assert held >= len(contacts)  # compaction keeps the latest state of every contact
    print(f"{journeys}: {written} states written, {held} held after compaction, {len(contacts)} contacts")

    second = worker(env, "second")  # memory store: its tables come from the compacted changelog alone
    second.wait_ready()
    feed(settings, chunks[BURSTS // 2 :])
    recovered = sum(int(n) for _, n in HELD.findall(second.log_text()))  # logged as it takes each partition
    got = read_outputs(settings, committed_only=False)
    repeats = assert_same_outputs(got, expected)
    print(f"the second worker recovered {recovered} contacts; {len(expected)} outputs, {repeats} repeats")
    assert recovered == len(contacts)
    assert second.stop() == 0
    for proc in (first, second):
        assert "Traceback" not in proc.log_text(), proc.log_text()[-3000:]
