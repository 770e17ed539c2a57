"""Creating and checking the worker's topics (`funnel-processor topics`, the worker's start-up).

Topic metadata comes from a consumer's metadata for all topics, so asking about a topic never
creates it. Needs kafka-python 3 (create_topics with raise_errors, wait_for_topics).
"""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from processor.config.settings import Settings
from processor.kafka.errors import KafkaIOError, TopicMissing
from processor.kafka.plainclient import CONNECT_TIMEOUT_S, client, partition_counts
from processor.kafka.topics import (
    all_topics,
    changelog_topics,
    copartitioned_topics,
    definitions_topic,
    input_topic,
)

TOPIC_READY_TIMEOUT_S = 30.0  # create_topics: until new topics have leaders in the metadata


def _cleanup_policies(settings: Settings, topics: list[str], timeout_s: float) -> dict[str, str | None]:
    """cleanup.policy per topic as the broker reports it; None when it reports none."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, topic) for topic in topics]
    with client(settings, KafkaAdminClient, timeout_s) as admin:
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
    with client(settings, KafkaAdminClient, connect_timeout_s) as admin:
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
    with client(settings, KafkaAdminClient, connect_timeout_s) as admin:
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
