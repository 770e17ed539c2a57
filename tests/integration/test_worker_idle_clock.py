"""A quiet partition still fires its drop-offs (SPEC: Time; README: Time).

A custom funnel with a 3 s stall in stage `a`, touchpoints stamped with the wall clock
and nothing after them: once the partition has been idle for FUNNEL_IDLE_AFTER, ticks
run its clock on with the wall clock and the stall fires, as a replay with a later
--until would; with a long FUNNEL_IDLE_AFTER the clock stays put and nothing fires.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from itertools import count
from pathlib import Path
from typing import Any, cast

import orjson
import pytest

from processor.config.definitions import load_funnels
from processor.config.schemas import validator
from processor.config.settings import Settings
from processor.funnel.timefmt import parse_time
from processor.kafka import clients as kafkaio
from processor.tools.replay import run_replay
from processor.worker.agent import default_partition

PARTITIONS = 2
STALL = timedelta(seconds=3)  # stage a of the funnel below
FIRES_WITHIN_S = 20.0  # touchpoint produced -> its stall drop-off on the topic
FUNNEL = {
    "name": "quick",
    "stages": ["a", "b", "c"],
    "rules": [{"stage": "a", "type": "step_a"}, {"stage": "b", "type": "step_b"}, {"stage": "c", "type": "step_c"}],
    "stall_after": {"a": "3s", "b": "1h"},
}


@pytest.fixture
def funnel_file(tmp_path: Path) -> Path:
    path = tmp_path / "quick.json"
    path.write_bytes(orjson.dumps(FUNNEL))
    return path


@pytest.fixture
def run(
    broker: Any, topics: Callable[..., Any], worker: Callable[..., Any], free_port: Callable[[], int], funnel_file: Path
) -> Iterator[Callable[[str], Settings]]:
    """run(idle_after) -> the settings of a ready worker on fresh topics, running the quick funnel."""

    def start(idle_after: str) -> Settings:
        env = broker.env(
            topics(PARTITIONS),
            funnels=funnel_file,
            idle_after=idle_after,
            tick_interval="0.5s",
            store="memory",
            web_port=free_port(),
        )
        worker(env).wait_ready()
        return Settings.from_env(env)

    yield start


def now() -> datetime:
    """The wall clock in UTC, to the millisecond (a touchpoint stamped 'now')."""
    moment = datetime.now(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def touchpoint(contact: str, kind: str, at: datetime) -> bytes:
    event = f"{contact}-{kind}"
    return orjson.dumps({"event_id": event, "contact_id": contact, "type": kind, "occurred_at": at.isoformat()})


def produce(settings: Settings, *lines: bytes) -> None:
    records = [(orjson.loads(line)["contact_id"].encode(), line) for line in lines]
    assert kafkaio.produce_records(settings, settings.topic_touchpoints, records) == len(records)


def outputs(settings: Settings) -> list[dict[str, Any]]:
    topics = (settings.topic_transitions, settings.topic_dropoffs)
    return [orjson.loads(cast(bytes, r.value)) for t in topics for r in kafkaio.read_topic(settings, t, timeout_s=0.3)]


def wait_for(
    settings: Settings, done: Callable[[list[dict[str, Any]]], bool], timeout_s: float
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    while True:
        got = outputs(settings)
        if done(got) or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


def replay(funnel_file: Path, lines: list[bytes], until: datetime | None = None) -> dict[str, dict[str, Any]]:
    """The oracle: the replay's outputs by id, firing what is due at `until`."""
    out, errors = io.BytesIO(), io.BytesIO()
    at = None if until is None else parse_time(until.isoformat())
    run_replay(lines, "oracle", load_funnels([str(funnel_file)]), out, errors, until=at)
    assert errors.getvalue() == b""
    return {o["id"]: o for o in map(orjson.loads, out.getvalue().splitlines())}


