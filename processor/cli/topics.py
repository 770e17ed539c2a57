"""`funnel-processor topics create|check`: the worker's Kafka topics, from FUNNEL_* variables.

`create` makes the missing topics (existing ones are left alone) and then checks them all;
`check` only checks. Both exit 0 when the topics are ready for the worker, 2 otherwise,
printing each problem with what to do about it.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from processor.config.settings import Settings, SettingsError
from processor.kafka import clients as kafkaio


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "topics",
        help="create or check the worker's Kafka topics (configured from FUNNEL_* variables)",
        description="The topics the worker reads and writes: touchpoints, its ticks and table changelogs "
        "(co-partitioned with touchpoints, changelogs compacted), transitions, drop-offs and dead letters.",
    )
    actions = parser.add_subparsers(dest="topics_action", required=True, metavar="ACTION")
    for name, help_text in (
        ("create", "create the missing topics, then check them all"),
        ("check", "check that every topic exists with the right partitions and cleanup policy"),
    ):
        action = actions.add_parser(name, help=help_text, description=help_text)
        action.add_argument(
            "--connect-timeout",
            type=float,
            default=kafkaio.CONNECT_TIMEOUT_S,
            metavar="SECONDS",
            help="how long to try to reach the broker (default %(default)s)",
        )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        return _fail(str(exc))
    timeout = args.connect_timeout
    try:
        if args.topics_action == "create":
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
