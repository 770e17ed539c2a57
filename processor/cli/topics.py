"""`funnel-processor topics create|check`: its options; the work is `processor.tools.topics`."""

from __future__ import annotations

import argparse
from typing import Any

from processor.kafka.plainclient import CONNECT_TIMEOUT_S
from processor.tools.topics import topics


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
            default=CONNECT_TIMEOUT_S,
            metavar="SECONDS",
            help="how long to try to reach the broker (default %(default)s)",
        )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return topics(args.topics_action, args.connect_timeout)
