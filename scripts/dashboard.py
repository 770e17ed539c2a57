"""Writes the Grafana dashboard deploy/grafana/dashboards/funnel-processor.json.

The dashboard is built here, in one readable list of panels, rather than edited as
JSON: run `python scripts/dashboard.py` after changing it (`--check` tells whether the
file is current; tests/deploy fail while it is not). Every query uses the datasource
`${DS_PROMETHEUS}`: a datasource variable when the dashboard is provisioned, and the
import input of the same name when it is imported by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TARGET = ROOT / "deploy/grafana/dashboards/funnel-processor.json"
DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
F = 'funnel="$funnel"'
Panel = dict[str, Any]


def target(expr: str, legend: str = "__auto", ref: str = "A", *, instant: bool = False) -> dict[str, Any]:
    return {
        "datasource": DS,
        "refId": ref,
        "expr": expr,
        "legendFormat": legend,
        "range": not instant,
        "instant": instant,
        **({"format": "table"} if instant else {}),
    }


def panel(kind: str, title: str, description: str, targets: list[dict[str, Any]], unit: str, **extra: Any) -> Panel:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "targets": targets,
        "fieldConfig": {"defaults": {"unit": unit, **extra.pop("defaults", {})}, "overrides": []},
        **extra,
    }


def timeseries(title: str, description: str, targets: list[dict[str, Any]], unit: str, **extra: Any) -> Panel:
    options = {"legend": {"displayMode": "table", "placement": "right", "calcs": ["lastNotNull"]}}
    return panel("timeseries", title, description, targets, unit, options=options, **extra)


def by_stage_order(title: str, description: str, expr: str, value: str, unit: str) -> Panel:
    """A bar per stage, in the funnel's order (joined with funnel_stage_position)."""
    return panel(
        "barchart",
        title,
        description,
        [
            target(expr, ref="A", instant=True),
            target(f"max by (stage) (funnel_stage_position{{{F}}})", ref="B", instant=True),
        ],
        unit,
        options={
            "xField": "stage",
            "orientation": "horizontal",
            "showValue": "always",
            "legend": {"showLegend": False},
        },
        transformations=[
            {"id": "joinByField", "options": {"byField": "stage", "mode": "outer"}},
            {"id": "sortBy", "options": {"sort": [{"field": "Value #B", "desc": False}]}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True, "Time 1": True, "Time 2": True, "Value #B": True},
                    "renameByName": {"Value #A": value},
                },
            },
        ],
    )


def table(title: str, description: str, expr: str, *, rows: str, columns: str, unit: str) -> Panel:
    """An instant query as a grid: a row per value of `rows`, a column per value of `columns`."""
    return panel(
        "table",
        title,
        description,
        [target(expr, instant=True)],
        unit,
        transformations=[
            {"id": "groupingToMatrix", "options": {"rowField": rows, "columnField": columns, "valueField": "Value"}}
        ],
    )


def row(title: str) -> Panel:
    return {"type": "row", "title": title, "collapsed": False, "panels": []}


