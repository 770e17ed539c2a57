"""`funnel-processor report`: its options; the report itself is `processor.tools.report`."""

from __future__ import annotations

import argparse
from typing import Any

from processor.cli.args import add_funnel_options, funnels_from
from processor.tools.breakdownstats import BY
from processor.tools.report import report
from processor.tools.reportread import TOPIC_TIMEOUT_S


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="funnel table from transition and drop-off records",
        description="Per stage: contacts entered, converted (%), dropped (stalled / lost), median time in "
        "stage, reached; and the entries needed at the top for a target at a stage at current rates. "
        "Reads the outputs of `replay` or of the worker, not touchpoints. A user funnel needs its "
        "--funnel-file here too for its stage order (else the order is inferred from the records).",
    )
    add_funnel_options(parser)
    source = parser.add_mutually_exclusive_group()
    source.add_argument(
        "--input", action="append", metavar="FILE", help="transition/drop-off JSONL, '-' for stdin (repeatable)"
    )
    source.add_argument(
        "--from-topics",
        action="store_true",
        help="read the transition and drop-off topics from the beginning instead (FUNNEL_BROKER_URL, "
        "FUNNEL_TOPIC_TRANSITIONS, FUNNEL_TOPIC_DROPOFFS)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=TOPIC_TIMEOUT_S,
        metavar="SECONDS",
        help="with --from-topics: stop once no new record arrived for this long (default %(default)s)",
    )
    parser.add_argument(
        "--target", type=_positive, default=100, metavar="N", help="contacts wanted at --stage (default %(default)s)"
    )
    parser.add_argument(
        "--stage", metavar="NAME", help="stage for the planning line (default: each funnel's last stage)"
    )
    parser.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the tables a person reads (default); json: the same figures as one JSON object",
    )
    parser.add_argument(
        "--by",
        choices=BY,
        help="also a table per value of this breakdown, each with its planning line: the channel or campaign of "
        "the contact's first touchpoint, or the channel of the touchpoint that moved it into the stage; "
        "last_touch_type: drop-offs by the type of the last touchpoint before the drop",
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def run(args: argparse.Namespace) -> int:
    return report(
        funnels_from(args),
        bool(args.funnel_specs),
        args.input,
        args.from_topics,
        args.timeout,
        args.target,
        args.stage,
        args.format,
        args.by,
    )
