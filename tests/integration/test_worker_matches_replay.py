"""The worker on a real broker emits exactly what the file replay emits for the same input.

The replay is the oracle. A worker's clock is per input partition, so the oracle
replays each partition's touchpoints on their own (contacts are placed by Kafka's
default partitioner, which the worker enforces). At-least-once delivery may repeat
an output; a repeat must be an exact copy, and repeats are counted and reported.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from expected import PARTITIONS, assert_same_outputs, collect, oracle, simulate

from processor.config.schemas import validator
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio

TOUCHPOINTS = 20_000
OUTPUT_TIMEOUT_S = 300.0  # the whole stream through the worker


@pytest.mark.also_on_tansu
def test_worker_outputs_equal_the_replay(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    names = topics(PARTITIONS)
    env = broker.env(names, idle_after="1d", store="rocksdb", web_port=free_port())
    settings = Settings.from_env(env)
    lines = simulate(tmp_path / "touchpoints.jsonl", TOUCHPOINTS, seed=7)
    expected = oracle(lines, PARTITIONS)
    assert kafkaio.produce_lines(settings, names.touchpoints, lines) == TOUCHPOINTS

    started = time.monotonic()
    proc = worker(env)
    proc.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    elapsed = time.monotonic() - started
    repeats = assert_same_outputs(got, expected)
    print(f"{TOUCHPOINTS} touchpoints, {len(expected)} outputs in {elapsed:.1f} s; {repeats} at-least-once repeats")
    for output in got[:500]:
        validator(output["kind"]).validate(output)
    assert kafkaio.read_topic(settings, names.deadletter, timeout_s=1.0) == []
    assert proc.stop() == 0
    assert "Traceback" not in proc.log_text()
