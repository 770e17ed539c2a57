"""`funnel-processor simulate`: seeded synthetic touchpoints for any funnels, as JSONL.

The touchpoints come from `processor.tools.simgen.generate` (pure, in event-time order);
this module only parses the options and writes the lines: to a file, stdout, or with
`--to-topic` to a Kafka topic (keyed by contact_id, broker from FUNNEL_* variables).
With `--format segment` or `snowplow` the touchpoints are written as the events of that
format that the worker and replay read back as the same touchpoints (processor/tools/simshapes.py),
and a topic's records are keyed by their message id, as such pipelines often key them.

Time: `--start` or `--end` fixes the touchpoints' times, so the same seed and options
give the same bytes. Without either, the last touchpoint falls at 00:00 UTC of the
current day: every time lies in the past, as a worker's bound on the future requires,
and the file is the same all day (on another day, the same walks shifted by whole days).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from processor.cli.args import add_funnel_options, funnels_from
from processor.config.eventmapping import MappingError, load_mapping
from processor.config.settings import Settings, SettingsError
from processor.funnel.definition import Funnel
from processor.funnel.formats import FORMATS
from processor.funnel.timefmt import US_PER_S, parse_duration, parse_time, seconds
from processor.tools.simgen import Config, FunnelPlan, generate, plan_for
from processor.tools.simshapes import Shaper

# A per-stage setting: (funnel name or None for every funnel with that stage, stage, value).
StageSetting = tuple[str | None, str, Any]
DAY_US = 86_400 * US_PER_S


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
    funnels = funnels_from(args)
    try:
        plans = _plans(funnels, args.conversion, args.delay)
        channels = [channel for channel, _ in args.channel_conversion]
        if len(set(channels)) != len(channels):
            raise ValueError("--channel-conversion names a channel twice")
        shape = _shaper(args.format, args.mapping)
    except (ValueError, MappingError) as exc:
        print(f"funnel-processor simulate: {exc}", file=sys.stderr)
        return 2
    config = Config(
        seed=args.seed,
        contacts=args.contacts,
        touchpoints=args.touchpoints,
        days=args.days,
        lost_rate=args.lost_rate,
        duplicate_rate=args.duplicate_rate,
        noise_rate=args.noise_rate,
        skip_rate=args.skip_rate,
        contact_prefix=args.contact_prefix,
        channel_conversion=dict(args.channel_conversion),
    )
    if args.start is not None:
        touchpoints = generate(plans, config, start_us=args.start)
    else:
        end = args.end if args.end is not None else time.time_ns() // 1000 // DAY_US * DAY_US
        touchpoints = generate(plans, config, end_us=end)
    if args.to_topic is not None:
        return _to_topic(touchpoints, args.to_topic, args.format, shape)
    try:
        if args.output == "-":
            stats = write_lines(touchpoints, sys.stdout.buffer, shape)
            sys.stdout.buffer.flush()
        else:
            with Path(args.output).open("wb", buffering=1 << 16) as out:
                stats = write_lines(touchpoints, out, shape)
    except ValueError as exc:  # the funnels' rules cannot be met by any touchpoint
        print(f"funnel-processor simulate: {exc}", file=sys.stderr)
        return 2
    print(f"funnel-processor simulate: {stats.summary()}", file=sys.stderr)
    return 0


def _shaper(fmt: str, mapping: str | None) -> Shaper | None:
    if fmt == "touchpoint":
        if mapping is not None:
            raise ValueError("--mapping applies only to --format segment or snowplow")
        return None
    return Shaper(fmt, load_mapping(mapping))


def _to_topic(touchpoints: Iterable[dict[str, Any]], topic: str, fmt: str, shape: Shaper | None) -> int:
    from processor.kafka import clients as kafkaio  # kafka-python only when a topic is asked for

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"funnel-processor simulate: {exc}", file=sys.stderr)
        return 2
    topic = topic or settings.topic_touchpoints
    stats = WriteStats()
    try:
        kafkaio.produce_lines(settings, topic, counted_lines(touchpoints, stats, shape), fmt=fmt)
    except (ValueError, kafkaio.KafkaIOError) as exc:
        print(f"funnel-processor simulate: {exc}", file=sys.stderr)
        return 2
    print(f"funnel-processor simulate: {stats.summary()}, to topic {topic}", file=sys.stderr)
    return 0


@dataclass
class WriteStats:
    contacts: int = 0
    touchpoints: int = 0
    duplicates: int = 0
    first: str | None = None
    last: str | None = None
    events: dict[str, int] = field(default_factory=dict)  # --format's events written, by kind

    def summary(self) -> str:
        span = "no touchpoints"
        if self.first is not None and self.last is not None:
            days = seconds(parse_time(self.last) - parse_time(self.first)) / 86_400
            span = f"{self.first} .. {self.last} ({days:.1f} days)"
        written = ""
        if self.events:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.events.items()))
            written = f" as {sum(self.events.values()):,} events ({kinds})"
        touchpoints = f"{self.touchpoints:,} touchpoints ({self.duplicates:,} duplicates){written}"
        return f"{self.contacts:,} contacts, {touchpoints}, {span}"


def write_lines(touchpoints: Iterable[dict[str, Any]], out: IO[bytes], shape: Shaper | None = None) -> WriteStats:
    """One JSON object per line, as they come (in a format's shape with `shape`); counts what was written."""
    stats = WriteStats()
    write = out.write
    for line in counted_lines(touchpoints, stats, shape):
        write(line)
    return stats


def counted_lines(
    touchpoints: Iterable[dict[str, Any]], stats: WriteStats, shape: Shaper | None = None
) -> Iterator[bytes]:
    """Each touchpoint as a JSON line, or as its events in a format's shape; `stats` counts them,
    complete once the lines are exhausted."""
    ids: set[str] = set()
    contacts: set[str] = set()
    dumps, newline = orjson.dumps, orjson.OPT_APPEND_NEWLINE
    for tp in touchpoints:
        if shape is None:
            yield dumps(tp, option=newline)
        else:
            for event in shape.shape(tp):
                kind = event.get("type") or event.get("event") or "event"
                stats.events[kind] = stats.events.get(kind, 0) + 1
                yield dumps(event, option=newline)
        if tp["event_id"] in ids:
            stats.duplicates += 1
        ids.add(tp["event_id"])
        contacts.add(tp["contact_id"])
        if stats.first is None:
            stats.first = tp["occurred_at"]
        stats.last = tp["occurred_at"]
    stats.touchpoints, stats.contacts = len(ids) + stats.duplicates, len(contacts)


def _plans(
    funnels: Sequence[Funnel], conversion: Sequence[StageSetting], delay: Sequence[StageSetting]
) -> list[FunnelPlan]:
    per_funnel: dict[str, tuple[dict[str, float], dict[str, int]]] = {f.name: ({}, {}) for f in funnels}
    for index, settings in ((0, conversion), (1, delay)):
        for funnel_name, stage, value in settings:
            if funnel_name is not None and funnel_name not in per_funnel:
                raise ValueError(f"no funnel {funnel_name!r} is being simulated")
            targets = [f for f in funnels if (f.name == funnel_name if funnel_name else stage in f.stages)]
            if not targets:
                raise ValueError(f"no simulated funnel has a stage {stage!r}")
            for funnel in targets:
                per_funnel[funnel.name][index][stage] = value
    return [plan_for(f, *per_funnel[f.name]) for f in funnels]


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
