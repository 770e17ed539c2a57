"""The report as aligned text tables, from its figures (`processor.tools.reportfigures`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from processor.tools.reportread import DEAD_LETTER, OTHER_JSON, TOUCHPOINT, counted

COLUMNS = ("stage", "entered", "converted", "conv %", "stalled", "lost", "median time*", "reached", "reach %")


def render_text(figures: dict[str, Any]) -> str:
    out: list[str] = []
    if not figures["funnels"]:
        out.append("No transition or drop-off records read.")
    for funnel in figures["funnels"]:
        out.append(f"{funnel['funnel']}: {counted(funnel['entries'], 'entry', 'entries')}")
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
            f"({funnel} by {name}: {counted(by['left_out'], 'record')} left out: the transition into their stage "
            "is not in the input)"
        )
    for item in by["values"]:
        value = "(none)" if item["value"] is None else item["value"]
        if name == "last_touch_type":
            out.append(f"{funnel}, {name} {value}: {counted(item['dropoffs'], 'drop-off')}")
            rows = [[row["stage"], f"{row['stalled']:,}", f"{row['lost']:,}"] for row in item["stages"]]
            out.extend(_aligned(("stage", "stalled", "lost"), rows))
        else:
            out.append(f"{funnel}, {name} {value}: {counted(item['entries'], 'entry', 'entries')}")
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
        f"Records read: {counted(records['transitions'], 'transition')}, {counted(records['dropoffs'], 'drop-off')}"
        f"; {counted(records['duplicates'], 'duplicate')} (same id) ignored.",
    ]
    if records["skipped"]:
        kinds = [
            counted(records[key], one)
            for key, one in (
                ("skipped_blank", "blank line"),
                ("skipped_touchpoints", TOUCHPOINT),
                ("skipped_dead_letters", DEAD_LETTER),
                ("skipped_other_json", OTHER_JSON),
            )
            if records[key]
        ]
        notes.append(
            f"Skipped {counted(records['skipped'], 'line')} that are not transition or drop-off records: "
            f"{', '.join(kinds)}."
        )
    if records["malformed"]:
        notes.append(f"Ignored {counted(records['malformed'], 'malformed line')} (details on stderr).")
    if records["other_funnels"]:
        listed = ", ".join(f"{name} ({n:,})" for name, n in records["other_funnels"].items())
        notes.append(f"Left out records of funnels not selected: {listed}.")
    return notes


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
