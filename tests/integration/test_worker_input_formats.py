"""Segment-spec and Snowplow events on Kafka, keyed by message id, through the worker (SPEC: Input formats).

The worker re-keys such records by contact through its internal topic and then works as on
touchpoints keyed by contact: its outputs must equal the replay of the equivalent native
touchpoints (`simulate --format F` writes the same touchpoints in F's shape).

Kafka orders records within a partition only. A contact's events keyed by message id over
several partitions have no order between them, and neither has the worker (SPEC: Order,
"arrival order"); the equality with the file replay therefore uses a one-partition source,
keyed by message id, re-keyed into 4 partitions. `test_a_source_over_several_partitions_...`
covers the other case: each re-keyed partition must give exactly the replay of what it
received, every source record once.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, cast

import orjson
import pytest
from expected import assert_same_outputs, collect, oracle, simulate_in_format
from factories import replay_partitions
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafkaread import letters_of, outputs_of
from workers import assert_never_restarted, wait_for_outputs, worker_env

from processor.config.definitions import PRESETS
from processor.config.schemas import validator
from processor.config.settings import Settings
from processor.funnel.formats import record_key
from processor.kafka import clients as kafkaio
from processor.kafka.clients import ConsumedRecord
from processor.kafka.connection import Connection
from processor.worker.outbox import default_partition
from processor.worker.state.sourcemarks import origin

PARTITIONS = 4
TOUCHPOINTS = 6_000  # over 5,000 events in either shape
OUTPUT_TIMEOUT_S = 300.0
FORMATS = ("segment", "snowplow")


@pytest.fixture
def source_topics(broker: Any, topics: Callable[..., Any]) -> Iterator[Callable[..., Any]]:
    """make(source_partitions, fmt, mapping) -> (names, settings): the input topic made with its own
    partition count, the rest by `topics create`; the internal topic is deleted after (on Kafka)."""
    made: list[Settings] = []

    def make(source_partitions: int, fmt: str, mapping: Path) -> tuple[Any, Settings]:
        names = topics(PARTITIONS, create=False)
        broker.create_topic(names.touchpoints, source_partitions)
        settings = broker.settings(names, input_format=fmt, input_mapping=mapping)
        kafkaio.create_topics(settings)
        made.append(settings)
        return names, settings

    yield make
    if not broker.is_tansu and made:
        admin = KafkaAdminClient(**Connection.of(made[0]).kafka_python())
        try:
            admin.delete_topics([kafkaio.rekeyed_topic(s) for s in made], raise_errors=False)
        finally:
            admin.close()


class Stamped(NamedTuple):
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int  # ms
    headers: Any


def read_with_timestamps(settings: Settings, topic: str, expect: int) -> list[Stamped]:
    """Every record of a topic with its Kafka timestamp (kafkaio's reader leaves timestamps out)."""
    consumer = KafkaConsumer(**Connection.of(settings).kafka_python(), enable_auto_commit=False)
    try:
        tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        found: list[Stamped] = []
        deadline = time.monotonic() + 30
        while len(found) < expect and time.monotonic() < deadline:
            for messages in consumer.poll(timeout_ms=500).values():
                found += [Stamped(m.partition, m.offset, m.key, m.value, m.timestamp, m.headers) for m in messages]
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


@pytest.mark.parametrize("fmt", FORMATS)
def test_events_keyed_by_message_id_give_the_replay_of_the_same_touchpoints(
    broker: Any,
    source_topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
    fmt: str,
) -> None:
    native, shaped, mapping = simulate_in_format(tmp_path, fmt, TOUCHPOINTS, seed=5)
    assert len(shaped) >= 5_000
    names, settings = source_topics(1, fmt, mapping)
    expected = oracle(native, PARTITIONS)
    assert kafkaio.produce_lines(settings, names.touchpoints, shaped, fmt=fmt) == len(shaped)
    keys = {r.key for r in kafkaio.read_topic(settings, names.touchpoints, timeout_s=1.0, expect=len(shaped))}
    assert len(keys) > TOUCHPOINTS * 0.9 and not keys & {orjson.loads(line)["contact_id"].encode() for line in native}

    env = worker_env(broker, names, free_port, input_format=fmt, input_mapping=mapping)
    proc = worker(env)
    proc.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    repeats = assert_same_outputs(got, expected)
    print(f"{len(shaped):,} {fmt} events, {len(expected):,} outputs; {repeats} at-least-once repeats")
    assert kafkaio.read_topic(settings, names.deadletter, timeout_s=1.0) == []
    assert proc.stop() == 0
    assert "Traceback" not in proc.log_text()


def test_a_rekeyed_record_keeps_the_source_timestamp_and_names_its_source(
    broker: Any,
    source_topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    """The bound on the future measures the original's arrival: the re-keyed copy carries its timestamp."""
    native, shaped, mapping = simulate_in_format(tmp_path, "segment", 200, seed=8)
    names, settings = source_topics(1, "segment", mapping)
    stamp_ms = int(time.time() * 1000) - 60_000  # after every simulated time, before the worker's wall clock
    kafkaio.produce_lines(settings, names.touchpoints, shaped, fmt="segment", timestamp_ms=stamp_ms)
    env = broker.env(names, idle_after="1d", store="memory", web_port=free_port())
    proc = worker({**env, "FUNNEL_INPUT_FORMAT": "segment", "FUNNEL_INPUT_MAPPING": str(mapping)})
    proc.wait_ready()
    collect(settings, len(oracle(native, PARTITIONS)), OUTPUT_TIMEOUT_S)
    source = {r.offset: r for r in read_with_timestamps(settings, names.touchpoints, len(shaped))}
    rekeyed = read_with_timestamps(settings, kafkaio.rekeyed_topic(settings), len(native))
    assert len(rekeyed) == len(native)  # one per touchpoint: identify, alias and group are skipped
    for record in rekeyed:
        touchpoint = orjson.loads(record.value)
        validator("touchpoint").validate(touchpoint)
        assert record.key == touchpoint["contact_id"].encode()
        assert record.partition == default_partition(cast(bytes, record.key), PARTITIONS)
        where = origin(record)
        assert where is not None and where[0] == f"{names.touchpoints}:0"
        original = source[where[1]]
        assert orjson.loads(original.value)["messageId"] == touchpoint["event_id"]
        assert record.timestamp == original.timestamp == stamp_ms
    assert proc.stop() == 0


def bad_records(fmt: str) -> list[tuple[str, str, str, dict[str, Any]]]:
    """(name, reason, the field the detail names, the record) of records that cannot become touchpoints."""
    when = "2026-01-02T00:00:00Z"
    if fmt == "segment":
        base = {"type": "track", "event": "Signed Up", "userId": "bad-user", "timestamp": when}
        return [
            ("track-without-event", "missing_field", "event", {**base, "event": None}),
            ("no-user-or-anonymous-id", "missing_field", "anonymousId", {**base, "userId": ""}),
            ("timestamp-unparseable", "bad_timestamp", "timestamp", {**base, "timestamp": "02/01/2026 00:00"}),
            ("unknown-call", "invalid_value", "type", {**base, "type": "purchase"}),
            ("no-message-id", "missing_field", "messageId", {**base, "messageId": None}),
            (
                "medium-number",
                "wrong_type",
                "context.campaign.medium",
                {**base, "context": {"campaign": {"medium": 7}}},
            ),
            ("from-2099", "future_timestamp", "2099", {**base, "timestamp": "2099-01-01T00:00:00Z"}),
        ]
    base = {"event": "struct", "se_action": "Signed Up", "user_id": "bad-user", "collector_tstamp": when}
    return [
        ("no-event-id", "missing_field", "event_id", {**base, "event_id": None}),
        ("no-user", "missing_field", "domain_userid", {**base, "user_id": ""}),
        ("struct-without-action", "missing_field", "se_action", {**base, "se_action": None}),
        ("tstamp-unparseable", "bad_timestamp", "collector_tstamp", {**base, "collector_tstamp": "yesterday"}),
        ("from-2099", "future_timestamp", "2099", {**base, "derived_tstamp": "2099-01-01T00:00:00Z"}),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_events_are_dead_lettered_with_their_source_and_the_rest_goes_on(
    broker: Any,
    source_topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
    fmt: str,
) -> None:
    native, shaped, mapping = simulate_in_format(tmp_path, fmt, 300, seed=11)
    names, settings = source_topics(1, fmt, mapping)
    id_field = "messageId" if fmt == "segment" else "event_id"
    bads = bad_records(fmt)
    values = {}
    for name, _, _, record in bads:
        doc = {id_field: f"bad-{name}", **record}
        values[name] = orjson.dumps({k: v for k, v in doc.items() if v is not None})
    step = len(shaped) // (len(bads) + 1)
    records: list[tuple[bytes | None, bytes]] = []
    pending = iter(bads)
    for index, line in enumerate(shaped):  # the good events keyed by message id, a bad one every few
        records.append((record_key(fmt, line), line))
        if index % step == step - 1 and (bad := next(pending, None)) is not None:
            records.append((f"key-{bad[0]}".encode(), values[bad[0]]))
    assert kafkaio.produce_records(settings, names.touchpoints, records) == len(shaped) + len(bads)
    stored = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=len(records))
    where = {r.value: r for r in stored}

    env = broker.env(names, idle_after="1d", store="memory", web_port=free_port())
    proc = worker({**env, "FUNNEL_INPUT_FORMAT": fmt, "FUNNEL_INPUT_MAPPING": str(mapping)})
    proc.wait_ready()
    letters = [orjson.loads(r.value or b"") for r in letters_of(settings, len(bads))]
    by_payload = {letter["payload"]: letter for letter in letters}
    problems = []
    for name, reason, field, _ in bads:
        letter = by_payload.get(values[name].decode())
        if letter is None:
            problems.append(f"{name}: no dead letter")
            continue
        validator("deadletter").validate(letter)
        stored_record: ConsumedRecord = where[values[name]]
        source = {"topic": names.touchpoints, "partition": stored_record.partition, "offset": stored_record.offset}
        if (letter["reason"], letter["source"], letter["key"]) != (reason, source, f"key-{name}"):
            problems.append(f"{name}: expected {reason} from {source}, got {letter}")
        if field not in letter["detail"]:
            problems.append(f"{name}: the detail does not name {field!r}: {letter['detail']}")
    assert len(letters) == len(bads), f"{len(letters)} dead letters for {len(bads)} bad records: {letters}"
    assert not problems, "\n".join(problems)
    expected = oracle(native, PARTITIONS)
    assert_same_outputs(outputs_of(settings, len(expected)), expected)
    assert_never_restarted(proc)


def test_a_killed_worker_on_segment_events_keyed_by_message_id_loses_nothing(
    broker: Any,
    source_topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    """SIGKILL mid-stream: the restarted worker re-keys again what was not acked, and applies no copy twice."""
    native, shaped, mapping = simulate_in_format(tmp_path, "segment", 20_000, seed=13)
    names, settings = source_topics(1, "segment", mapping)
    env = worker_env(broker, names, free_port, input_format="segment", input_mapping=mapping)
    expected = oracle(native, PARTITIONS)
    kafkaio.produce_lines(settings, names.touchpoints, shaped, fmt="segment")

    first = worker(env, "first")
    first.wait_ready()
    seen = wait_for_outputs(settings, len(expected) // 6)
    first.stop(signal.SIGKILL)
    second = worker(env, "second")
    second.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    repeats = assert_same_outputs(got, expected)
    rekeyed = kafkaio.read_topic(settings, kafkaio.rekeyed_topic(settings), timeout_s=1.0)
    copies = len(rekeyed) - len({origin(r) for r in rekeyed})
    print(f"killed after {seen} transitions; {len(expected)} outputs, {repeats} repeats; {copies} re-keyed twice")
    assert second.stop() == 0


def test_a_source_over_several_partitions_is_rekeyed_once_per_record_and_replayed_exactly(
    broker: Any,
    source_topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    """Keyed by message id over 3 partitions: every touchpoint reaches the journeys exactly once, and each
    re-keyed partition gives the replay of the touchpoints in the order it received them."""
    native, shaped, mapping = simulate_in_format(tmp_path, "snowplow", 4_000, seed=17)
    names, settings = source_topics(3, "snowplow", mapping)
    kafkaio.produce_lines(settings, names.touchpoints, shaped, fmt="snowplow")
    proc = worker(worker_env(broker, names, free_port, input_format="snowplow", input_mapping=mapping))
    proc.wait_ready()
    rekeyed_topic = kafkaio.rekeyed_topic(settings)
    rekeyed = kafkaio.read_topic(settings, rekeyed_topic, timeout_s=2.0, expect=len(native))
    firsts: dict[int, list[bytes]] = defaultdict(list)
    seen = set()
    for record in rekeyed:  # copies aside (none without a crash), in the order each partition holds them
        if origin(record) not in seen:
            seen.add(origin(record))
            assert record.value is not None
            firsts[record.partition].append(record.value)
    assert len(seen) == len(native)
    assert sorted(orjson.loads(v)["event_id"] for vs in firsts.values() for v in vs) == sorted(
        orjson.loads(line)["event_id"] for line in native
    )
    expected = replay_partitions(PRESETS, firsts.values(), check=False)
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    assert_same_outputs(got, expected)
    assert proc.stop() == 0


def test_topics_create_adds_the_rekeyed_topic_with_the_workers_partitions_and_check_holds_it(
    broker: Any, topics: Callable[..., Any]
) -> None:
    names = topics(PARTITIONS, create=False)
    broker.create_topic(names.touchpoints, 3)  # a source keyed any way may have any partition count
    settings = broker.settings(names, input_format="segment")
    rekeyed = kafkaio.rekeyed_topic(settings)
    assert rekeyed == f"{names.app_id}-touchpoints-by-contact" and rekeyed in kafkaio.all_topics(settings)
    assert rekeyed not in kafkaio.all_topics(broker.settings(names))  # touchpoints keyed by contact: none
    created = kafkaio.create_topics(settings)
    assert any(line.startswith(f"created {rekeyed} ({PARTITIONS} partitions") for line in created)
    counts = kafkaio.partition_counts(settings, kafkaio.all_topics(settings))
    assert counts[names.touchpoints] == 3 and counts[rekeyed] == PARTITIONS
    assert {counts[t] for t in kafkaio.copartitioned_topics(settings)} == {PARTITIONS}
    assert kafkaio.check_partitions(settings) == []

    other = topics(PARTITIONS, create=False)
    broker.create_topic(f"{other.app_id}-touchpoints-by-contact", 2)
    settings = broker.settings(other, input_format="snowplow")
    kafkaio.create_topics(settings)
    [problem] = kafkaio.check_partitions(settings)
    assert problem.startswith(f"{other.app_id}-touchpoints-by-contact has 2 partitions but FUNNEL_PARTITIONS is 4")
