"""The `simulate` command: seeded synthetic touchpoints for any funnels, written as JSONL.

The touchpoints come from `processor.tools.simgen.generate` (pure, in event-time order);
this module writes the lines: to a file, stdout, or with `--to-topic` to a Kafka topic
(keyed by contact_id, broker from FUNNEL_* variables). With `--format segment` or
`snowplow` the touchpoints are written as the events of that format that the worker and
replay read back as the same touchpoints (processor/tools/simshapes.py), and a topic's
records are keyed by their message id, as such pipelines often key them.

Time: `--start` or `--end` fixes the touchpoints' times, so the same seed and options
give the same bytes. Without either, the last touchpoint falls at 00:00 UTC of the
current day: every time lies in the past, as a worker's bound on the future requires,
and the file is the same all day (on another day, the same walks shifted by whole days).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from processor.config.eventmapping import MappingError, load_mapping
from processor.config.settings import Settings, SettingsError
from processor.funnel.definition import Funnel
from processor.funnel.timefmt import US_PER_S, parse_time, seconds
from processor.tools.simgen import Config, FunnelPlan, generate, plan_for
from processor.tools.simshapes import Shaper

# A per-stage setting: (funnel name or None for every funnel with that stage, stage, value).
StageSetting = tuple[str | None, str, Any]
DAY_US = 86_400 * US_PER_S


@dataclass(frozen=True, slots=True)
class Request:
    """What `simulate` was asked for, its options as given (checked by `simulate`)."""

    seed: int
    contacts: int | None
    touchpoints: int | None
    start: int | None  # µs; or
    end: int | None  # µs; neither: 00:00 UTC of the current day
    days: float
    lost_rate: float
    duplicate_rate: float
    noise_rate: float
    skip_rate: float
    contact_prefix: str
    conversion: Sequence[StageSetting]
    delay: Sequence[StageSetting]
    channel_conversion: Sequence[tuple[str, float]]
    fmt: str
    mapping: str | None
    output: str  # a file, '-' for stdout
    to_topic: str | None  # a topic, '' for the configured touchpoints topic; None: to `output`


def simulate(funnels: Sequence[Funnel], request: Request) -> int:
    """The `simulate` command: lines to a file, stdout or a topic, the summary on stderr; the exit code."""
    try:
        plans = _plans(funnels, request.conversion, request.delay)
        channels = [channel for channel, _ in request.channel_conversion]
        if len(set(channels)) != len(channels):
            raise ValueError("--channel-conversion names a channel twice")
        shape = _shaper(request.fmt, request.mapping)
    except (ValueError, MappingError) as exc:
        print(f"funnel-processor simulate: {exc}", file=sys.stderr)
        return 2
    config = Config(
        seed=request.seed,
        contacts=request.contacts,
        touchpoints=request.touchpoints,
        days=request.days,
        lost_rate=request.lost_rate,
        duplicate_rate=request.duplicate_rate,
        noise_rate=request.noise_rate,
        skip_rate=request.skip_rate,
        contact_prefix=request.contact_prefix,
        channel_conversion=dict(request.channel_conversion),
    )
    if request.start is not None:
        touchpoints = generate(plans, config, start_us=request.start)
    else:
        end = request.end if request.end is not None else time.time_ns() // 1000 // DAY_US * DAY_US
        touchpoints = generate(plans, config, end_us=end)
    if request.to_topic is not None:
        return _to_topic(touchpoints, request.to_topic, request.fmt, shape)
    try:
        if request.output == "-":
            stats = write_lines(touchpoints, sys.stdout.buffer, shape)
            sys.stdout.buffer.flush()
        else:
            with Path(request.output).open("wb", buffering=1 << 16) as out:
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
