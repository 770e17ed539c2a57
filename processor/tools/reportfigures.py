"""The report's figures as plain data: the JSON output, and what the text renders (`processor.tools.reporttext`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from processor.tools.breakdownstats import BreakdownStats
from processor.tools.funnelstats import DROPOFF, DUPLICATE, SKIPPED, TRANSITION, FunnelTable, plan
from processor.tools.reportread import DEAD_LETTER, OTHER_JSON, TOUCHPOINT, Reading


@dataclass(frozen=True, slots=True)
class Shown:
    table: FunnelTable
    defined: bool  # stage order from a funnel definition (else inferred from records)


def figures_of(
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
