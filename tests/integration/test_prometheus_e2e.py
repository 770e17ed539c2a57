"""End to end with a real Prometheus: simulated traffic through a worker on the broker,
scraped every second, the project's rules evaluated every second.

Shows that every PromQL expression of the rules (deploy/prometheus/rules/) and of the
Grafana dashboard (deploy/grafana/dashboards/) returns data from a live worker, and
that the conversion rate Prometheus records for each stage is the one
`funnel-processor report` computes from the output topics for the same traffic, and
that the consumer lag the rules record falls to 0 once the worker has committed its input.

The same holds per breakdown value (issue 14): every breakdown count Prometheus holds is
`report --by`'s for the same traffic, once the report's unbounded values are put in the
worker's buckets, and the recorded conversion per value matches the report's; and the
breakdown series stay at the stated count although 1,000 extra contacts bring 1,000
channels and 1,000 campaigns nobody listed.

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

import breakdowncounts
import orjson
import pytest
from factories import line, touchpoint
from monitoring import ALERTS, RECORDED, RULE_FILES, dashboard_queries
from promql import selectors, substitute
from promserver import PrometheusServer, start_prometheus
from tools import require

from processor.cli import main
from processor.config.definitions import PRESETS, load_funnels
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.tools.breakdownstats import BY
from processor.worker.breakdownmetrics import series_count

TOUCHPOINTS = 3000
BAD_RECORDS = [b"not json at all", b'{"event_id": "e-x", "contact_id": "bad-1"}', b"[1, 2, 3]"]
CONVERSION_TOLERANCE = 0.01
SCRAPED_TIMEOUT_S = 60.0  # Prometheus scrapes the worker and records its first samples
PROCESSED_TIMEOUT_S = 240.0  # the whole input through the worker, counted by Prometheus
# Breakdowns: all three, with some of the simulator's campaigns listed (the others count as other).
CAMPAIGNS = ("brand-search", "generic-search", "spring-launch", "newsletter-weekly", "partner-program")
BREAKDOWNS = f"first_channel;first_campaign={','.join(CAMPAIGNS)};trigger_channel"
CHANNEL_FACTORS = ("referral=1.8", "paid_search=0.5")  # so that channels convert differently
WIDE_CONTACTS = 1000  # one touchpoint each, with a channel and a campaign of its own
BREAKDOWN_FAMILIES = sorted(breakdowncounts.FAMILIES)


def simulate(path: Path, touchpoints: int, seed: int, days: int = 30) -> list[bytes]:
    """The presets' simulated traffic, with conversion differing by first channel, then the wide contacts."""
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    factors = [arg for factor in CHANNEL_FACTORS for arg in ("--channel-conversion", factor)]
    args = ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(seed), "--days", str(days)]
    assert main([*args, *factors, "--output", str(path)]) == 0
    lines = path.read_bytes().splitlines()
    last = orjson.loads(lines[-1])["occurred_at"]
    wide = [
        touchpoint(
            "ad_click",
            f"wide-{n}",
            at=last,
            event_id=f"wide-{n}",
            channel=f"wide-channel-{n}",
            campaign=f"wide-campaign-{n}",
        )
        for n in range(WIDE_CONTACTS)
    ]
    return lines + [line(doc) for doc in wide]


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


def report_by(env: dict[str, str], by: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "processor", "report", "--from-topics", "--format", "json", "--by", by],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def check_breakdowns(server: PrometheusServer, env: dict[str, str], settings: Settings) -> None:
    """Prometheus's breakdown counts are report --by's, exactly; its conversion per value, within
    the tolerance; and its breakdown series are the stated count, no more."""
    funnels = load_funnels(PRESETS, settings.breakdowns)
    last_stages = {(f.name, f.stages[-1]) for f in funnels}
    listed = {b.by: b.values for b in settings.breakdowns} | {"last_touch_type": ()}
    assert set(listed) == set(BY)
    found = [
        (family, series["metric"], series["value"])
        for family in BREAKDOWN_FAMILIES
        for series in server.query(f"sum without (instance, job) ({family})")
    ]
    compared = 0
    for by in BY:
        expected = breakdowncounts.from_report(report_by(env, by), by, listed[by])
        assert breakdowncounts.from_samples(found, by) == expected, by
        compared += len(expected)
        if by == "last_touch_type":
            continue
        recorded = {
            (series["metric"]["funnel"], series["metric"]["stage"], series["metric"]["value"]): series["value"]
            for series in server.query(f'funnel_stage_breakdown:funnel_conversion:ratio1d{{breakdown="{by}"}}')
        }
        rates = breakdowncounts.conversion(expected, last_stages)
        assert recorded.keys() == rates.keys(), by
        assert all(abs(recorded[key] - rate) <= CONVERSION_TOLERANCE for key, rate in rates.items()), by
        compared += len(rates)
    print(f"breakdown counts and rates compared with report --by: {compared}")
    series = server.query('count({__name__=~"funnel_breakdown_.+_total|funnel_dropoffs_by_last_touch_total"})')
    assert series[0]["value"] == sum(n for f in funnels for n in series_count(f).values())


def dashboard_stage(figures: dict[str, Any], funnel: str) -> str:
    """The last stage anybody entered: the dashboard's "entries needed at the top per entry" there has data."""
    entered: list[str] = [stage["stage"] for stage in figures[funnel]["stages"] if stage["entered"]]
    return entered[-1]


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
    env["FUNNEL_BREAKDOWNS"] = BREAKDOWNS
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
    check_breakdowns(server, env, settings)

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
        for breakdown in ("first_channel", "first_campaign", "trigger_channel"):
            variables = {"funnel": funnel, "stage": dashboard_stage(figures, funnel), "breakdown": breakdown}
            for where, expr in dashboard_queries():
                if not server.returns_data(substitute(expr, variables), started, end):
                    empty.append(f"dashboard {where} ({variables})")
    assert empty == []
    assert proc.stop() == 0
