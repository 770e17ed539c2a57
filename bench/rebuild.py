"""Micro-benchmark: a restarted worker's timer and stage-count rebuild over N stored contacts.

    python -m bench.rebuild [--contacts 1000000] [--touchpoints 30000]

No broker and no Faust: the journeys table is a dict holding the entries case 6c
writes to the changelog (the core's states after the simulated input, replicated
under new contact ids), and the rebuild runs as `worker/task.Tasks.for_partition` runs it
for each of 4 partitions. Two ways are timed over the same table:

- headers: `stored_by_partition` over the table's items, reading each entry's header
  (the worker's way; it also finds each key's partition, murmur2 in Python);
- states: the keys grouped by partition (murmur2), then every state decoded and its
  `next_deadline` and stage keys worked out (about what the worker did before entries
  had headers, which also decoded most states twice as its cache overflowed; it still
  does this for an entry written under other funnel definitions).

Figures are wall-clock seconds on whatever else the machine is doing.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench.lab import simulate
from bench.state import sample_states
from processor.config.definitions import PRESETS, load_funnels
from processor.funnel.engine import Engine
from processor.funnel.journey import next_deadline
from processor.worker.outbox import default_partition
from processor.worker.state.entry import Layout, decode_entry
from processor.worker.state.stagecounts import Key, StageCounts
from processor.worker.state.store import JourneyStore, stored_by_partition

PARTITIONS = 4


def by_headers(table: dict[bytes, bytes], layout: Layout) -> StageCounts:
    counts = StageCounts(layout.funnels)
    for partition, stored in stored_by_partition(table.items(), layout, partitioner).items():
        engine = Engine(layout.funnels, JourneyStore(table, layout))
        engine.add_timers(stored.timers)
        counts.rebuild(partition, stored.stages)
    return counts


def partitioner(key: bytes) -> int:
    return default_partition(key, PARTITIONS)


def by_states(table: dict[bytes, bytes], layout: Layout) -> StageCounts:
    counts = StageCounts(layout.funnels)
    grouped: dict[int, list[str]] = {}
    for key in table:
        grouped.setdefault(partitioner(key), []).append(key.decode())
    for partition, mine in grouped.items():
        engine = Engine(layout.funnels, JourneyStore(table, layout))
        timers: list[tuple[int, str]] = []
        stages: Counter[Key] = Counter()
        for contact in mine:
            state = decode_entry(table[contact.encode()])[1]
            due = next_deadline(state, layout.funnels)
            if due is not None:
                timers.append((due, contact))
            stages.update(counts.keys(state))
        engine.add_timers(timers)
        counts.rebuild(partition, stages)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rebuild", description=__doc__.split("\n\n")[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--touchpoints", type=int, default=30_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        lines = simulate(Path(work) / "touchpoints.jsonl", args.touchpoints)
    sample, _ = sample_states(lines)
    layout = Layout(load_funnels(PRESETS))
    table = {f"r-{i:07d}".encode(): sample[i % len(sample)] for i in range(args.contacts)}
    size = sum(map(len, table.values())) / len(table)
    print(f"{len(table):,} contacts ({len(sample):,} distinct states), entries {size:.0f} B on average")

    started = time.perf_counter()
    fast = by_headers(table, layout)
    print(f"rebuild from entry headers:   {time.perf_counter() - started:6.2f} s")
    started = time.perf_counter()
    slow = by_states(table, layout)
    print(f"rebuild from decoded states:  {time.perf_counter() - started:6.2f} s")
    if fast.table() != slow.table():
        raise SystemExit("the two rebuilds disagree on the stage counts")


if __name__ == "__main__":
    main()
