"""What the monitoring files hold, read once for the deploy and end-to-end tests."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from processor.config.definitions import load_funnels
from processor.config.settings import Settings
from processor.worker.metrics import FunnelMetrics
from processor.worker.state.stagecounts import StageCounts

ROOT = Path(__file__).resolve().parents[1]
RULE_FILES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
DASHBOARD_FILE = ROOT / "deploy/grafana/dashboards/funnel-processor.json"
GROUPS: list[dict[str, Any]] = [group for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]]
RULES: list[dict[str, Any]] = [rule for group in GROUPS for rule in group["rules"]]
ALERTS = {rule["alert"]: rule for rule in RULES if "alert" in rule}
RECORDED = {rule["record"]: rule for rule in RULES if "record" in rule}
DASHBOARD: dict[str, Any] = json.loads(DASHBOARD_FILE.read_text())


def rule_name(rule: dict[str, Any]) -> str:
    return str(rule.get("alert") or rule["record"])


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title / refId, expression) of every query on the dashboard, variables included."""
    queries = [
        (f"{panel['title']} / {target['refId']}", target["expr"])
        for panel in DASHBOARD["panels"]
        for target in panel.get("targets", [])
    ]
    for variable in DASHBOARD["templating"]["list"]:
        if variable["type"] == "query":  # label_values(metric, label): the label's values on that metric
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", variable["definition"])
            assert match, f"variable {variable['name']}: only label_values(metric, label) queries are read"
            metric, label = match.groups()
            queries.append((f"variable {variable['name']}", f"count by ({label}) ({metric})"))
    return queries


def exported_names() -> set[str]:
    """Every family and sample name the worker's /metrics can show (its own and Faust's sensor)."""
    registry = CollectorRegistry()
    funnels = load_funnels(["b2b-sales"], Settings().breakdowns)  # the worker's default breakdowns
    FunnelMetrics(registry, funnels, StageCounts(funnels))
    FaustMetrics.create(registry, "funnel_faust")
    families = list(registry.collect())
    return {family.name for family in families} | {sample.name for family in families for sample in family.samples}
