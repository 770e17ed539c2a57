"""What a worker must give: the file replay of the same touchpoints, and the comparison.

The replay is the oracle. A worker's clock is per input partition, so the oracles replay
each partition's touchpoints on their own (`factories.replay_partitions`).
`simulate` and `simulate_in_format` write the input; `collect` reads the outputs back;
`assert_same_outputs` holds them to the oracle, repeats allowed only as exact copies.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import orjson
from factories import replay_partitions

from processor.cli import main
from processor.config.definitions import PRESETS
from processor.config.settings import Settings
from processor.kafka import clients as kafkaio
from processor.kafka.clients import ConsumedRecord
from processor.worker.agent import default_partition

PARTITIONS = 4
MAPPING = {
    "events": {"Order Completed": "purchase", "Product Added": "cart_add", "Signed Up": "newsletter_signup"},
    "channel_rules": [{"medium": "cpc", "source": "linkedin", "channel": "paid_social"}],
}


def simulate(path: Path, touchpoints: int, seed: int, days: int = 30) -> list[bytes]:
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    args = ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(seed), "--days", str(days)]
    assert main([*args, "--output", str(path)]) == 0
    return path.read_bytes().splitlines()


def simulate_in_format(tmp_path: Path, fmt: str, touchpoints: int, seed: int) -> tuple[list[bytes], list[bytes], Path]:
    """(native touchpoint lines, the same touchpoints as `fmt` events, the mapping file)."""
    mapping = tmp_path / "mapping.json"
    mapping.write_bytes(orjson.dumps(MAPPING))
    funnels = [arg for name in PRESETS for arg in ("--funnel", name)]
    common = ["simulate", *funnels, "--touchpoints", str(touchpoints), "--seed", str(seed), "--days", "30"]
    native, shaped = tmp_path / "touchpoints.jsonl", tmp_path / f"{fmt}.jsonl"
    assert main([*common, "--output", str(native)]) == 0
    assert main([*common, "--format", fmt, "--mapping", str(mapping), "--output", str(shaped)]) == 0
    return native.read_bytes().splitlines(), shaped.read_bytes().splitlines(), mapping


def oracle(lines: Sequence[bytes], partitions: int) -> dict[str, dict[str, Any]]:
    """Outputs by id: each partition's touchpoints replayed with its own clock (factories.oracle)."""
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for line in lines:
        contact = orjson.loads(line)["contact_id"].encode()
        by_partition[default_partition(contact, partitions)].append(line)
    return replay_partitions(PRESETS, by_partition.values(), check=False)


def oracle_of_stored(stored: list[ConsumedRecord], bad: Iterable[tuple[int, int]]) -> dict[str, dict[str, Any]]:
    """Outputs by id: each partition's good records, in stored order, replayed with their own clock."""
    skip = set(bad)
    by_partition: dict[int, list[bytes]] = defaultdict(list)
    for record in stored:
        if (record.partition, record.offset) not in skip:
            assert record.value is not None
            by_partition[record.partition].append(record.value)
    return replay_partitions(PRESETS, by_partition.values(), check=False)


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
