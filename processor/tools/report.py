"""The `report` command: the funnel table a person reads, from transition and drop-off records.

Reads JSONL files (or stdin), or with `--from-topics` the configured transition and
drop-off topics (FUNNEL_* variables), into `processor.tools.funnelstats`, which does the counting
(`processor.tools.reportread`), and renders the figures (`processor.tools.reportfigures`) as an
aligned text table (`processor.tools.reporttext`) or one JSON object. Which funnels appear:

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

import difflib
import sys
from collections.abc import Sequence

import orjson

from processor.funnel.definition import Funnel
from processor.tools.breakdownstats import BreakdownStats
from processor.tools.reportfigures import Shown, figures_of
from processor.tools.reportread import Reading, counted, nothing_read, others_line, read_files, read_topics
from processor.tools.reporttext import render_text


def report(
    funnels: Sequence[Funnel],
    specs: bool,
    inputs: Sequence[str] | None,
    from_topics: bool,
    timeout_s: float,
    target: int,
    stage: str | None,
    fmt: str,
    by: str | None,
) -> int:
    """The `report` command: figures on stdout, problems on stderr; the exit code.

    `specs`: the funnels were named (else every preset with records, then other funnels seen).
    """
    # A definition's renamed_from: records from before a rename count under the stage's name now.
    renamed = {f.name: dict(f.former) for f in funnels}
    reading = Reading(None if by is None else BreakdownStats(by), renamed)
    problem = read_topics(timeout_s, reading) if from_topics else read_files(inputs or ["-"], reading)
    if problem:
        print(f"funnel-processor report: {problem}", file=sys.stderr)
        return 2
    if reading.malformed:
        print(f"funnel-processor report: ignored {counted(reading.malformed, 'malformed line')}", file=sys.stderr)
    if not reading.outputs() and (reading.others or reading.malformed):
        print(f"funnel-processor report: {nothing_read(reading)}", file=sys.stderr)
        return 2
    if reading.others:
        print(f"funnel-processor report: skipped {others_line(reading.others)}", file=sys.stderr)

    stats = reading.stats
    shown = [Shown(stats.table(f.name, f.stages), True) for f in funnels if specs or stats.records(f.name)]
    loaded = {f.name for f in funnels}
    unknown = [name for name in stats.funnels() if name not in loaded]
    others: dict[str, int] = {}
    if specs:  # the funnels asked for, and a note on the records left out
        others = {name: stats.records(name) for name in unknown}
    else:  # funnels without a loaded definition: stage order inferred from their records
        shown += [Shown(stats.table(name), False) for name in unknown]
    if stage is not None and (problem := _unknown_stage(stage, funnels, shown)):
        print(f"funnel-processor report: {problem}", file=sys.stderr)
        return 2
    figures = figures_of(shown, reading, others, target, stage)
    if fmt == "json":
        sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        sys.stdout.write(render_text(figures))
    return 0


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
