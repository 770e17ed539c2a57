"""`funnel-processor report`: the funnel table a person reads, from transition and drop-off records.

Reads JSONL files (or stdin), or with `--from-topics` the configured transition and
drop-off topics (FUNNEL_* variables), into `processor.funnelstats`, which does the counting, and
renders the figures as an aligned text table or one JSON object. Which funnels appear:

- with `--funnel` / `--funnel-file`: exactly those, in definition stage order, even when
  no record mentions them; records of other funnels are left out, with a note.
- by default: the presets that have records, then every other funnel seen in the
  records, its stage order inferred from the transitions (marked as such).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import orjson

from processor.cliargs import add_funnel_options, funnels_from
from processor.funnelstats import DROPOFF, DUPLICATE, SKIPPED, TRANSITION, BadRecord, FunnelStats, FunnelTable, plan
from processor.settings import Settings, SettingsError

MAX_WARNINGS = 20  # malformed lines described on stderr; the rest are only counted
TOPIC_TIMEOUT_S = 3.0  # --from-topics: stop reading a topic once nothing new arrived for this long


@dataclass(slots=True)
class Reading:
    stats: FunnelStats = field(default_factory=FunnelStats)
    blank: int = 0
    malformed: int = 0


@dataclass(frozen=True, slots=True)
class Shown:
    table: FunnelTable
    defined: bool  # stage order from a funnel definition (else inferred from records)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "report",
        help="funnel table from transition and drop-off records",
        description="Per stage: contacts entered, converted (%%), dropped (stalled / lost), median time in "
        "stage, reached; and the entries needed at the top for a target at a stage at current rates.",
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
    parser.add_argument("--target", type=_positive, default=100, help="contacts wanted at --stage (default 100)")
    parser.add_argument("--stage", help="stage for the planning line (default: each funnel's last stage)")
    parser.add_argument("--format", choices=("text", "json"), default="text")
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
    specs = args.funnel_specs  # None: every preset with records, then other funnels seen
    funnels = funnels_from(args)
    reading = Reading()
    problem = _read_topics(args.timeout, reading) if args.from_topics else _read_files(args.input or ["-"], reading)
    if problem:
        print(f"funnel-processor report: {problem}", file=sys.stderr)
        return 2
    if reading.malformed:
        print(f"funnel-processor report: ignored {_count(reading.malformed, 'malformed line')}", file=sys.stderr)

    stats = reading.stats
    shown = [Shown(stats.table(f.name, f.stages), True) for f in funnels if specs or stats.records(f.name)]
    loaded = {f.name for f in funnels}
    unknown = [name for name in stats.funnels() if name not in loaded]
    others: dict[str, int] = {}
    if specs:  # the funnels asked for, and a note on the records left out
        others = {name: stats.records(name) for name in unknown}
    else:  # funnels without a loaded definition: stage order inferred from their records
        shown += [Shown(stats.table(name), False) for name in unknown]
    figures = _figures(shown, reading, others, args.target, args.stage)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(figures))
    return 0


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


def _read_files(paths: Sequence[str], reading: Reading) -> str | None:
    for path in paths:
        try:
            with _open(path) as lines:
                _read(lines, path, reading)
        except OSError as exc:
            return f"cannot read {path}: {exc.strerror or exc}"
    return None


def _read_topics(timeout_s: float, reading: Reading) -> str | None:
    """Every record of the transition and drop-off topics into `reading`; a problem, if any, as text."""
    from processor import kafkaio  # kafka-python only when topics are read

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
        reading.stats.add(orjson.loads(line))
    except (orjson.JSONDecodeError, BadRecord) as exc:
        reading.malformed += 1
        if reading.malformed <= MAX_WARNINGS:
            problem = f"not valid JSON: {exc}" if isinstance(exc, orjson.JSONDecodeError) else str(exc)
            print(f"funnel-processor report: {where}: {problem}", file=sys.stderr)
        elif reading.malformed == MAX_WARNINGS + 1:
            print("funnel-processor report: further malformed lines are only counted", file=sys.stderr)


def _figures(
    shown: Sequence[Shown], reading: Reading, others: dict[str, int], target: int, stage: str | None
) -> dict[str, Any]:
    """Everything the report says, as plain data: the JSON output, and what the text renders."""
    funnels = []
    for item in shown:
        table = item.table
        at = stage if stage is not None else (table.stages[-1].stage if table.stages else "")
        goal = plan(table, target, at)
        funnels.append(
            {
                "funnel": table.funnel,
                "stage_order": "definition" if item.defined else "inferred",
                "entries": table.entries,
                "stages": [asdict(row) for row in table.stages],
                "stages_not_in_definition": list(table.inferred) if item.defined else [],
                "planning": {
                    "target": goal.target,
                    "stage": goal.stage,
                    "stage_in_funnel": any(row.stage == at for row in table.stages),
                    "reach_rate": goal.reach_rate,
                    "entries_needed": goal.entries_needed,
                },
            }
        )
    counts = reading.stats.counts
    return {
        "funnels": funnels,
        "records": {
            "transitions": counts[TRANSITION],
            "dropoffs": counts[DROPOFF],
            "duplicates": counts[DUPLICATE],
            "skipped": counts[SKIPPED] + reading.blank,
            "skipped_blank": reading.blank,
            "malformed": reading.malformed,
            "other_funnels": others,
        },
    }


COLUMNS = ("stage", "entered", "converted", "conv %", "stalled", "lost", "median time*", "reached", "reach %")


def render_text(figures: dict[str, Any]) -> str:
    out: list[str] = []
    if not figures["funnels"]:
        out.append("No transition or drop-off records read.")
    for funnel in figures["funnels"]:
        out.append(f"{funnel['funnel']}: {_count(funnel['entries'], 'entry', 'entries')}")
        rows = [
            [
                row["stage"],
                f"{row['entered']:,}",
                f"{row['converted']:,}",
                _percent(row["converted_rate"]),
                f"{row['stalled']:,}",
                f"{row['lost']:,}",
                _duration(row["median_time_s"]),
                f"{row['reached']:,}",
                _percent(row["reach_rate"]),
            ]
            for row in funnel["stages"]
        ]
        widths = [max(len(cell) for cell in column) for column in zip(COLUMNS, *rows, strict=False)]
        for cells in [list(COLUMNS), *rows]:
            line = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
            out.append("  ".join(line).rstrip())
        if funnel["stage_order"] == "inferred":
            out.append("(no definition loaded for this funnel: stage order inferred from the records)")
        elif funnel["stages_not_in_definition"]:
            out.append(f"(stages not in the definition, placed last: {', '.join(funnel['stages_not_in_definition'])})")
        out.append(_planning(funnel["planning"]))
        out.append("")
    out.extend(_footnotes(figures["records"]))
    return "\n".join(out) + "\n"


def _planning(goal: dict[str, Any]) -> str:
    target, stage = f"{goal['target']:,}", goal["stage"]
    if not goal["stage_in_funnel"]:
        return f"Planning: this funnel has no stage {stage!r}." if stage else "Planning: this funnel has no stages."
    if goal["entries_needed"] is None:
        return f"Planning: nobody has reached {stage} yet, so there is no current rate to plan {target} with."
    return (
        f"To get {target} at stage {stage}, you need about {goal['entries_needed']:,} entries at the top "
        f"at current rates ({_percent(goal['reach_rate'])} of entries reach {stage})."
    )


def _footnotes(records: dict[str, Any]) -> list[str]:
    notes = [
        "* median time in stage: median of time_in_previous_stage_s over the transitions out of the stage,",
        "  so only contacts who moved on count. conv % = converted / entered (contacts who skipped a stage",
        "  did not enter it). reached = contacts who entered the stage or a later one; reach % = of entries.",
        f"Records read: {_count(records['transitions'], 'transition')}, {_count(records['dropoffs'], 'drop-off')}"
        f"; {_count(records['duplicates'], 'duplicate')} (same id) ignored.",
    ]
    if records["skipped"]:
        other = records["skipped"] - records["skipped_blank"]
        notes.append(
            f"Skipped {_count(records['skipped'], 'line')}: {records['skipped_blank']:,} blank, "
            f"{other:,} not a transition or drop-off record (e.g. dead letters)."
        )
    if records["malformed"]:
        notes.append(f"Ignored {_count(records['malformed'], 'malformed line')} (details on stderr).")
    if records["other_funnels"]:
        listed = ", ".join(f"{name} ({n:,})" for name, n in records["other_funnels"].items())
        notes.append(f"Left out records of funnels not selected: {listed}.")
    return notes


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def _duration(seconds: float | None) -> str:
    """Human-readable: '45s', '12m', '5.0h', '3.2d'; '-' when there is nothing to show."""
    if seconds is None:
        return "-"
    if round(seconds) < 60:
        return f"{round(seconds)}s"
    if round(seconds / 60) < 60:
        return f"{round(seconds / 60)}m"
    if round(seconds / 3600, 1) < 24:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"