def panels() -> list[Panel]:
    quantile = "histogram_quantile({q}, sum by (le, stage) (rate({metric}_bucket{{{f}}}[1h])))"
    return [
        row("Funnel"),
        by_stage_order(
            "Contacts entering each stage",
            "Stage entries over the dashboard's time range, all workers, in the funnel's order.",
            f"sum by (stage) (increase(funnel_stage_entries_total{{{F}}}[$__range]))",
            "entered",
            "short",
        ),
        by_stage_order(
            "Conversion to a later stage, last day",
            "Contacts who moved on from the stage / contacts who entered it, over the last day "
            "(recording rule funnel_stage:funnel_conversion:ratio1d). The last stage has none.",
            f"funnel_stage:funnel_conversion:ratio1d{{{F}}}",
            "conversion",
            "percentunit",
        ),
        timeseries(
            "Conversion rate over time (1h window)",
            "funnel_stage:funnel_conversion:ratio1h: exits / entries per stage over a sliding hour.",
            [target(f"funnel_stage:funnel_conversion:ratio1h{{{F}}}", "{{stage}}")],
            "percentunit",
        ),
        timeseries(
            "Contacts now in each stage",
            "Contacts whose current stage this is, summed over the partitions each worker owns.",
            [
                target(f"sum by (stage) (funnel_contacts_in_stage{{{F}}})", "{{stage}}", "A"),
                target(f"sum by (stage) (funnel_contacts_dropped_in_stage{{{F}}})", "{{stage}} (dropped)", "B"),
            ],
            "short",
        ),
        row("Drop-offs"),
        timeseries(
            "Drop-offs by stage and reason (per 15 min)",
            "Drop-offs in the last 15 minutes (recording rule funnel_stage_reason:funnel_dropoffs:increase15m).",
            [target(f"funnel_stage_reason:funnel_dropoffs:increase15m{{{F}}}", "{{stage}} {{reason}}")],
            "short",
            defaults={"custom": {"stacking": {"mode": "normal"}, "drawStyle": "bars", "fillOpacity": 80}},
        ),
        by_stage_order(
            "Drop-offs by stage in range",
            "Drop-offs (lost and stalled) over the dashboard's time range, in the funnel's order.",
            f"sum by (stage) (increase(funnel_dropoffs_total{{{F}}}[$__range]))",
            "dropped",
            "short",
        ),
        row("Breakdowns: the why"),
        table(
            "Conversion by $breakdown per stage, last day",
            "Per stage (rows) and value of the breakdown chosen above (columns): contacts who moved on / "
            "contacts who entered, over the last day (recording rule funnel_stage_breakdown:funnel_conversion:"
            "ratio1d). A visit's exit counts under the value its entry did. Empty: nobody entered.",
            f'funnel_stage_breakdown:funnel_conversion:ratio1d{{{F}, breakdown="$breakdown"}}',
            rows="stage",
            columns="value",
            unit="percentunit",
        ),
        table(
            "Drop-offs by last touch per stage, in range",
            "Per stage (rows): the drop-offs over the dashboard's time range by the type of the contact's "
            "last touchpoint before the drop (for a loss, the one before the lost touchpoint). Types no "
            "canonical vocabulary names count as other.",
            f"sum by (stage, last_touch_type) (increase(funnel_dropoffs_by_last_touch_total{{{F}}}[$__range])) > 0",
            rows="stage",
            columns="last_touch_type",
            unit="short",
        ),
        timeseries(
            "Entries needed at the top per entry at $stage (30 days)",
            "Contacts entering the funnel per contact entering the chosen stage, over 30 days: how many "
            "suspects a customer takes, at current rates; in total and by value of the chosen breakdown "
            "(recording rules funnel_stage:… and funnel_stage_breakdown:funnel_top_entries_per_stage_entry:ratio30d).",
            [
                target(f'funnel_stage:funnel_top_entries_per_stage_entry:ratio30d{{{F}, stage="$stage"}}', "all", "A"),
                target(
                    "funnel_stage_breakdown:funnel_top_entries_per_stage_entry:ratio30d"
                    f'{{{F}, stage="$stage", breakdown="$breakdown"}}',
                    "{{value}}",
                    "B",
                ),
            ],
            "short",
        ),
        row("Time"),
        timeseries(
            "Time in stage before moving on (median, p90)",
            "Event time spent in a stage by contacts who moved on from it, over the last hour.",
            [
                target(quantile.format(q=0.5, metric="funnel_time_in_stage_seconds", f=F), "{{stage}} median", "A"),
                target(quantile.format(q=0.9, metric="funnel_time_in_stage_seconds", f=F), "{{stage}} p90", "B"),
            ],
            "s",
        ),
        timeseries(
            "Time from funnel entry to stage (median)",
            "Event time from entering the funnel to entering each stage, over the last hour.",
            [target(quantile.format(q=0.5, metric="funnel_time_to_convert_seconds", f=F), "{{stage}}")],
            "s",
        ),
        row("Operations"),
        timeseries(
            "Throughput",
            "Touchpoints processed, transitions and drop-offs emitted, per second, all workers and funnels.",
            [
                target("sum(rate(funnel_touchpoints_total[$__rate_interval]))", "touchpoints", "A"),
                target("sum(rate(funnel_transitions_total[$__rate_interval]))", "transitions", "B"),
                target("sum(rate(funnel_dropoffs_total[$__rate_interval]))", "drop-offs", "C"),
                target("sum(rate(funnel_duplicate_touchpoints_total[$__rate_interval]))", "duplicates", "D"),
            ],
            "ops",
        ),
        timeseries(
            "Consumer lag (records)",
            "End offset minus committed offset per topic, from Faust's sensor "
            "(recording rule topic:funnel_consumer_lag:records).",
            [target("topic:funnel_consumer_lag:records", "{{topic}}")],
            "short",
        ),
        timeseries(
            "Event-time lag and stall lateness",
            "Wall clock minus the latest event time (largest over a worker's partitions), and the p99 "
            "of how far the clock had passed a stall deadline when it fired.",
            [
                target("max(funnel_event_time_lag_seconds)", "event-time lag", "A"),
                target(
                    "histogram_quantile(0.99, sum by (le) (rate(funnel_deadline_lateness_seconds_bucket[5m])))",
                    "stall lateness p99",
                    "B",
                ),
            ],
            "s",
        ),
        timeseries(
            "Dead letters by reason",
            "Input records refused per second, by reason; they are on the dead-letter topic.",
            [target("sum by (reason) (rate(funnel_dead_letters_total[$__rate_interval]))", "{{reason}}")],
            "ops",
        ),
        timeseries(
            "Workers up",
            "Workers Prometheus scrapes successfully (job funnel-processor).",
            [target('sum(up{job="funnel-processor"})', "up")],
            "short",
        ),
    ]


