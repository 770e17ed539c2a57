"""`funnel-processor report`: the funnel table a person reads, from transition and drop-off records.

Reads JSONL files (or stdin), or with `--from-topics` the configured transition and
drop-off topics (FUNNEL_* variables), into `processor.tools.funnelstats`, which does the counting, and
renders the figures as an aligned text table or one JSON object. Which funnels appear:

- with `--funnel` / `--funnel-file`: exactly those, in definition stage order, even when
  no record mentions them; records of other funnels are left out, with a note.
- by default: the presets that have records, then every other funnel seen in the
  records, its stage order inferred from the transitions (marked as such).

With `--by`, each funnel's table is followed by one per value of that breakdown
(`processor.tools.breakdownstats`), each with its own planning line.

Lines that are JSON but no transition or drop-off record (touchpoints, dead letters...)
are counted by kind and reported; a run that read only such lines, and no output
record at all, is refused (exit 2), saying what it read instead.
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import orjson

from processor.cli.args import add_funnel_options, funnels_from
from processor.config.settings import Settings, SettingsError
from processor.funnel.definition import Funnel
from processor.tools.breakdownstats import BY, BreakdownStats
from processor.tools.funnelstats import (
    DROPOFF,
    DUPLICATE,
    SKIPPED,
    TRANSITION,
    BadRecord,
    FunnelStats,
    FunnelTable,
    plan,
)

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


@dataclass(frozen=True, slots=True)
class Shown:
    table: FunnelTable
    defined: bool  # stage order from a funnel definition (else inferred from records)


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
    specs = args.funnel_specs  # None: every preset with records, then other funnels seen
    funnels = funnels_from(args)
    # A definition's renamed_from: records from before a rename count under the stage's name now.
    renamed = {f.name: dict(f.former) for f in funnels}
    reading = Reading(None if args.by is None else BreakdownStats(args.by), renamed)
    problem = _read_topics(args.timeout, reading) if args.from_topics else _read_files(args.input or ["-"], reading)
    if problem:
        print(f"funnel-processor report: {problem}", file=sys.stderr)
        return 2
    if reading.malformed:
        print(f"funnel-processor report: ignored {_count(reading.malformed, 'malformed line')}", file=sys.stderr)
    if not reading.outputs() and (reading.others or reading.malformed):
        print(f"funnel-processor report: {_nothing_read(reading)}", file=sys.stderr)
        return 2
    if reading.others:
        print(f"funnel-processor report: skipped {_others(reading.others)}", file=sys.stderr)

    stats = reading.stats
    shown = [Shown(stats.table(f.name, f.stages), True) for f in funnels if specs or stats.records(f.name)]
    loaded = {f.name for f in funnels}
    unknown = [name for name in stats.funnels() if name not in loaded]
    others: dict[str, int] = {}
    if specs:  # the funnels asked for, and a note on the records left out
        others = {name: stats.records(name) for name in unknown}
    else:  # funnels without a loaded definition: stage order inferred from their records
        shown += [Shown(stats.table(name), False) for name in unknown]
    if args.stage is not None and (problem := _unknown_stage(args.stage, funnels, shown)):
        print(f"funnel-processor report: {problem}", file=sys.stderr)
        return 2
    figures = _figures(shown, reading, others, args.target, args.stage)
    if args.format == "json":
        sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(figures))
    return 0


def _others(others: Counter[str]) -> str:
    """'6,001 lines (not transition or drop-off records): 6,000 touchpoints, 1 dead letter'."""
    kinds = ", ".join(_count(n, kind) for kind, n in others.most_common())
    return f"{_count(others.total(), 'line')} (not transition or drop-off records): {kinds}"


def _nothing_read(reading: Reading) -> str:
    held = [_count(n, kind) for kind, n in reading.others.most_common()]
    if reading.malformed:
        held.append(_count(reading.malformed, "malformed line"))
    message = f"read no transition or drop-off records; the input held {', '.join(held)}"
    if reading.others[TOUCHPOINT]:
        message += (
            ". `report` reads the outputs of replay or of the worker: run the touchpoints through "
            "`funnel-processor replay --funnel NAME --input FILE > outputs.jsonl` first, then report on outputs.jsonl"
        )
    return message


def _unknown_stage(stage: str, funnels: Sequence[Funnel], shown: Sequence[Shown]) -> str | None:
    """Why --stage names no stage of the funnels loaded or reported, or None when it names one."""
    known = list(
        dict.fromkeys([s for f in funnels for s in f.stages] + [r.stage for i in shown for r in i.table.stages])
    )
    if stage in known:
        return None
    close = difflib.get_close_matches(stage, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"the stages are {', '.join(known) or '(none)'}"
    return f"--stage {stage!r} is not a stage of the funnels reported; {hint}"


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


def _figures(
    shown: Sequence[Shown], reading: Reading, others: dict[str, int], target: int, stage: str | None
) -> dict[str, Any]:
    """Everything the report says, as plain data: the JSON output, and what the text renders."""
    funnels = []
    for item in shown:
        table = item.table
        at = stage if stage is not None else (table.stages[-1].stage if table.stages else "")
        figures: dict[str, Any] = {
            "funnel": table.funnel,
            "stage_order": "definition" if item.defined else "inferred",
            "entries": table.entries,
            "stages": [asdict(row) for row in table.stages],
            "stages_not_in_definition": list(table.inferred) if item.defined else [],
            "planning": _planning_figures(table, target, at),
        }
        if reading.by is not None:
            figures["by"] = _by_figures(reading.by, table, target, at)
        funnels.append(figures)
    counts = reading.stats.counts
    return {
        "funnels": funnels,
        "records": {
            "transitions": counts[TRANSITION],
            "dropoffs": counts[DROPOFF],
            "duplicates": counts[DUPLICATE],
            "skipped": counts[SKIPPED] + reading.blank,
            "skipped_blank": reading.blank,
            "skipped_touchpoints": reading.others[TOUCHPOINT],
            "skipped_dead_letters": reading.others[DEAD_LETTER],
            "skipped_other_json": reading.others[OTHER_JSON],
            "malformed": reading.malformed,
            "other_funnels": others,
        },
    }


def _planning_figures(table: FunnelTable, target: int, at: str) -> dict[str, Any]:
    goal = plan(table, target, at)
    return {
        "target": goal.target,
        "stage": goal.stage,
        "stage_in_funnel": any(row.stage == at for row in table.stages),
        "reach_rate": goal.reach_rate,
        "entries_needed": goal.entries_needed,
    }


def _by_figures(by: BreakdownStats, table: FunnelTable, target: int, at: str) -> dict[str, Any]:
    values, left_out = by.values(table.funnel, [row.stage for row in table.stages])
    shown: list[dict[str, Any]]
    if by.by == "last_touch_type":
        shown = [
            {
                "value": item.value,
                "dropoffs": sum(row.stalled + row.lost for row in item.table.stages),
                "stages": [{"stage": row.stage, "stalled": row.stalled, "lost": row.lost} for row in item.table.stages],
            }
            for item in values
        ]
    else:
        shown = [
            {
                "value": item.value,
                "entries": item.table.entries,
                "stages": [asdict(row) for row in item.table.stages],
                "planning": _planning_figures(item.table, target, at),
            }
            for item in values
        ]
    return {"breakdown": by.by, "left_out": left_out, "values": shown}


COLUMNS = ("stage", "entered", "converted", "conv %", "stalled", "lost", "median time*", "reached", "reach %")


def render_text(figures: dict[str, Any]) -> str:
    out: list[str] = []
    if not figures["funnels"]:
        out.append("No transition or drop-off records read.")
    for funnel in figures["funnels"]:
        out.append(f"{funnel['funnel']}: {_count(funnel['entries'], 'entry', 'entries')}")
        out.extend(_table(funnel["stages"]))
        if funnel["stage_order"] == "inferred":
            out.append("(no definition loaded for this funnel: stage order inferred from the records)")
        elif funnel["stages_not_in_definition"]:
            out.append(f"(stages not in the definition, placed last: {', '.join(funnel['stages_not_in_definition'])})")
        out.append(_planning(funnel["planning"]))
        out.append("")
        if "by" in funnel:
            out.extend(_render_by(funnel["funnel"], funnel["by"]))
    out.extend(_footnotes(figures["records"]))
    return "\n".join(out) + "\n"


def _table(stages: list[dict[str, Any]]) -> list[str]:
    rows = [
        [
            row["stage"],
            f"{row['entered']:,}",
            f"{row['converted']:,}",
            _percent(row["converted_rate"]),
            f"{row['stalled']:,}",
            f"{row['lost']:,}",
            duration(row["median_time_s"]),
            f"{row['reached']:,}",
            _percent(row["reach_rate"]),
        ]
        for row in stages
    ]
    return _aligned(COLUMNS, rows)


def _aligned(columns: Sequence[str], rows: list[list[str]]) -> list[str]:
    """Columns right-aligned under their headings, the first left-aligned."""
    widths = [max(len(cell) for cell in column) for column in zip(columns, *rows, strict=False)]
    lines = []
    for cells in [list(columns), *rows]:
        line = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        lines.append("  ".join(line).rstrip())
    return lines


def _render_by(funnel: str, by: dict[str, Any]) -> list[str]:
    name = by["breakdown"]
    out = []
    if by["left_out"]:
        out.append(
            f"({funnel} by {name}: {_count(by['left_out'], 'record')} left out: the transition into their stage "
            "is not in the input)"
        )
    for item in by["values"]:
        value = "(none)" if item["value"] is None else item["value"]
        if name == "last_touch_type":
            out.append(f"{funnel}, {name} {value}: {_count(item['dropoffs'], 'drop-off')}")
            rows = [[row["stage"], f"{row['stalled']:,}", f"{row['lost']:,}"] for row in item["stages"]]
            out.extend(_aligned(("stage", "stalled", "lost"), rows))
        else:
            out.append(f"{funnel}, {name} {value}: {_count(item['entries'], 'entry', 'entries')}")
            out.extend(_table(item["stages"]))
            out.append(_planning(item["planning"]))
        out.append("")
    return out


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
        "  A contact that stalled or was lost and later moved on (a reactivation) counts as dropped and as",
        "  converted, so converted + stalled + lost can exceed entered.",
        f"Records read: {_count(records['transitions'], 'transition')}, {_count(records['dropoffs'], 'drop-off')}"
        f"; {_count(records['duplicates'], 'duplicate')} (same id) ignored.",
    ]
    if records["skipped"]:
        kinds = [
            _count(records[key], one)
            for key, one in (
                ("skipped_blank", "blank line"),
                ("skipped_touchpoints", TOUCHPOINT),
                ("skipped_dead_letters", DEAD_LETTER),
                ("skipped_other_json", OTHER_JSON),
            )
            if records[key]
        ]
        notes.append(
            f"Skipped {_count(records['skipped'], 'line')} that are not transition or drop-off records: "
            f"{', '.join(kinds)}."
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


def duration(seconds: float | None) -> str:
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
