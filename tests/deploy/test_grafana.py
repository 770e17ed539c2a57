"""The Grafana dashboard of deploy/grafana/, checked offline (no Grafana package exists
here): generated from scripts/dashboard.py and current, importable with a DS_PROMETHEUS
input, every query valid PromQL (promtool loads each as a rule) reading only series
the worker exports or the rules record, and the panels ops need all present. That every
query returns data from a live worker is tests/e2e/test_prometheus_e2e.py's job.
"""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from monitoring import DASHBOARD, DASHBOARD_FILE, RECORDED, ROOT, dashboard_queries, exported_names
from promql import metric_names, substitute
from tools import require

DS = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
PANELS = [panel for panel in DASHBOARD["panels"] if panel["type"] != "row"]
EXAMPLE_VARIABLES = {"funnel": "b2b-sales", "stage": "customer", "breakdown": "first_channel"}


def test_the_dashboard_file_is_what_scripts_dashboard_py_writes() -> None:
    spec = importlib.util.spec_from_file_location("dashboard", ROOT / "scripts/dashboard.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert DASHBOARD_FILE.read_text() == module.render(), "out of date: run python scripts/dashboard.py"


def test_it_asks_for_a_prometheus_datasource_and_every_query_uses_it() -> None:
    [source] = DASHBOARD["__inputs"]
    assert (source["name"], source["type"], source["pluginId"]) == ("DS_PROMETHEUS", "datasource", "prometheus")
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource"  # the same name when provisioned
    assert variables["funnel"]["datasource"] == DS
    for panel in PANELS:
        assert panel["datasource"] == DS, panel["title"]
        assert panel["targets"] and all(target["datasource"] == DS for target in panel["targets"]), panel["title"]


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    panels: list[dict[str, Any]] = DASHBOARD["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    taken: set[tuple[int, int]] = set()
    for panel in panels:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_every_query_reads_only_exported_or_recorded_series() -> None:
    known = exported_names() | set(RECORDED) | {"up"}
    unknown = {where: sorted(metric_names(expr) - known) for where, expr in dashboard_queries()}
    assert {where: names for where, names in unknown.items() if names} == {}


def test_every_query_is_valid_promql(tmp_path: Path) -> None:
    queries = dashboard_queries()
    rules = [
        {"record": f"dashboard:query:q{number}", "expr": substitute(expr, EXAMPLE_VARIABLES)}
        for number, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = subprocess.run([require("promtool"), "check", "rules", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(
    ("what", "series"),
    [
        ("the funnel: entries per stage", "funnel_stage_entries_total"),
        ("conversion rates over time", "funnel_stage:funnel_conversion:ratio1h"),
        ("drop-offs by stage and reason", "funnel_stage_reason:funnel_dropoffs:increase15m"),
        ("time in stage", "funnel_time_in_stage_seconds_bucket"),
        ("throughput", "funnel_touchpoints_total"),
        ("consumer lag", "topic:funnel_consumer_lag:records"),
        ("event-time lag", "funnel_event_time_lag_seconds"),
        ("dead letters", "funnel_dead_letters_total"),
        ("conversion by channel per stage", "funnel_stage_breakdown:funnel_conversion:ratio1d"),
        ("drop-offs by last touch per stage", "funnel_dropoffs_by_last_touch_total"),
        ("entries needed at the top per customer", "funnel_stage:funnel_top_entries_per_stage_entry:ratio30d"),
        ("the same per channel", "funnel_stage_breakdown:funnel_top_entries_per_stage_entry:ratio30d"),
    ],
)
def test_the_panels_ops_need_are_there(what: str, series: str) -> None:
    assert any(series in metric_names(expr) for _, expr in dashboard_queries()), what


def test_the_funnel_bars_come_in_stage_order() -> None:
    bars = next(panel for panel in PANELS if panel["title"] == "Contacts entering each stage")
    assert bars["type"] == "barchart"
    assert any("funnel_stage_position" in metric_names(target["expr"]) for target in bars["targets"])
    assert [step["id"] for step in bars["transformations"]][:2] == ["joinByField", "sortBy"]


def test_the_variables_choose_a_stage_and_a_breakdown_of_the_funnel() -> None:
    variables = {variable["name"]: variable for variable in DASHBOARD["templating"]["list"]}
    for name, metric in (
        ("stage", "funnel_stage_entries_total"),
        ("breakdown", "funnel_breakdown_stage_entries_total"),
    ):
        assert variables[name]["definition"] == f'label_values({metric}{{funnel="$funnel"}}, {name})'
        assert variables[name]["multi"] is False, "one value at a time: the panels select on it with ="
    assert set(EXAMPLE_VARIABLES) == {name for name, v in variables.items() if v["type"] == "query"}
