"""Reading the records a report counts: JSONL files, stdin or the output topics (`funnel-processor report`).

Each line goes to `processor.tools.funnelstats` (and, with a breakdown, `breakdownstats`).
Lines that are JSON but no transition or drop-off record (touchpoints, dead letters...)
are counted by kind; malformed lines are counted, the first few described on stderr.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import IO, Any

import orjson

from processor.config.settings import Settings, SettingsError
from processor.tools.breakdownstats import BreakdownStats
from processor.tools.funnelstats import DROPOFF, DUPLICATE, SKIPPED, TRANSITION, BadRecord, FunnelStats

MAX_WARNINGS = 20  # malformed lines described on stderr; the rest are only counted
TOPIC_TIMEOUT_S = 3.0  # --from-topics: stop reading a topic once nothing new arrived for this long

# What a line that is JSON but no transition or drop-off record most likely is.
TOUCHPOINT, DEAD_LETTER, OTHER_JSON = "touchpoint", "dead letter", "other JSON value"
_TOUCHPOINT_FIELDS = ("event_id", "contact_id", "type", "occurred_at")


@dataclass(slots=True)
class Reading:
    by: BreakdownStats | None = None
    renamed: dict[str, dict[str, str]] = field(default_factory=dict)  # funnel -> former stage name -> stage
    stats: FunnelStats = field(init=False)
    blank: int = 0
    malformed: int = 0
    others: Counter[str] = field(default_factory=Counter)  # JSON but not an output: TOUCHPOINT, DEAD_LETTER...

    def __post_init__(self) -> None:
        self.stats = FunnelStats(None if self.by is None else self.by.prepare, self.renamed)

    def outputs(self) -> int:
        """Transition and drop-off records read, duplicates included."""
        counts = self.stats.counts
        return counts[TRANSITION] + counts[DROPOFF] + counts[DUPLICATE]


def others_line(others: Counter[str]) -> str:
    """'6,001 lines (not transition or drop-off records): 6,000 touchpoints, 1 dead letter'."""
    kinds = ", ".join(counted(n, kind) for kind, n in others.most_common())
    return f"{counted(others.total(), 'line')} (not transition or drop-off records): {kinds}"


def nothing_read(reading: Reading) -> str:
    held = [counted(n, kind) for kind, n in reading.others.most_common()]
    if reading.malformed:
        held.append(counted(reading.malformed, "malformed line"))
    message = f"read no transition or drop-off records; the input held {', '.join(held)}"
    if reading.others[TOUCHPOINT]:
        message += (
            ". `report` reads the outputs of replay or of the worker: run the touchpoints through "
            "`funnel-processor replay --funnel NAME --input FILE > outputs.jsonl` first, then report on outputs.jsonl"
        )
    return message


@contextmanager
def _open(path: str) -> Iterator[IO[bytes]]:
    if path == "-":
        yield sys.stdin.buffer
    else:
        with open(path, "rb") as handle:
            yield handle


def _read(lines: IO[bytes], source: str, reading: Reading) -> None:
    where = "stdin" if source == "-" else source
    for number, line in enumerate(lines, 1):
        _add(line, f"{where}:{number}", reading)


def read_files(paths: Sequence[str], reading: Reading) -> str | None:
    for path in paths:
        try:
            with _open(path) as lines:
                _read(lines, path, reading)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return None


def read_topics(timeout_s: float, reading: Reading) -> str | None:
    """Every record of the transition and drop-off topics into `reading`; a problem, if any, as text."""
    from processor.kafka import clients as kafkaio  # kafka-python only when topics are read

    try:
        settings = Settings.from_env()
        for topic in (settings.topic_transitions, settings.topic_dropoffs):
            for record in kafkaio.read_topic(settings, topic, timeout_s=timeout_s):
                _add(record.value, f"{topic}[{record.partition}]@{record.offset}", reading)
    except (SettingsError, kafkaio.KafkaIOError) as exc:
        return str(exc)
    return None


def _add(line: bytes | None, where: str, reading: Reading) -> None:
    if line is None or not line.strip():
        reading.blank += 1
        return
    try:
        doc = orjson.loads(line)
        if reading.stats.add(doc) == SKIPPED:
            reading.others[_kind_of(doc)] += 1
    except (orjson.JSONDecodeError, BadRecord) as exc:
        reading.malformed += 1
        if reading.malformed <= MAX_WARNINGS:
            problem = f"not valid JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
            print(f"funnel-processor report: {where}: {problem}", file=sys.stderr)
        elif reading.malformed == MAX_WARNINGS + 1:
            print("funnel-processor report: further malformed lines are only counted", file=sys.stderr)


def _kind_of(doc: Any) -> str:
    """What a JSON value that is no transition or drop-off record looks like it is."""
    if type(doc) is dict:
        if doc.get("kind") == "deadletter":
            return DEAD_LETTER
        if "kind" not in doc and all(name in doc for name in _TOUCHPOINT_FIELDS):
            return TOUCHPOINT
    return OTHER_JSON


def counted(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"
