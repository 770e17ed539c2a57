"""Metrics summed over two workers of one group equal one worker's, for the same input.

The same simulated touchpoints go to two topic sets: one worker reads the first, two
workers in one consumer group share the second (two partitions each, settled before
any touchpoint is sent). Once both have emitted everything the replay says they
should, every funnel_* sample summed over the pair must equal the single worker's:
counters (the breakdown families too), histograms, and the contacts-in-stage gauges
(each worker counts only the partitions it owns). Left out, with their reasons: funnel_event_time_lag_seconds
(wall clock minus event time: a max, not a sum) and funnel_stage_position (the same
on every worker: a max); Faust's own funnel_faust_* series describe each process.
"""

from __future__ import annotations

import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from expected import oracle, simulate
from prometheus_client.parser import text_string_to_metric_families

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

TOUCHPOINTS = 2000
PARTITIONS = 4
NOT_SUMMED = {"funnel_event_time_lag_seconds", "funnel_stage_position"}
SETTLE_TIMEOUT_S = 90.0  # both workers of the pair own their partitions
OUTPUT_TIMEOUT_S = 240.0
Sample = tuple[str, tuple[tuple[str, str], ...]]


def scrape(port: int) -> Counter[Sample]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: Counter[Sample] = Counter()
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("funnel_") or family.name.startswith("funnel_faust"):
            continue
        if family.name in NOT_SUMMED:
            continue
        for sample in family.samples:
            if not sample.name.endswith("_created"):  # creation times differ by process
                # A Counter sums floats as well at run time; typeshed types its counts as int.
                samples[sample.name, tuple(sorted(sample.labels.items()))] += sample.value  # type: ignore[assignment]
    return samples


def summed(ports: list[int]) -> Counter[Sample]:
    total: Counter[Sample] = Counter()
    for port in ports:
        total.update(scrape(port))
    return total


def owned_partitions(port: int) -> list[int]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/funnels/", timeout=5) as response:
        return list(orjson.loads(response.read())["partitions"])


def wait_settled(ports: list[int]) -> list[list[int]]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    owned: list[list[int]] = []
    while time.monotonic() < deadline:
        owned = [owned_partitions(port) for port in ports]
        flat = [p for parts in owned for p in parts]
        if all(owned) and sorted(flat) == list(range(PARTITIONS)):
            return owned
        time.sleep(0.5)
    pytest.fail(f"the pair did not settle on {PARTITIONS} partitions within {SETTLE_TIMEOUT_S} s: {owned}")


def wait_counted(ports: list[int], transitions: int, dropoffs: int) -> Counter[Sample]:
    deadline, total = time.monotonic() + OUTPUT_TIMEOUT_S, Counter[Sample]()
    while time.monotonic() < deadline:
        total = summed(ports)
        moved = sum(v for (name, _), v in total.items() if name == "funnel_transitions_total")
        dropped = sum(v for (name, _), v in total.items() if name == "funnel_dropoffs_total")
        if (moved, dropped) == (transitions, dropoffs):
            return total
        time.sleep(1.0)
    pytest.fail(f"workers on {ports} did not count {transitions} transitions and {dropoffs} drop-offs in time")


def test_two_workers_sum_to_one(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=5)
    expected = Counter(output["kind"] for output in oracle(lines, PARTITIONS).values())
    common = {"idle_after": "1d", "store": "memory"}

    single_topics, pair_topics = topics(PARTITIONS), topics(PARTITIONS)
    single_port, pair_ports = free_port(), [free_port(), free_port()]
    single = worker(broker.env(single_topics, web_port=single_port, **common), name="single")
    pair = [
        worker(broker.env(pair_topics, web_port=port, **common), name=f"pair{i}") for i, port in enumerate(pair_ports)
    ]
    for proc in (single, *pair):
        proc.wait_ready()
    owned = wait_settled(pair_ports)

    for names in (single_topics, pair_topics):
        settings = Settings.from_env(broker.env(names))
        assert kafkaio.produce_lines(settings, names.touchpoints, lines) == TOUCHPOINTS
    one = wait_counted([single_port], expected["transition"], expected["dropoff"])
    both = wait_counted(pair_ports, expected["transition"], expected["dropoff"])
    assert [owned_partitions(port) for port in pair_ports] == owned, "a rebalance during the run"

    each = [scrape(port) for port in pair_ports]
    touchpoints_key: Sample = ("funnel_touchpoints_total", ())
    assert all(counts[touchpoints_key] > 0 for counts in each), "both workers of the pair processed touchpoints"
    assert one[touchpoints_key] == TOUCHPOINTS

    assert one.keys() == both.keys()
    differ = {
        key: (one[key], both[key])
        for key in one
        if one[key] != pytest.approx(both[key], rel=1e-9)  # histogram sums: float additions in another order
    }
    assert differ == {}
    stage_gauges = [key for key in one if key[0] == "funnel_contacts_in_stage" and one[key] > 0]
    assert stage_gauges, "contacts are in stages at the end"
    # The breakdown families (the default breakdowns: first and trigger channel) are among those summed.
    for family in ("entries", "stage_entries", "stage_exits", "dropoffs"):
        name = f"funnel_breakdown_{family}_total"
        assert any(one[key] > 0 for key in one if key[0] == name), name
    assert any(one[key] > 0 for key in one if key[0] == "funnel_dropoffs_by_last_touch_total")
    for proc in (single, *pair):
        assert proc.stop() == 0
