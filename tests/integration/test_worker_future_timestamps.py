"""The bound on the future through the worker (SPEC: Bounds on input, Determinism).

Simulated traffic goes in with a few touchpoints dated ahead of it, every record carrying
the same Kafka timestamp NOW (an hour before the wall clock). The worker takes a record's
timestamp as its arrival time (never later than its wall clock), so its "now" is NOW: it
must dead-letter exactly what `funnel-processor replay --now NOW` dead-letters, with the
same reason and detail, and emit exactly the replay's outputs, which are those of the
traffic without the refused touchpoints. Each partition has its own clock, so each
partition's records are replayed on their own, in the order Kafka stored them.

One touchpoint is dated 30 minutes after NOW: in the past by the wall clock, in the future
by its arrival. Only the record's timestamp refuses it, and a redelivery after a crash,
however late, would refuse it again.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from expected import assert_same_outputs, oracle_of_stored
from factories import line, touchpoint
from kafkaread import letters_of, outputs_of
from workers import assert_never_restarted, start_ready_worker

from processor.cli import main
from processor.config.definitions import PRESETS
from processor.config.schemas import validator
from processor.funnel.timefmt import format_time
from processor.kafka import clients as kafkaio
from processor.kafka.clients import ConsumedRecord

PARTITIONS = 2
TOUCHPOINTS = 1500
US_PER_S = 1_000_000
FUNNEL_ARGS = [arg for name in PRESETS for arg in ("--funnel", name)]


def simulate(path: Path, end_us: int) -> list[bytes]:
    args = ["simulate", *FUNNEL_ARGS, "--touchpoints", str(TOUCHPOINTS), "--seed", "23", "--days", "20"]
    assert main([*args, "--end", format_time(end_us), "--output", str(path)]) == 0
    return path.read_bytes().splitlines()


def ahead(contact: str, name: str, kind: str, at_us: int) -> bytes:
    return line(touchpoint(kind, contact, at=format_time(at_us), event_id=f"ev-{name}"))


def replay_cli(lines: list[bytes], path: Path, now_us: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(outputs, dead letters) of `funnel-processor replay --now` over the lines, as a user runs it."""
    path.write_bytes(b"\n".join(lines) + b"\n")
    done = subprocess.run(
        [sys.executable, "-m", "processor", "replay", *FUNNEL_ARGS, "--input", str(path), "--now", format_time(now_us)],
        capture_output=True,
        timeout=120,
        check=True,
    )
    *letters, summary = done.stderr.splitlines()  # the dead letters, then the summary line
    assert summary.startswith(b"funnel-processor replay: ")
    return [orjson.loads(x) for x in done.stdout.splitlines()], [orjson.loads(x) for x in letters]


def by_partition(stored: list[ConsumedRecord]) -> dict[int, list[ConsumedRecord]]:
    parts: dict[int, list[ConsumedRecord]] = defaultdict(list)
    for record in stored:
        parts[record.partition].append(record)
    return parts


def test_the_worker_refuses_what_replay_now_refuses_and_emits_what_it_emits(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], tmp_path: Path
) -> None:
    now_us = (time.time_ns() // 1000 - 3600 * US_PER_S) // US_PER_S * US_PER_S  # an hour ago, whole seconds
    traffic = simulate(tmp_path / "traffic.jsonl", end_us=now_us - 60 * US_PER_S)
    contacts = [orjson.loads(traffic[i])["contact_id"] for i in (len(traffic) // 4, len(traffic) // 2)]
    future = [  # two contacts of the traffic, mid-journey: refused (the default tolerance is 5 minutes)
        ahead(contacts[0], "half-hour-ahead", "purchase", now_us + 1800 * US_PER_S),
        ahead(contacts[1], "from-2099", "purchase", 4_070_908_800 * US_PER_S),
    ]
    near = ahead("new-contact", "four-minutes-ahead", "page_view", now_us + 240 * US_PER_S)  # accepted
    lines = [*traffic[: len(traffic) // 3], future[0], *traffic[len(traffic) // 3 :]]
    lines.insert(2 * len(lines) // 3, future[1])
    lines.append(near)  # last: it takes the stream's latest time

    names = topics(PARTITIONS)
    settings = broker.settings(names)
    sent = kafkaio.produce_lines(settings, names.touchpoints, lines, timestamp_ms=now_us // 1000)
    assert sent == len(lines)
    stored = kafkaio.read_topic(settings, names.touchpoints, timeout_s=2.0, expect=len(lines))
    assert len(stored) == len(lines)

    # The reference: replay --now NOW over each partition's records, as stored.
    expected: dict[str, dict[str, Any]] = {}
    expected_letters: dict[tuple[int, int], dict[str, Any]] = {}
    for partition, records in by_partition(stored).items():
        values = [r.value or b"" for r in records]
        outputs, letters = replay_cli(values, tmp_path / f"partition-{partition}.jsonl", now_us)
        expected.update((o["id"], o) for o in outputs)
        for letter in letters:
            record = records[letter["source"]["line"] - 1]
            expected_letters[partition, record.offset] = letter
    refused = {(r.partition, r.offset) for r in stored if r.value in future}
    assert set(expected_letters) == refused  # the replay refuses the two, keeps the one within 5 minutes
    assert {letter["reason"] for letter in expected_letters.values()} == {"future_timestamp"}
    # ... and what it emits is the replay of the traffic without them (no --now, no bound at all).
    assert expected == oracle_of_stored(stored, refused)

    proc = start_ready_worker(broker, names, worker, free_port)
    got = outputs_of(settings, len(expected))
    dead = letters_of(settings, len(refused), timeout_s=30.0)
    repeats = assert_same_outputs(got, expected)
    problems, found = [], set()
    for record in dead:  # at-least-once: a dead letter may come twice, as an exact copy
        letter = orjson.loads(record.value or b"null")
        validator("deadletter").validate(letter)
        where = (letter["source"]["partition"], letter["source"]["offset"])
        found.add(where)
        want = expected_letters.get(where)
        fields = ("reason", "detail", "payload", "payload_encoding")
        if want is None or {f: letter[f] for f in fields} != {f: want[f] for f in fields}:
            problems.append(f"worker: {letter}\nreplay: {want}")
    assert not problems, "\n".join(problems)
    assert found == refused
    print(f"{len(lines)} touchpoints, {len(expected)} outputs ({repeats} repeats), {len(refused)} refused as future")
    assert_never_restarted(proc)
