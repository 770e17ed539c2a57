"""Plain Kafka clients (kafka-python) for the tools around the worker: no faust here.

Creating and checking the worker's topics, producing touchpoints (`simulate --to-topic`,
tests) and reading output topics back (`report --from-topics`, tests). Each call opens
its clients, does its work and closes them. Before a client is made, the connection is
checked step by step (processor/kafka/connect.py): a broker that cannot be reached within
`connect_timeout_s` raises BrokerUnavailable naming the addresses, a certificate that does
not verify TlsFailed, refused credentials AuthenticationFailed; never a bare trace.

Topic metadata comes from a consumer's metadata for all topics, so asking about a topic never
creates it; and producing checks first that the topic exists, since brokers with
auto.create.topics.enable (and Tansu, always) create a missing topic a producer writes to.
Needs kafka-python 3 (create_topics with raise_errors, wait_for_topics, bootstrap_timeout_ms).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaConnectionError, KafkaTimeoutError
from kafka.structs import TopicPartition

from processor.config.settings import Settings
from processor.funnel.formats import record_key
from processor.kafka.connect import AuthenticationFailed as AuthenticationFailed
from processor.kafka.connect import BrokerUnavailable as BrokerUnavailable
from processor.kafka.connect import KafkaIOError as KafkaIOError
from processor.kafka.connect import TlsFailed as TlsFailed
from processor.kafka.connect import TlsFilesUnusable as TlsFilesUnusable
from processor.kafka.connect import check_connection

CONNECT_TIMEOUT_S = 10.0  # how long a client may try to reach the broker before BrokerUnavailable
BEHIND_PATIENCE_S = 10.0  # read_topic: idle wait allowed while a partition is behind its end offset
TOPIC_READY_TIMEOUT_S = 30.0  # create_topics: until new topics have leaders in the metadata
POLL_MS = 200
CLIENT_ID = "funnel-processor-tools"
TABLES = ("journeys", "clocks")  # the worker's Faust tables: changelogs "{app_id}-{table}-changelog"
_UNREACHABLE = (KafkaTimeoutError, KafkaConnectionError)


class TopicMissing(KafkaIOError):
    def __init__(self, topic: str) -> None:
        super().__init__(f"topic {topic!r} does not exist: run `funnel-processor topics create`")


class ProduceFailed(KafkaIOError):
    pass


@dataclass(frozen=True, slots=True)
class ConsumedRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]


def changelog_topics(settings: Settings) -> list[str]:
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def definitions_topic(settings: Settings) -> str:
    """The compacted topic of the funnel definitions journeys were written under (one record per
    set of definitions a worker started with: processor/worker/state/migrate.py), named after the app id."""
    return f"{settings.app_id}-funnel-definitions"


def journeys_changelog(settings: Settings) -> str:
    return changelog_topics(settings)[TABLES.index("journeys")]


def rekeyed_topic(settings: Settings) -> str:
    """The internal topic of touchpoints re-keyed by contact (processor/worker/rekey.py), named after the app id."""
    return f"{settings.app_id}-touchpoints-by-contact"


def input_topic(settings: Settings) -> str:
    """The topic of touchpoints keyed by contact that the journeys agent reads: the input, or its re-keyed copy."""
    return rekeyed_topic(settings) if settings.rekeyed else settings.topic_touchpoints


def copartitioned_topics(settings: Settings) -> list[str]:
    """Topics whose partition i must hold the same contacts as partition i of input_topic."""
    return [settings.topic_ticks, *changelog_topics(settings)]


def output_topics(settings: Settings) -> list[str]:
    return [settings.topic_transitions, settings.topic_dropoffs, settings.topic_deadletter]


def all_topics(settings: Settings) -> list[str]:
    rekeyed = [rekeyed_topic(settings)] if settings.rekeyed else []
    return [settings.topic_touchpoints, *rekeyed, *copartitioned_topics(settings), *output_topics(settings)]


@contextmanager
def _client(settings: Settings, make: Callable[..., Any], timeout_s: float, **extra: Any) -> Iterator[Any]:
    """A connected kafka-python client, once the connection is checked (TCP, TLS, SASL); timeouts
    after that become BrokerUnavailable."""
    config = {**settings.kafka_client_config(), "client_id": CLIENT_ID, **extra}
    started = time.monotonic()
    check_connection(settings, timeout_s)
    config["bootstrap_timeout_ms"] = round(max(1.0, timeout_s - (time.monotonic() - started)) * 1000)
    try:
        client = make(**config)
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(settings, f"no answer within {timeout_s:g} s ({exc})") from None
    try:
        yield client
    except _UNREACHABLE as exc:
        raise BrokerUnavailable(settings, f"{type(exc).__name__}: {exc}") from None
    finally:
        client.close()


def _consumer(settings: Settings, timeout_s: float, **extra: Any) -> Any:
    return _client(
        settings, KafkaConsumer, timeout_s, enable_auto_commit=False, allow_auto_create_topics=False, **extra
    )


def partition_counts(
    settings: Settings, topics: Iterable[str], *, connect_timeout_s: float = CONNECT_TIMEOUT_S
) -> dict[str, int | None]:
    """Partitions per topic; None for a topic that does not exist."""
    with _consumer(settings, connect_timeout_s) as consumer:
        return {topic: len(consumer.partitions_for_topic(topic) or ()) or None for topic in topics}


def _cleanup_policies(settings: Settings, topics: list[str], timeout_s: float) -> dict[str, str | None]:
    """cleanup.policy per topic as the broker reports it; None when it reports none."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    with _client(settings, KafkaAdminClient, timeout_s) as admin:
        # 'all', not kafka-python's default 'modified': brokers differ in which source they
        # report for a config set at creation (Tansu says DEFAULT_CONFIG), and the value is what counts.
        described = admin.describe_configs(resources, config_filter="all").get("topic", {})
    policies: dict[str, str | None] = {}
    for topic in topics:
        entry = described.get(topic, {}).get("cleanup.policy")
        policies[topic] = entry.get("value") if isinstance(entry, dict) else None
    return policies