def by_id(got: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Outputs by id; at-least-once repeats must be exact copies."""
    unique: dict[str, dict[str, Any]] = {}
    for output in got:
        validator(output["kind"]).validate(output)
        assert unique.setdefault(output["id"], output) == output, f"two outputs share the id {output['id']}"
    return unique


def stalls(got: list[dict[str, Any]], contact: str) -> list[dict[str, Any]]:
    return [o for o in got if o["kind"] == "dropoff" and o["contact_id"] == contact]


def test_a_quiet_partition_fires_its_stall_on_the_wall_clock(run: Any, funnel_file: Path) -> None:
    settings = run("1s")
    entered = now()
    line = touchpoint("quiet", "step_a", entered)
    produce(settings, line)
    produced = time.monotonic()
    got = wait_for(settings, lambda got: bool(stalls(got, "quiet")), FIRES_WITHIN_S)
    seen_at, waited = datetime.now(UTC), time.monotonic() - produced

    found = {o["id"]: o for o in stalls(got, "quiet")}
    assert len(found) == 1, f"expected one drop-off within {FIRES_WITHIN_S} s of a quiet partition; outputs: {got}"
    [dropoff] = found.values()
    assert (dropoff["stage"], dropoff["reason"]) == ("a", "stalled")
    assert datetime.fromisoformat(dropoff["entered_stage_at"]) == entered
    assert datetime.fromisoformat(dropoff["occurred_at"]) == entered + STALL
    assert dropoff["time_in_stage_s"] == STALL.total_seconds()
    assert seen_at > entered + STALL, "the stall fired before its deadline passed on the wall clock"
    assert by_id(got) == replay(funnel_file, [line], until=entered + STALL + timedelta(seconds=1))
    print(f"stall fired {waited:.1f} s after the touchpoint was produced")


def test_a_long_idle_after_keeps_a_quiet_partition_clock_still(run: Any, funnel_file: Path) -> None:
    settings = run("1h")
    entered = now()
    line = touchpoint("quiet", "step_a", entered)
    produce(settings, line)
    assert wait_for(settings, lambda got: len(got) >= 1, FIRES_WITHIN_S), "the touchpoint was not processed"
    time.sleep(max(0.0, (entered + STALL - datetime.now(UTC)).total_seconds()) + 4.0)  # well past the deadline

    got = outputs(settings)
    assert stalls(got, "quiet") == [], "a partition quiet for less than FUNNEL_IDLE_AFTER let its clock run on"
    assert by_id(got) == replay(funnel_file, [line])


def test_a_contact_that_moves_on_before_its_deadline_does_not_stall(run: Any, funnel_file: Path) -> None:
    settings = run("1s")
    home = default_partition(b"stayer", PARTITIONS)
    mover = next(m for i in count() if default_partition((m := f"mover-{i}").encode(), PARTITIONS) == home)
    entered = now()
    first = [touchpoint(mover, "step_a", entered), touchpoint("stayer", "step_a", entered)]
    produce(settings, *first)
    time.sleep(max(0.0, (entered + timedelta(seconds=1) - datetime.now(UTC)).total_seconds()))
    moved = touchpoint(mover, "step_b", entered + timedelta(seconds=1))
    produce(settings, moved)
    assert datetime.now(UTC) < entered + STALL - timedelta(seconds=0.5), "too slow: the move came near the deadline"

    # The stayer's stall shows the shared partition clock passed the mover's old deadline.
    got = wait_for(settings, lambda got: bool(stalls(got, "stayer")), FIRES_WITHIN_S)
    assert stalls(got, "stayer"), f"no stall for the contact that stayed: {got}"
    time.sleep(1.0)
    got = outputs(settings)
    assert stalls(got, mover) == [], "a contact that moved on before its deadline stalled in the stage it left"
    assert [(o["from_stage"], o["to_stage"]) for o in got if o["contact_id"] == mover] == [(None, "a"), ("a", "b")]
    assert by_id(got) == replay(funnel_file, [*first, moved], until=entered + STALL + timedelta(seconds=1))
