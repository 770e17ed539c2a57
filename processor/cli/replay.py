"""`funnel-processor replay`: its options; the replay itself is `processor.tools.replay`."""

from __future__ import annotations

import argparse

from processor.cli.args import add_funnel_options, duration, funnels_from, future_tolerance, timestamp
from processor.funnel.formats import FORMATS
from processor.funnel.state import Limits
from processor.funnel.touchpoint import DEFAULT_FUTURE_TOLERANCE_US
from processor.tools.replay import replay_file


def _run(args: argparse.Namespace) -> int:
    return replay_file(
        funnels_from(args),
        args.input,
        args.input_format,
        args.mapping,
        args.until,
        args.dedup_horizon,
        args.now,
        args.future_tolerance,
    )


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "replay",
        help="replay a touchpoint JSONL file; print transitions and drop-offs as JSONL",
        description="Read touchpoints (JSONL, '-' for stdin), print the transitions and drop-offs they cause "
        "as JSONL on stdout in the order produced. Bad lines go to stderr as dead-letter records (JSON), "
        "then one summary line (not JSON): touchpoints read, outputs written, dead letters, duplicates.",
    )
    add_funnel_options(parser, default_all=False)
    parser.add_argument("--input", required=True, metavar="FILE", help="JSONL file, or '-' for stdin")
    parser.add_argument(
        "--input-format",
        choices=FORMATS,
        default="touchpoint",
        help="the lines' shape: touchpoints (the default), Segment-spec events (also RudderStack's), or Snowplow "
        "enriched events as JSON; as the worker's FUNNEL_INPUT_FORMAT",
    )
    parser.add_argument(
        "--mapping",
        default=None,
        metavar="PATH",
        help="event mapping file for segment and snowplow (schemas/event-mapping): event names to types, UTM "
        "rules to channels; as the worker's FUNNEL_INPUT_MAPPING (default: names in normal form, default rules)",
    )
    parser.add_argument(
        "--until",
        type=timestamp,
        default=None,
        metavar="TIME",
        help="fire drop-offs due by this RFC 3339 time (default: the latest touchpoint time; earlier is refused)",
    )
    parser.add_argument(
        "--dedup-horizon",
        type=duration,
        default=Limits().dedup_horizon_us,
        metavar="DURATION",
        help="repeated event ids within this span of the contact's own event times are duplicates (default 24h)",
    )
    parser.add_argument(
        "--now",
        type=timestamp,
        default=None,
        metavar="TIME",
        help="when every line counts as arriving, for the bound on the future (default: the wall clock at start); "
        "give the worker's 'now' to get its verdicts",
    )
    parser.add_argument(
        "--future-tolerance",
        type=future_tolerance,
        default=DEFAULT_FUTURE_TOLERANCE_US,
        metavar="DURATION",
        help="touchpoints dated more than this after --now are dead-lettered as future_timestamp; 'off' for "
        "synthetic data in the future (default 5m, as the worker's FUNNEL_FUTURE_TOLERANCE)",
    )
    parser.set_defaults(run=_run)
