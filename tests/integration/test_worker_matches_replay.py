"""The worker on a real broker emits exactly what the file replay emits for the same input.

The replay is the oracle. A worker's clock is per input partition, so the oracle
replays each partition's touchpoints on their own (contacts are placed by Kafka's
default partitioner, which the worker enforces). At-least-once delivery may repeat
an output; a repeat must be an exact copy, and repeats are counted and reported.
"""

from __future__ import annotations

import io
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from processor.cli import main
from processor.config.definitions import PRESETS, load_funnels
from processor.config.schemas import validator
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.tools.replay import run_replay
from processor.worker.agent import default_partition

TOUCHPOINTS = 20_000
PARTITIONS = 4
OUTPUT_TIMEOUT_S = 300.0  # the whole stream through the worker


def simulate(path: Path, touchpoints: int, seed: int, days: int = 30) -> list[bytes]:
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    args = ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(seed), "--days", str(days)]
    assert main([*args, "--output", str(path)]) == 0
    return path.read_bytes().splitlines()


def oracle(lines: Sequence[bytes], partitions: int) -> dict[str, dict[str, Any]]:
    """Outputs by id: each partition's touchpoints replayed with its own clock."""
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for line in lines:
        contact = orjson.loads(line)["contact_id"].encode()
        by_partition[default_partition(contact, partitions)].append(line)
    outputs: dict[str, dict[str, Any]] = {}
    for part in by_partition.values():
        out, errors = io.BytesIO(), io.BytesIO()
        run_replay(part, "oracle", load_funnels(PRESETS), out, errors)
        assert errors.getvalue() == b""
        for record in out.getvalue().splitlines():
            output = orjson.loads(record)
            outputs[output["id"]] = output
    return outputs


def collect(settings: Settings, expect: int, timeout_s: float) -> list[dict[str, Any]]:
    """Every output on the two output topics, read again until `expect` distinct ids arrived."""
    deadline = time.monotonic() + timeout_s
    while True:
        records = [
            orjson.loads(cast(bytes, r.value))
            for topic in (settings.topic_transitions, settings.topic_dropoffs)
            for r in kafkaio.read_topic(settings, topic, timeout_s=1.0)
        ]
        if len({r["id"] for r in records}) >= expect or time.monotonic() > deadline:
            return records
        time.sleep(2.0)


def assert_same_outputs(got: list[dict[str, Any]], expected: dict[str, dict[str, Any]]) -> int:
    """Equal by id and content; returns how many extra exact copies at-least-once delivered."""
    by_id: dict[str, dict[str, Any]] = {}
    for output in got:
        first = by_id.setdefault(output["id"], output)
        assert first == output, f"two different outputs share the id {output['id']}"
    missing, extra = expected.keys() - by_id.keys(), by_id.keys() - expected.keys()
    assert not missing, f"{len(missing)} outputs missing, e.g. {[expected[i] for i in sorted(missing)[:2]]}"
    assert not extra, f"{len(extra)} outputs not in the replay, e.g. {[by_id[i] for i in sorted(extra)[:2]]}"
    differing = [i for i in expected if by_id[i] != expected[i]]
    assert not differing, f"{len(differing)} differ, e.g. {by_id[differing[0]]} != {expected[differing[0]]}"
    return len(got) - len(by_id)


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
