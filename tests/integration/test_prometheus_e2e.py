"""End to end with a real Prometheus: simulated traffic through a worker on the broker,
scraped every second, the project's rules evaluated every second.

Shows that every PromQL expression of the rules (deploy/prometheus/rules/) and of the
Grafana dashboard (deploy/grafana/dashboards/) returns data from a live worker, and
that the conversion rate Prometheus records for each stage is the one
`funnel-processor report` computes from the output topics for the same traffic, and
that the consumer lag the rules record falls to 0 once the worker has committed its input.

Tolerance of the conversion rates: 0.01 (one percentage point). Both counters of a
ratio come from one target and one scrape, and the series exist at 0 before the first
touchpoint, so `increase()` extrapolates numerator and denominator alike and the ratio
should match to rounding; the tolerance leaves room for float sums, not for counting
errors. The counts themselves (entries, drop-offs) must match exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from monitoring import ALERTS, RECORDED, RULE_FILES, dashboard_queries
from promql import selectors, substitute
from promserver import PrometheusServer, start_prometheus
from test_worker_matches_replay import simulate
from tools import require

from processor import kafkaio
from processor.definitions import PRESETS
from processor.settings import Settings

TOUCHPOINTS = 3000
BAD_RECORDS = [b"not json at all", b'{"event_id": "e-x", "contact_id": "bad-1"}', b"[1, 2, 3]"]
CONVERSION_TOLERANCE = 0.01
SCRAPED_TIMEOUT_S = 60.0  # Prometheus scrapes the worker and records its first samples
PROCESSED_TIMEOUT_S = 240.0  # the whole input through the worker, counted by Prometheus


def report(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "processor", "report", "--from-topics", "--format", "json"],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    return {funnel["funnel"]: funnel for funnel in json.loads(done.stdout)["funnels"]}


def by_labels(result: list[dict[str, Any]], *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(series["metric"].get(label, "") for label in labels): series["value"] for series in result}


@pytest.fixture
def prometheus(tmp_path: Path) -> Any:
    started: list[PrometheusServer] = []

    def start(targets: list[str]) -> PrometheusServer:
        started.append(start_prometheus(require("prometheus"), tmp_path / "prometheus", targets, RULE_FILES))
        return started[-1]

    yield start
    for server in started:
        server.stop()


def test_every_rule_and_panel_has_data_and_conversion_matches_the_report(
    broker: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    prometheus: Callable[[list[str]], PrometheusServer],
    tansu_defect: Callable[..., bool],
    tmp_path: Path,
) -> None:
    names = topics(4)
    port = free_port()
    env = broker.env(names, idle_after="1d", store="memory", web_port=port)
    settings = Settings.from_env(env)
    proc = worker(env)
    proc.wait_ready()
    server = prometheus([f"127.0.0.1:{port}"])
    # Counters scraped at 0 before the first touchpoint: increase() then counts from 0.
    server.wait_for('up{job="funnel-processor"} == 1', SCRAPED_TIMEOUT_S)
    server.wait_for("sum(funnel_touchpoints_total) == 0", SCRAPED_TIMEOUT_S)
    started = time.time()

    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=11)
    kafkaio.produce_lines(settings, names.touchpoints, lines)
    kafkaio.produce_records(settings, names.touchpoints, [(b"bad", raw) for raw in BAD_RECORDS])
    server.wait_for(f"sum(funnel_touchpoints_total) == {len(lines)}", PROCESSED_TIMEOUT_S)
    server.wait_for(f"sum(funnel_dead_letters_total) == {len(BAD_RECORDS)}", PROCESSED_TIMEOUT_S)

    # Consumer lag: the end offsets Faust's sensor exports are the topic's (every record
    # produced), and once the group has committed them all the recorded lag is 0.
    produced = len(lines) + len(BAD_RECORDS)
    touchpoints = f'topic="{names.touchpoints}"'
    if not tansu_defect("short-end-offsets", "ListOffsets(latest) is short by a batch", adapt=True):
        ends = f"sum(max by (partition) (funnel_faust_topic_partition_end_offset{{{touchpoints}}}))"
        server.wait_for(f"{ends} == {produced}", PROCESSED_TIMEOUT_S)
    server.wait_for(f"topic:funnel_consumer_lag:records{{{touchpoints}}} == 0", PROCESSED_TIMEOUT_S)

    figures = report(env)
    transitions = sum(stage["entered"] for funnel in figures.values() for stage in funnel["stages"])
    assert set(figures) == set(PRESETS) and transitions > 0
    server.wait_for(f"sum(funnel_transitions_total) == {transitions}", PROCESSED_TIMEOUT_S)
    time.sleep(3)  # a scrape and a rule evaluation after the last count

    # The counts Prometheus holds are the report's, exactly.
    entries = by_labels(server.query("sum by (funnel, stage) (funnel_stage_entries_total)"), "funnel", "stage")
    drops = by_labels(
        server.query("sum by (funnel, stage, reason) (funnel_dropoffs_total)"), "funnel", "stage", "reason"
    )
    for funnel, table in figures.items():
        for stage in table["stages"]:
            key = (funnel, stage["stage"])
            assert entries[key] == stage["entered"], key
            assert drops[(*key, "stalled")] == stage["stalled"] and drops[(*key, "lost")] == stage["lost"], key

    # The recorded conversion rate of every stage is the report's, within the tolerance.
    recorded = by_labels(server.query("funnel_stage:funnel_conversion:ratio1h"), "funnel", "stage")
    differences = []
    for funnel, table in figures.items():
        for stage in table["stages"]:
            key, expected = (funnel, stage["stage"]), stage["converted_rate"]
            if expected is None:  # nobody entered, or the last stage: no rate either way
                assert key not in recorded, key
                continue
            assert abs(recorded[key] - expected) <= CONVERSION_TOLERANCE, (key, recorded[key], expected)
            differences.append(abs(recorded[key] - expected))
    print(f"conversion rates compared: {len(differences)}; largest difference {max(differences):.2e}")
    assert len(differences) >= 10

    end = time.time()
    # Every recording rule's expression, and the series it records, return data.
    empty = [name for name, rule in RECORDED.items() if not server.returns_data(rule["expr"], started, end)]
    empty += [f"recorded {name}" for name in RECORDED if not server.returns_data(name, started, end)]
    # Every alert's expression evaluates, and every series it selects returns data.
    for name, alert in ALERTS.items():
        server.query(alert["expr"])  # raises on an error
        empty += [f"{name}: {s}" for s in sorted(selectors(alert["expr"])) if not server.returns_data(s, started, end)]
    # Every query of the dashboard, for every funnel, returns data.
    for funnel in PRESETS:
        for where, expr in dashboard_queries():
            if not server.returns_data(substitute(expr, {"funnel": funnel}), started, end):
                empty.append(f"dashboard {where} (funnel={funnel})")
    assert empty == []
    assert proc.stop() == 0
