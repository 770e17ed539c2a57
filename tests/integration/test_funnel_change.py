"""Changing a funnel on a running deployment (issue 12), on Apache Kafka.

A worker runs b2b-sales (with the other presets) over 10,000 touchpoints and stops. A worker
started with b2b-sales missing a stage and no word of where its contacts go exits 2 with one
message naming the funnel, the stage and the count, and leaves the stored journeys and the
recorded definitions as they were. Then a worker starts with b2b-sales changed (a stage
inserted between lead and prospect, the lead stall time shortened from 30 to 7 days) and takes
another 10,000 touchpoints. Every output, and every contact's stage by name and the stage
counts, must equal what the core gives: each partition's first 10,000 replayed under the old
definition, its states migrated by the same rules, and its next 10,000 replayed under the new
one.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import pytest
from expected import PARTITIONS, assert_same_outputs, collect, simulate
from factories import replay
from webclient import get_json
from workers import assert_one_clear_message, run_expecting_exit, worker_env

from processor.config.definitions import PRESET_DIR, PRESETS, load_file, load_funnels
from processor.config.settings import Settings
from processor.funnel.definition import Funnel
from processor.funnel.migration import Recorded, migrate, plan
from processor.funnel.state import ContactState
from processor.kafka import clients as kafkaio
from processor.worker.agent import default_partition
from processor.worker.state.entry import Layout

TOUCHPOINTS = 10_000  # in each half
OUTPUT_TIMEOUT_S = 300.0
SETTLE_TIMEOUT_S = 60.0
Doc = dict[str, Any]


def changed_b2b(path: Path, *, insert: bool = False, remove: bool = False) -> Path:
    doc = orjson.loads((PRESET_DIR / "b2b-sales.json").read_bytes())
    if insert:  # 'sal' between lead and prospect, entered by lead_qualified; lead stalls after 7 days
        doc["stages"].insert(2, "sal")
        doc["rules"].insert(2, {"stage": "sal", "type": "lead_qualified"})
        doc["rules"][3]["type"].remove("lead_qualified")
        doc["stall_after"]["lead"] = "7d"
    if remove:  # prospect gone, and no word of where its contacts go
        doc["stages"].remove("prospect")
        doc["rules"][1]["type"] += doc["rules"].pop(2)["type"]
        del doc["stall_after"]["prospect"]
    path.write_bytes(orjson.dumps(doc))
    return path


def by_partition(lines: Sequence[bytes]) -> dict[int, list[Doc]]:
    parts: dict[int, list[Doc]] = defaultdict(list)
    for line in lines:
        doc = orjson.loads(line)
        parts[default_partition(doc["contact_id"].encode(), PARTITIONS)].append(doc)
    return parts


def oracle(
    first: Sequence[bytes], second: Sequence[bytes], old: list[Funnel], new: list[Funnel]
) -> tuple[dict[str, Doc], dict[str, Doc], dict[str, ContactState]]:
    """(outputs of the first half by id, outputs of both by id, final states), per partition through the core."""
    written = Layout(old)
    moves = plan(new, [Recorded(written.digest, written.shapes)]).moves.get(written.digest, {})
    before: dict[str, Doc] = {}
    after: dict[str, Doc] = {}
    states: dict[str, ContactState] = {}
    later = by_partition(second)
    for partition, docs in by_partition(first).items():
        run = replay(old, docs, check=False)
        before.update((o["id"], o) for o in run.outputs)
        store = {contact: migrate(state, moves) for contact, state in run.engine.store.items()}
        rest = replay(new, later.pop(partition, []), check=False, store=store)
        after.update((o["id"], o) for o in rest.outputs)
        states.update(store)
    for docs in later.values():  # partitions with touchpoints in the second half only
        rest = replay(new, docs, check=False)
        after.update((o["id"], o) for o in rest.outputs)
        assert isinstance(rest.engine.store, dict)
        states.update(rest.engine.store)
    return before, {**before, **after}, states


def journey(state: ContactState, funnels: Sequence[Funnel]) -> dict[str, Any]:
    """A contact's funnels as the worker's /journeys/ endpoint shows them: stage by name."""
    shown: dict[str, Any] = {}
    for funnel in funnels:
        pos = state.positions.get(funnel.name)
        shown[funnel.name] = None if pos is None else (funnel.stages[pos.stage], pos.dropped, pos.sequence)
    return shown


def stage_table(states: Mapping[str, ContactState], funnels: Sequence[Funnel]) -> dict[str, Any]:
    table = {f.name: {s: {"active": 0, "dropped": 0} for s in f.stages} for f in funnels}
    for state in states.values():
        for funnel in funnels:
            pos = state.positions.get(funnel.name)
            if pos is not None:
                table[funnel.name][funnel.stages[pos.stage]]["dropped" if pos.dropped else "active"] += 1
    return table


def wait_for_counts(port: str, expected: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while True:
        status, body = get_json(f"http://127.0.0.1:{port}/funnels/")
        if (status == 200 and body["funnels"] == expected) or time.monotonic() > deadline:
            assert status == 200, body
            got: dict[str, Any] = body["funnels"]
            return got
        time.sleep(1.0)


@pytest.mark.kafka_only
def test_a_changed_funnel_carries_every_journey_on_by_stage_name(
    broker: Any,
    topics: Callable[..., Any],
    worker: Callable[..., Any],
    free_port: Callable[[], int],
    tmp_path: Path,
) -> None:
    names = topics(PARTITIONS)
    others = [name for name in PRESETS if name != "b2b-sales"]
    inserted = changed_b2b(tmp_path / "b2b-sales-inserted.json", insert=True)
    removed = changed_b2b(tmp_path / "b2b-sales-removed.json", remove=True)
    old = load_funnels(PRESETS)
    new = [load_file(inserted), *load_funnels(others)]
    env_old = worker_env(broker, names, free_port)
    env_new = {**env_old, "FUNNEL_FUNNELS": ",".join([str(inserted), *others]), "FUNNEL_WEB_PORT": str(free_port())}
    env_removed = {**env_old, "FUNNEL_FUNNELS": ",".join([str(removed), *others]), "FUNNEL_WEB_PORT": str(free_port())}
    settings = Settings.from_env(env_old)
    lines = simulate(tmp_path / "touchpoints.jsonl", 2 * TOUCHPOINTS, seed=12)
    first, second = lines[:TOUCHPOINTS], lines[TOUCHPOINTS:]
    expected_first, expected, states = oracle(first, second, old, new)

    # The first 10,000 under the presets.
    kafkaio.produce_lines(settings, names.touchpoints, first)
    one = worker(env_old, "old")
    one.wait_ready()
    repeats = assert_same_outputs(collect(settings, len(expected_first), OUTPUT_TIMEOUT_S), expected_first)
    assert one.stop() == 0

    # A removal that strands contacts: refused, one message, nothing touched.
    changelog = kafkaio.journeys_changelog(settings)
    definitions = kafkaio.definitions_topic(settings)
    stored = kafkaio.read_topic(settings, changelog, timeout_s=2.0)
    recorded = kafkaio.read_topic(settings, definitions, timeout_s=1.0)
    in_prospect = sum(
        1
        for state in oracle(first, [], old, old)[2].values()
        if (pos := state.positions.get("b2b-sales")) is not None and pos.stage == 2
    )
    assert in_prospect > 0
    refusal = run_expecting_exit(env_removed)
    assert refusal.code == 2, refusal.output[-3000:]
    assert_one_clear_message(refusal, "'b2b-sales'", "'prospect'", f"{in_prospect:,} stored contacts", '"removed"')
    assert "\n" not in refusal.message, refusal.message
    assert kafkaio.read_topic(settings, changelog, timeout_s=2.0) == stored
    assert kafkaio.read_topic(settings, definitions, timeout_s=1.0) == recorded

    # The next 10,000 under the changed b2b-sales.
    kafkaio.produce_lines(settings, names.touchpoints, second)
    two = worker(env_new, "new")
    two.wait_ready()
    got = collect(settings, len(expected), OUTPUT_TIMEOUT_S)
    repeats += assert_same_outputs(got, expected)
    assert any(o["kind"] == "transition" and o["to_stage"] == "sal" for o in got), "nobody entered the new stage"
    # Deadlines the shorter lead stall time put before the restart fired after it, at their true deadline.
    restart = min(orjson.loads(line)["occurred_at"] for line in second)
    overdue = [
        o
        for o in expected.values()
        if o["id"] not in expected_first and o["kind"] == "dropoff" and o["occurred_at"] < restart
    ]
    lead = [o for o in overdue if o["funnel"] == "b2b-sales" and o["stage"] == "lead"]
    assert lead and all(o["reason"] == "stalled" and o["time_in_stage_s"] == 7 * 86_400 for o in lead)

    port = env_new["FUNNEL_WEB_PORT"]
    assert wait_for_counts(port, stage_table(states, new)) == stage_table(states, new)
    wrong = []
    for contact, state in states.items():
        status, body = get_json(f"http://127.0.0.1:{port}/journeys/{quote(contact, safe='')}/")
        assert status == 200, (contact, body)
        shown = {
            name: None if pos is None else (pos["stage"], pos["dropped"], pos["sequence"])
            for name, pos in body["funnels"].items()
        }
        if shown != journey(state, new):
            wrong.append((contact, shown, journey(state, new)))
    assert not wrong, f"{len(wrong)} of {len(states)} contacts differ, e.g. {wrong[:2]}"
    before = len(expected_first)
    print(f"{len(states)} contacts, {len(expected)} outputs ({before} before the change), {repeats} repeats")
    assert "Traceback" not in two.log_text()
    assert "recorded as layout" in two.log_text()
    assert two.stop() == 0
