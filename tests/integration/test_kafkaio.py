"""processor.kafka.clients and the commands built on it, against a real broker (Tansu or FUNNEL_TEST_BROKER)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from factories import T0, Touchpoints, replay
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from processor import cli
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.kafka.connection import Connection

DAY = timedelta(days=1)
RunCli = Callable[..., subprocess.CompletedProcess[str]]  # the run_cli fixture


@pytest.fixture
def run_cli(timeouts: Any) -> RunCli:
    def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
        """`funnel-processor ARGS` in a subprocess configured only by its environment."""
        command = [sys.executable, "-m", "processor", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeouts.cli_s, check=False)

    return run


def cleanup_policy(settings: Settings, topic: str) -> str | None:
    admin = KafkaAdminClient(**Connection.of(settings).kafka_python())
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
    finally:
        admin.close()
    entry = described["topic"][topic].get("cleanup.policy")
    return None if entry is None else str(entry["value"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the socket is closed


def test_create_topics_is_idempotent_and_copartitions_with_touchpoints(
    broker: Any, topics: Callable[..., Any], tansu_defect: Callable[..., bool], timeouts: Any
) -> None:
    names = topics(3, create=False)
    settings = broker.settings(names)
    everything = kafkaio.all_topics(settings)
    assert len(everything) == 7 and f"{names.app_id}-journeys-changelog" in everything

    first = kafkaio.create_topics(settings, connect_timeout_s=timeouts.connect_s)
    made = [*everything, kafkaio.definitions_topic(settings)]  # and the worker's compacted definitions topic
    assert sorted(line.split()[1] for line in first if line.startswith("created ")) == sorted(made)
    again = kafkaio.create_topics(settings, connect_timeout_s=timeouts.connect_s)
    assert not any(line.startswith("created") for line in again)
    assert sorted(line.split()[1] for line in again) == sorted(everything)

    assert kafkaio.partition_counts(settings, [*everything, "no-such-topic"]) == {
        **dict.fromkeys(everything, 3),
        "no-such-topic": None,
    }
    assert kafkaio.check_partitions(settings) == []
    assert kafkaio.check_compaction(settings) == []
    for changelog in kafkaio.changelog_topics(settings):
        assert cleanup_policy(settings, changelog) == "compact"
    plain = cleanup_policy(settings, names.touchpoints)
    if tansu_defect("no-default-configs", "DescribeConfigs lists only configs given at creation", adapt=True):
        assert plain is None
    else:
        assert plain == "delete"


def test_an_existing_touchpoints_topic_decides_the_copartitioned_counts(
    broker: Any, topics: Callable[..., Any]
) -> None:
    names = topics(4, create=False)
    broker.create_topic(names.touchpoints, 2)
    settings = broker.settings(names)

    kafkaio.create_topics(settings)

    counts = kafkaio.partition_counts(settings, kafkaio.all_topics(settings))
    assert [counts[t] for t in kafkaio.copartitioned_topics(settings)] == [2, 2, 2]
    assert [counts[t] for t in kafkaio.output_topics(settings)] == [4, 4, 4]
    [problem] = kafkaio.check_partitions(settings)
    assert f"{names.touchpoints} has 2 partitions but FUNNEL_PARTITIONS is 4" in problem
    assert "set FUNNEL_PARTITIONS=2" in problem
    assert kafkaio.check_partitions(broker.settings(names, partitions=2)) == []


def test_check_partitions_explains_each_problem(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(4, create=False)
    settings = broker.settings(names)
    broker.create_topic(names.touchpoints, 4)
    broker.create_topic(names.ticks, 2)
    broker.create_topic(f"{names.app_id}-journeys-changelog", 4, **{"cleanup.policy": "delete"})

    problems = kafkaio.check_partitions(settings)

    missing = [f"{names.app_id}-clocks-changelog", names.transitions, names.dropoffs, names.deadletter]
    assert [p.split("'")[1] for p in problems if "does not exist" in p] == missing
    assert all("funnel-processor topics create" in p for p in problems if "does not exist" in p)
    [ticks] = [p for p in problems if "does not exist" not in p]
    assert ticks.startswith(f"{names.ticks} has 2 partitions but {names.touchpoints} has 4")
    assert "recreate" in ticks
    [compaction] = kafkaio.check_compaction(settings)
    assert compaction.startswith(f"{names.app_id}-journeys-changelog has cleanup.policy=delete")


def test_lines_are_keyed_by_contact_and_read_back_from_every_partition(
    broker: Any, topics: Callable[..., Any], timeouts: Any
) -> None:
    names = topics(4)
    settings = broker.settings(names)
    make = Touchpoints()
    contacts = [f"contact-{i}" for i in range(12)]
    docs = [make("page_view", contacts[i % len(contacts)]) for i in range(60)]
    lines = [orjson.dumps(doc) + b"\n" for doc in docs]
    odd = [b"not json at all\n", b'{"contact_id": 42}\n', b"[1, 2]\n"]

    sent = kafkaio.produce_lines(settings, names.touchpoints, [*lines, b"\n", *odd])

    assert sent == len(lines) + len(odd)  # the blank line is not a record
    records = kafkaio.read_topic(settings, names.touchpoints, timeout_s=timeouts.read_s, expect=sent)
    assert len(records) == sent
    assert sorted(cast(bytes, r.value) for r in records) == sorted(line.rstrip(b"\n") for line in [*lines, *odd])
    assert sorted(cast(bytes, r.value) for r in records if r.key is None) == sorted(line.rstrip(b"\n") for line in odd)
    partitions: dict[bytes, set[int]] = defaultdict(set)
    for record in (r for r in records if r.key is not None):
        doc = orjson.loads(cast(bytes, record.value))
        assert record.key == doc["contact_id"].encode()
        partitions[cast(bytes, record.key)].add(record.partition)
    assert all(len(found) == 1 for found in partitions.values())  # one contact, one partition
    assert len({p for found in partitions.values() for p in found}) > 1  # 12 contacts over 4 partitions
    for contact in contacts:  # each contact's touchpoints in the order they were produced
        mine = [orjson.loads(cast(bytes, r.value))["event_id"] for r in records if r.key == contact.encode()]
        assert mine == [d["event_id"] for d in docs if d["contact_id"] == contact]


def test_raw_records_keep_arbitrary_keys_and_a_group_commits_what_it_read(
    broker: Any, topics: Callable[..., Any], timeouts: Any
) -> None:
    names = topics(2)
    settings = broker.settings(names)
    raw = [(b"\xff\x00key", b"\x00binary"), (None, b"{}"), (b"k", b"x" * 70_000)]

    assert kafkaio.produce_records(settings, names.touchpoints, raw) == 3
    records = kafkaio.read_topic(settings, names.touchpoints, timeout_s=timeouts.read_s, group=names.app_id)

    assert sorted((r.key or b"", r.value) for r in records) == sorted((k or b"", v) for k, v in raw)
    consumer = KafkaConsumer(**Connection.of(settings).kafka_python(), group_id=names.app_id, enable_auto_commit=False)
    try:
        committed = {p: consumer.committed(TopicPartition(names.touchpoints, p)) or 0 for p in (0, 1)}
    finally:
        consumer.close()
    assert sum(committed.values()) == 3


def test_read_topic_stops_on_expect_or_when_idle(broker: Any, topics: Callable[..., Any]) -> None:
    names = topics(2)
    settings = broker.settings(names)
    kafkaio.produce_lines(settings, names.touchpoints, [b'{"contact_id": "a"}'] * 5)

    started = time.monotonic()
    assert len(kafkaio.read_topic(settings, names.touchpoints, timeout_s=30, expect=5)) == 5
    assert len(kafkaio.read_topic(settings, names.dropoffs, timeout_s=0.5)) == 0
    assert time.monotonic() - started < 10  # neither waited for its 30 s timeout
    with pytest.raises(kafkaio.TopicMissing, match="topics create"):
        kafkaio.read_topic(settings, f"{names.touchpoints}-missing", timeout_s=0.5)
    with pytest.raises(kafkaio.TopicMissing):
        kafkaio.produce_lines(settings, f"{names.touchpoints}-missing", [b"{}"])


def test_an_unreachable_broker_is_named_quickly(broker: Any, timeouts: Any, run_cli: RunCli) -> None:
    port = closed_port()
    settings = Settings(broker_url=f"kafka://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(kafkaio.BrokerUnavailable) as raised:
        kafkaio.check_partitions(settings, connect_timeout_s=timeouts.unreachable_s)
    assert time.monotonic() - started < timeouts.unreachable_s + 3
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port} (FUNNEL_BROKER_URL)" in str(raised.value)

    env = broker.env(broker_url=f"kafka://127.0.0.1:{port}")
    done = run_cli(env, "topics", "check", "--connect-timeout", str(timeouts.unreachable_s))
    assert done.returncode == 2
    assert f"cannot reach the Kafka broker at 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_listener_that_never_answers_is_named_after_the_timeout(timeouts: Any) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never speaks Kafka
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = Settings(broker_url=f"kafka://127.0.0.1:{port}")
        started = time.monotonic()
        with pytest.raises(kafkaio.BrokerUnavailable, match=f"127.0.0.1:{port} .*no answer within"):
            kafkaio.partition_counts(settings, ["touchpoints"], connect_timeout_s=timeouts.unreachable_s)
        assert timeouts.unreachable_s <= time.monotonic() - started < timeouts.unreachable_s + 3


def test_cli_creates_topics_and_simulates_into_them(
    broker: Any,
    topics: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    timeouts: Any,
    run_cli: RunCli,
) -> None:
    names = topics(4, create=False)
    env = broker.env(names)

    created = run_cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert sum(line.startswith("created ") for line in created.stdout.splitlines()) == 8  # and the definitions topic
    assert run_cli(env, "topics", "check").returncode == 0
    wrong = run_cli(broker.env(names, partitions=8), "topics", "check")
    assert wrong.returncode == 2
    assert f"{names.touchpoints} has 4 partitions but FUNNEL_PARTITIONS is 8" in wrong.stderr

    sim = ["simulate", "--funnel", "aida", "--contacts", "15", "--seed", "7", "--duplicate-rate", "0.2"]
    produced = run_cli(env, *sim, "--to-topic")
    assert produced.returncode == 0, produced.stderr
    assert f"to topic {names.touchpoints}" in produced.stderr

    file = tmp_path / "touchpoints.jsonl"
    assert cli.main([*sim, "--output", str(file)]) == 0  # the same generator, to a file
    capsys.readouterr()
    expected = file.read_bytes().splitlines()
    records = kafkaio.read_topic(broker.settings(names), names.touchpoints, timeout_s=timeouts.read_s)
    assert len(records) == len(expected)
    per_contact: dict[bytes, list[bytes]] = defaultdict(list)
    for line in expected:
        per_contact[orjson.loads(line)["contact_id"].encode()].append(line)
    assert len(per_contact) == 15
    for key, lines in per_contact.items():
        assert [r.value for r in records if r.key == key] == lines  # keyed, in generation order

    elsewhere = run_cli(env, *sim, "--to-topic", names.deadletter)
    assert elsewhere.returncode == 0, elsewhere.stderr
    assert len(kafkaio.read_topic(broker.settings(names), names.deadletter, timeout_s=timeouts.read_s)) == len(expected)


def test_report_from_topics_equals_the_report_of_the_same_records_in_a_file(
    broker: Any,
    topics: Callable[..., Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    run_cli: RunCli,
) -> None:
    names = topics(3)
    settings = broker.settings(names)
    tp = Touchpoints()
    journey = [
        tp("ad_click", "a"),
        tp("ad_click", "b"),
        tp("page_view", "c"),
        tp("page_view", "a", after=DAY),
        tp("unsubscribed", "c", after=DAY),  # c is lost in interest
        tp("purchase", "a", after=DAY),  # a skips desire
    ]
    outputs = replay(["aida"], journey, until=T0 + 20 * DAY).outputs  # b stalls in awareness after 14d
    transitions = [o for o in outputs if o["kind"] == "transition"]
    dropoffs = [o for o in outputs if o["kind"] == "dropoff"]
    assert (len(transitions), len(dropoffs)) == (5, 2)
    encoded = [(o["contact_id"].encode(), orjson.dumps(o)) for o in outputs]
    kafkaio.produce_records(settings, names.transitions, [r for r in encoded if b'"transition"' in r[1]])
    kafkaio.produce_records(settings, names.dropoffs, [*(r for r in encoded if b'"dropoff"' in r[1])])
    kafkaio.produce_records(settings, names.dropoffs, [encoded[0], (None, b"{not json")])  # a re-sent copy, garbage

    done = run_cli(broker.env(names), "report", "--from-topics", "--timeout", "1", "--format", "json")

    assert done.returncode == 0, done.stderr
    from_topics = json.loads(done.stdout)
    file = tmp_path / "outputs.jsonl"
    file.write_bytes(b"\n".join([*(value for _, value in encoded), encoded[0][1], b"{not json"]) + b"\n")
    assert cli.main(["report", "--input", str(file), "--format", "json"]) == 0
    assert from_topics == json.loads(capsys.readouterr().out)
    [aida] = from_topics["funnels"]
    rows = {row["stage"]: row for row in aida["stages"]}
    assert aida["entries"] == 3
    assert (rows["awareness"]["entered"], rows["awareness"]["converted"], rows["awareness"]["stalled"]) == (2, 1, 1)
    assert (rows["interest"]["entered"], rows["interest"]["lost"], rows["desire"]["entered"]) == (2, 1, 0)
    assert from_topics["records"]["duplicates"] == 1 and from_topics["records"]["malformed"] == 1


def test_report_from_topics_names_an_unreachable_broker(broker: Any, run_cli: RunCli) -> None:
    env = broker.env(broker_url=f"kafka://127.0.0.1:{closed_port()}")
    done = run_cli(env, "report", "--from-topics")
    assert done.returncode == 2
    assert "cannot reach the Kafka broker" in done.stderr and "Traceback" not in done.stderr


def test_simulate_to_a_missing_topic_says_how_to_create_it(
    broker: Any, topics: Callable[..., Any], run_cli: RunCli
) -> None:
    names = topics(create=False)
    done = run_cli(broker.env(names), "simulate", "--funnel", "aida", "--contacts", "2", "--seed", "1", "--to-topic")
    assert done.returncode == 2
    assert f"topic '{names.touchpoints}' does not exist: run `funnel-processor topics create`" in done.stderr
