"""The `topics` command: the worker's Kafka topics, from FUNNEL_* variables.

`create` makes the missing topics (existing ones are left alone) and then checks them all;
`check` only checks. Both exit 0 when the topics are ready for the worker, 2 otherwise,
printing each problem with what to do about it.
"""

from __future__ import annotations

import sys

from processor.config.settings import Settings, SettingsError
from processor.kafka import clients as kafkaio


def topics(action: str, connect_timeout_s: float) -> int:
    """`create` or `check` the topics; the exit code."""
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    timeout = connect_timeout_s
    try:
        if action == "create":
            for line in kafkaio.create_topics(settings, connect_timeout_s=timeout):
                print(line)
        problems = kafkaio.check_partitions(settings, connect_timeout_s=timeout)
        problems += kafkaio.check_compaction(settings, connect_timeout_s=timeout)
    except kafkaio.KafkaIOError as exc:
        return _fail(str(exc))
    if problems:
        return _fail("the topics are not ready for the worker:\n  " + "\n  ".join(problems))
    print(f"topics ready: {len(kafkaio.all_topics(settings))} topics at {settings.broker_url}")
    return 0


def _fail(message: str) -> int:
    print(f"funnel-processor topics: {message}", file=sys.stderr)
    return 2