def layout(items: list[Panel]) -> list[Panel]:
    """Rows full width; panels two to a row, 12 columns by 8 high each."""
    y, column, placed = 0, 0, []
    for number, item in enumerate(items, start=1):
        if item["type"] == "row":
            y += 0 if column == 0 else 8
            item = {**item, "gridPos": {"h": 1, "w": 24, "x": 0, "y": y}}
            y, column = y + 1, 0
        else:
            item = {**item, "gridPos": {"h": 8, "w": 12, "x": column * 12, "y": y}}
            column = (column + 1) % 2
            y += 8 if column == 0 else 0
        placed.append({"id": number, **item})
    return placed


def variable(name: str, label: str, definition: str) -> dict[str, Any]:
    """A query variable: one value at a time, from the label values of a series."""
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"qryType": 1, "query": definition, "refId": "A"},
        "definition": definition,
        "refresh": 2,
        "sort": 0,
        "multi": False,
        "includeAll": False,
        "current": {},
    }


def dashboard() -> dict[str, Any]:
    return {
        "__inputs": [
            {
                "name": "DS_PROMETHEUS",
                "label": "Prometheus",
                "description": "The Prometheus that scrapes the funnel workers and evaluates deploy/prometheus/rules",
                "type": "datasource",
                "pluginId": "prometheus",
                "pluginName": "Prometheus",
            }
        ],
        "__requires": [
            {"type": "grafana", "id": "grafana", "name": "Grafana", "version": "11.0.0"},
            {"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"},
        ],
        "uid": "funnel-processor",
        "title": "Funnel processor",
        "description": "Live funnels: entries, conversion, drop-offs and time per stage; the workers' health.",
        "tags": ["funnel-processor"],
        "editable": True,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "annotations": {"list": []},
        "links": [],
        "templating": {
            "list": [
                {
                    "name": "DS_PROMETHEUS",
                    "label": "Prometheus",
                    "type": "datasource",
                    "query": "prometheus",
                    "hide": 0,
                    "current": {},
                },
                {
                    "name": "funnel",
                    "label": "Funnel",
                    "type": "query",
                    "datasource": DS,
                    "query": {"qryType": 1, "query": "label_values(funnel_stage_entries_total, funnel)", "refId": "A"},
                    "definition": "label_values(funnel_stage_entries_total, funnel)",
                    "refresh": 2,
                    "sort": 1,
                    "multi": False,
                    "includeAll": False,
                    "current": {},
                },
                variable("stage", "Stage", 'label_values(funnel_stage_entries_total{funnel="$funnel"}, stage)'),
                variable(
                    "breakdown",
                    "Breakdown",
                    'label_values(funnel_breakdown_stage_entries_total{funnel="$funnel"}, breakdown)',
                ),
            ]
        },
        "panels": layout(panels()),
    }


def render() -> str:
    return json.dumps(dashboard(), indent=2) + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if argv[1:] == ["--check"]:
        if TARGET.exists() and TARGET.read_text() == text:
            return 0
        print(f"{TARGET.relative_to(ROOT)} is out of date: run python scripts/dashboard.py", file=sys.stderr)
        return 1
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(text)
    print(f"wrote {TARGET.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