def create_topics(settings: Settings, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """Create the worker's topics that are missing; existing ones are left alone. Says what it did.

    The input topic the journeys agent reads comes first (the touchpoints, or their re-keyed
    copy): the ticks and changelog topics take its actual partition count (co-partitioning),
    which differs from FUNNEL_PARTITIONS only if it already existed with another count;
    check_partitions reports that. A re-keyed input topic may have any partition count.
    """
    done: list[str] = []
    with _client(settings, KafkaAdminClient, connect_timeout_s) as admin:
        existing = partition_counts(settings, all_topics(settings), connect_timeout_s=connect_timeout_s)
        plan: dict[str, tuple[int, dict[str, str]]] = {}
        keyed = input_topic(settings)
        first = [settings.topic_touchpoints, keyed]
        missing: dict[str, tuple[int, dict[str, str]]] = {
            topic: (settings.partitions, {}) for topic in dict.fromkeys(first) if existing[topic] is None
        }
        done += _create(admin, missing, settings)
        source = existing[keyed] or settings.partitions
        changelogs = changelog_topics(settings)
        for topic in all_topics(settings):
            if topic in first:
                continue
            count = source if topic in copartitioned_topics(settings) else settings.partitions
            plan[topic] = (count, {"cleanup.policy": "compact"} if topic in changelogs else {})
        done += _create(admin, {t: p for t, p in plan.items() if existing[t] is None}, settings)
    done += [f"exists  {t} ({n} partitions)" for t, n in existing.items() if n is not None]
    # The worker creates it too, if missing; made here for deployments whose workers may not create topics.
    done += create_compacted(settings, definitions_topic(settings), connect_timeout_s=connect_timeout_s)
    return done


def create_compacted(settings: Settings, topic: str, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """Create a compacted topic of one partition if it is missing (an app's own small record)."""
    if partition_counts(settings, [topic], connect_timeout_s=connect_timeout_s)[topic] is not None:
        return []
    with _client(settings, KafkaAdminClient, connect_timeout_s) as admin:
        return _create(admin, {topic: (1, {"cleanup.policy": "compact"})}, settings)


def _create(admin: Any, plan: dict[str, tuple[int, dict[str, str]]], settings: Settings) -> list[str]:
    if not plan:
        return []
    request = {
        topic: {"num_partitions": count, "replication_factor": settings.replication_factor, "configs": configs}
        for topic, (count, configs) in plan.items()
    }
    # raise_errors=False: a topic created meanwhile by someone else (TOPIC_ALREADY_EXISTS) is fine.
    response = admin.create_topics(request, raise_errors=False)
    done = []
    for result in response["topics"]:
        name, code = result["name"], result["error_code"]
        count, configs = plan[name]
        if code not in (0, 36):  # 36: TOPIC_ALREADY_EXISTS
            raise KafkaIOError(f"cannot create topic {name!r}: {result.get('error_message') or f'error {code}'}")
        extra = "".join(f", {k}={v}" for k, v in configs.items())
        verb = "created" if code == 0 else "exists "
        done.append(f"{verb} {name} ({count} partitions, replication {settings.replication_factor}{extra})")
    admin.wait_for_topics(list(plan), timeout_ms=round(TOPIC_READY_TIMEOUT_S * 1000))
    return done


def check_partitions(settings: Settings, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """Problems that keep the worker from running correctly on these topics, each with what to do."""
    counts = partition_counts(settings, all_topics(settings), connect_timeout_s=connect_timeout_s)
    problems = [str(TopicMissing(t)) for t, n in counts.items() if n is None]
    keyed = input_topic(settings)  # a re-keyed input's own topic may have any partition count
    source = counts[keyed]
    if source is not None and source != settings.partitions:
        problems.append(
            f"{keyed} has {source} partitions but FUNNEL_PARTITIONS is {settings.partitions}: "
            f"set FUNNEL_PARTITIONS={source} (adding partitions to a keyed topic moves contacts to other "
            "partitions and splits their journeys)"
        )
    for topic in copartitioned_topics(settings):
        count = counts[topic]
        if source is not None and count is not None and count != source:
            problems.append(
                f"{topic} has {count} partitions but {keyed} has {source}: the worker needs "
                f"them co-partitioned; recreate {topic} with {source} partitions (for a changelog this drops "
                "the stored journeys, so do it only before the worker has run or while replaying from the start)"
            )
    return problems


def check_compaction(settings: Settings, *, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> list[str]:
    """Changelog topics that exist but are not compacted (their state would expire with retention).

    A broker that reports no cleanup.policy at all for a topic (Tansu does that for topics created
    without configs; Kafka always reports one) counts as not compacted.
    """
    counts = partition_counts(settings, changelog_topics(settings), connect_timeout_s=connect_timeout_s)
    present = [topic for topic, count in counts.items() if count is not None]
    policies = _cleanup_policies(settings, present, connect_timeout_s) if present else {}
    return [
        f"{topic} has cleanup.policy={policy or '(none reported)'}: a table changelog must be compacted; run "
        f"kafka-configs --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact"
        for topic, policy in policies.items()
        if "compact" not in (policy or "").split(",")
    ]


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
    with _client(
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
    with _consumer(settings, connect_timeout_s, auto_offset_reset="earliest", **extra) as consumer:
        partitions = sorted(consumer.partitions_for_topic(topic) or ())
        if not partitions:
            raise TopicMissing(topic)
        tps = [TopicPartition(topic, p) for p in partitions]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        floor = consumer.end_offsets(tps)
        read: list[ConsumedRecord] = []
        last_new = time.monotonic()
        while expect is None or len(read) < expect:
            batch = consumer.poll(timeout_ms=POLL_MS)
            for messages in batch.values():
                read += [_record(m) for m in messages]
            if batch:
                last_new = time.monotonic()
                continue
            behind = any(consumer.position(tp) < floor[tp] for tp in tps)
            if time.monotonic() - last_new >= (max(timeout_s, BEHIND_PATIENCE_S) if behind else timeout_s):
                break
        if group:
            consumer.commit()
    read.sort(key=lambda r: (r.partition, r.offset))
    return read


def _record(message: Any) -> ConsumedRecord:
    headers = tuple((name, value or b"") for name, value in message.headers or ())
    return ConsumedRecord(message.topic, message.partition, message.offset, message.key, message.value, headers)
