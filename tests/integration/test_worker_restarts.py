"""Stopping, killing and replacing workers mid-stream loses nothing.

Each scenario interrupts a worker while it is working through 20,000 touchpoints,
lets a worker carry on from the committed offsets and the stored tables, and then
requires exactly the replay's outputs: every id present with the replay's content,
repeats only as exact copies (at-least-once), counted and printed.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from expected import PARTITIONS, assert_same_outputs, collect, oracle, simulate
from webclient import get_json
from workers import wait_for_outputs, worker_env

from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.worker.agent import default_partition

TOUCHPOINTS = 20_000
OUTPUT_TIMEOUT_S = 300.0


def got_so_far(settings: Settings) -> list[dict[str, Any]]:
    records = kafkaio.read_topic(settings, settings.topic_transitions, timeout_s=0.5)
    return [orjson.loads(cast(bytes, r.value)) for r in records]


@pytest.mark.also_on_tansu
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGKILL], ids=["graceful", "killed"])
def test_a_worker_stopped_mid_stream_and_restarted_loses_nothing(
    broker: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
    stop_signal: signal.Signals,
) -> None:
    names = topics(PARTITIONS)
    env = worker_env(broker, names, free_port)
    settings = Settings.from_env(env)
    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=11)
    expected = oracle(lines, PARTITIONS)
    kafkaio.produce_lines(settings, names.touchpoints, lines)

    first = worker(env, "first")
    first.wait_ready()
    seen = wait_for_outputs(settings, len(expected) // 6)
    first.stop(stop_signal)
    second = worker(env, "second")  # same data dir: the RocksDB tables survive
    second.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    repeats = assert_same_outputs(got, expected)
    print(f"{stop_signal.name} after {seen} transitions; {len(expected)} outputs, {repeats} repeats")
    assert second.stop() == 0


def test_two_workers_one_killed_the_survivor_finishes_the_stream(
    broker: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    names = topics(PARTITIONS)
    env_a = worker_env(broker, names, free_port, data_dir=broker.workdir / f"{names.app_id}-a")
    env_b = worker_env(broker, names, free_port, data_dir=broker.workdir / f"{names.app_id}-b")
    settings = Settings.from_env(env_a)
    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=13)
    expected = oracle(lines, PARTITIONS)

    a, b = worker(env_a, "a"), worker(env_b, "b")
    a.wait_ready()
    b.wait_ready()
    kafkaio.produce_lines(settings, names.touchpoints, lines)
    wait_for_outputs(settings, len(expected) // 6)
    # A contact owned by worker a, asked of worker b: Faust forwards the query to a.
    port_a, port_b = env_a["FUNNEL_WEB_PORT"], env_b["FUNNEL_WEB_PORT"]
    owned_by_a = set(get_json(f"http://127.0.0.1:{port_a}/funnels/")[1]["partitions"])
    owned_by_b = set(get_json(f"http://127.0.0.1:{port_b}/funnels/")[1]["partitions"])
    assert owned_by_a and owned_by_b and not owned_by_a & owned_by_b
    contact = next(
        o["contact_id"]
        for o in got_so_far(settings)
        if default_partition(o["contact_id"].encode(), PARTITIONS) in owned_by_a
    )
    status, journey = get_json(f"http://127.0.0.1:{port_b}/journeys/{contact}/")
    assert status == 200 and journey["contact_id"] == contact
    a.stop(signal.SIGKILL)
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    repeats = assert_same_outputs(got, expected)
    print(f"survivor finished: {len(expected)} outputs, {repeats} repeats")
    assert "Traceback" not in b.log_text()
    assert b.stop() == 0
