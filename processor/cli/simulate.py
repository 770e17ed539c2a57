"""`funnel-processor simulate`: its options; the simulation itself is `processor.tools.simulate`."""

from __future__ import annotations

import argparse
from typing import Any

from processor.cli.args import add_funnel_options, funnels_from
from processor.funnel.formats import FORMATS
from processor.funnel.timefmt import parse_duration, parse_time
from processor.tools.simgen import Config
from processor.tools.simulate import Request, StageSetting, simulate


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "simulate",
        help="write seeded synthetic touchpoints for one or more funnels",
        description="Synthetic touchpoints: contacts walking funnels with chosen per-stage conversion "
        "probabilities and delays, sorted by occurred_at. Same seed and options, same bytes: with --start or "
        "--end; by default the last touchpoint falls at 00:00 UTC today (the same bytes all day).",
    )
    add_funnel_options(parser, default_all=False)
    size = parser.add_mutually_exclusive_group(required=True)
    size.add_argument("--contacts", type=_positive_int, metavar="N", help="how many contacts walk the funnels")
    size.add_argument("--touchpoints", type=_positive_int, metavar="N", help="exactly N lines instead")
    parser.add_argument("--seed", type=int, required=True, metavar="N", help="same seed and options, same file")
    when = parser.add_mutually_exclusive_group()
    when.add_argument(
        "--start", type=_time, metavar="TIME", help="event time of the first contact's entry at the earliest, RFC 3339"
    )
    when.add_argument(
        "--end",
        type=_time,
        metavar="TIME",
        help="event time of the last touchpoint, RFC 3339 (default: 00:00 UTC of the current day, so that every "
        "touchpoint lies in the past)",
    )
    parser.add_argument(
        "--days", type=_positive_float, default=1.0, metavar="D", help="days in which contacts enter (default 1)"
    )
    target = parser.add_mutually_exclusive_group()
    parser.add_argument(
        "--contact-prefix",
        default="c-",
        metavar="TEXT",
        help="contact ids are TEXT + a number (default %(default)s); vary it for new contacts per run",
    )
    target.add_argument("--output", default="-", metavar="FILE", help="JSONL file, '-' for stdout (default)")
    target.add_argument(
        "--to-topic",
        nargs="?",
        const="",
        metavar="TOPIC",
        help="produce to a Kafka topic instead, keyed by contact_id (by message id with --format segment or "
        "snowplow; default topic: the configured touchpoints topic, FUNNEL_TOPIC_TOUCHPOINTS; broker from "
        "FUNNEL_BROKER_URL)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="touchpoint",
        help="write touchpoints (the default), or the same as Segment-spec or Snowplow events, which replay "
        "--input-format and the worker read back as those touchpoints; to a topic keyed by message id",
    )
    parser.add_argument(
        "--mapping",
        default=None,
        metavar="PATH",
        help="event mapping file (segment, snowplow): each type is written as the first name it lists for it, "
        "else in words ('Demo Requested'); give the worker or replay the same file",
    )
    parser.add_argument(
        "--conversion",
        action="append",
        default=[],
        type=_stage_probability,
        metavar="[FUNNEL:]STAGE=P",
        help="probability of moving on from STAGE (default 0.5)",
    )
    parser.add_argument(
        "--delay",
        action="append",
        default=[],
        type=_stage_duration,
        metavar="[FUNNEL:]STAGE=DURATION",
        help="mean time in STAGE before moving on (default 40%% of its stall_after, else 2d)",
    )
    parser.add_argument(
        "--channel-conversion",
        action="append",
        default=[],
        type=_channel_factor,
        metavar="CHANNEL=FACTOR",
        help="contacts whose first touchpoint came through CHANNEL move on at FACTOR times each stage's "
        "probability (at most 1); repeatable, one channel each (default: every channel alike)",
    )
    defaults = Config(seed=0, contacts=1)
    for name, help_text in (
        ("lost-rate", "a contact that does not move on sends a lost touchpoint"),
        ("duplicate-rate", "a touchpoint is sent twice (same event_id, same body)"),
        ("noise-rate", "chance of each further touchpoint that moves nothing, per stage visit"),
        ("skip-rate", "a contact that moves on skips a stage"),
    ):
        default = getattr(defaults, name.replace("-", "_"))
        parser.add_argument(
            f"--{name}", type=_probability, default=default, metavar="P", help=f"{help_text} (default {default})"
        )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    request = Request(
        seed=args.seed,
        contacts=args.contacts,
        touchpoints=args.touchpoints,
        start=args.start,
        end=args.end,
        days=args.days,
        lost_rate=args.lost_rate,
        duplicate_rate=args.duplicate_rate,
        noise_rate=args.noise_rate,
        skip_rate=args.skip_rate,
        contact_prefix=args.contact_prefix,
        conversion=args.conversion,
        delay=args.delay,
        channel_conversion=args.channel_conversion,
        fmt=args.format,
        mapping=args.mapping,
        output=args.output,
        to_topic=args.to_topic,
    )
    return simulate(funnels_from(args), request)


def _split(text: str) -> tuple[str | None, str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key or not value:
        raise argparse.ArgumentTypeError(f"expected [FUNNEL:]STAGE=VALUE, got {text!r}")
    funnel, colon, stage = key.rpartition(":")
    return (funnel if colon else None), stage, value


def _stage_probability(text: str) -> StageSetting:
    funnel, stage, value = _split(text)
    return funnel, stage, _probability(value)


def _stage_duration(text: str) -> StageSetting:
    funnel, stage, value = _split(text)
    try:
        return funnel, stage, parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _channel_factor(text: str) -> tuple[str, float]:
    channel, sep, factor = text.partition("=")
    try:
        value = float(factor) if sep and channel else -1.0
    except ValueError:
        value = -1.0
    if not 0.0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected CHANNEL=FACTOR with a factor of 0 or more, got {text!r}")
    return channel, value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a probability between 0 and 1, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
