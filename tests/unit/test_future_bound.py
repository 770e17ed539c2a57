"""The bound on the future (SPEC: Bounds on input): a touchpoint dated more than a tolerance
after its arrival is dead-lettered as future_timestamp and changes nothing.

The core check (`check_not_ahead`) takes the arrival time as an argument. A replay gives
every line the arrival time --now; the worker gives a record its Kafka timestamp, never
later than its wall clock (`processor.worker.agent.arrival_us`). The broker side is
tests/integration/test_worker_future_timestamps.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from aiokafka.structs import ConsumerRecord
from factories import DAY, T0, Touchpoints, micros

from processor.cli.replay import run_replay
from processor.config.definitions import PRESETS, load_funnels, load_preset
from processor.config.schemas import validator
from processor.funnel.timefmt import MAX_US, MIN_US, format_time, parse_time
from processor.funnel.touchpoint import (
    DEFAULT_FUTURE_TOLERANCE_US,
    FUTURE_TIMESTAMP,
    NO_FUTURE_BOUND,
    Invalid,
    check_not_ahead,
    from_dict,
)
from processor.tools.simgen import Config, generate, plan_for
from processor.worker.agent import arrival_us

US_PER_S = 1_000_000
NOW = parse_time("2026-03-01T12:00:00Z")  # a fixed "now" for the replays below


def tp_at(when: str) -> Any:
    return from_dict({"event_id": "e", "contact_id": "c", "type": "page_view", "occurred_at": when})


def replay(lines: list[bytes], now: int | None = NOW, **options: Any) -> tuple[list[bytes], list[dict[str, Any]]]:
    """(output lines, dead letters) of the core replay over the lines, every line arriving at `now`."""
    out, errors = io.BytesIO(), io.BytesIO()
    run_replay(lines, "in.jsonl", load_funnels(PRESETS), out, errors, now=now, **options)
    return out.getvalue().splitlines(), [orjson.loads(line) for line in errors.getvalue().splitlines()]


# --- the check itself


def test_the_default_tolerance_is_minutes() -> None:
    assert DEFAULT_FUTURE_TOLERANCE_US == 5 * 60 * US_PER_S


def test_a_touchpoint_exactly_the_tolerance_ahead_passes_and_one_microsecond_more_is_refused() -> None:
    tolerance = 300 * US_PER_S
    at = parse_time("2026-03-01T12:05:00Z")
    check_not_ahead(tp_at("2026-03-01T12:05:00Z"), at - tolerance, tolerance)
    with pytest.raises(Invalid) as refused:
        check_not_ahead(tp_at("2026-03-01T12:05:00.000001Z"), at - tolerance, tolerance)
    assert refused.value.reason == FUTURE_TIMESTAMP
    assert refused.value.detail == (
        "occurred_at 2026-03-01T12:05:00.000001Z is 5m 1e-06s ahead of its arrival time (2026-03-01T12:00:00Z); "
        "at most 5m ahead is accepted"
    )


def test_past_and_present_touchpoints_always_pass() -> None:
    for when in ("0001-01-01T00:00:00Z", "1999-12-31T23:59:59Z", format_time(NOW)):
        check_not_ahead(tp_at(when), NOW, 1)


def test_switched_off_no_event_time_is_too_far_ahead() -> None:
    check_not_ahead(tp_at("9999-12-31T23:59:59.999999Z"), MIN_US, NO_FUTURE_BOUND)
    assert NO_FUTURE_BOUND > MAX_US - MIN_US


# --- what "arrival" means in the worker: the record's timestamp, at most the wall clock


def faust_message(timestamp: float | None) -> Any:
    return SimpleNamespace(timestamp=timestamp)  # faust's Message: seconds, as a float


def kafka_record(timestamp_ms: int) -> ConsumerRecord[bytes, bytes]:
    """aiokafka's record, in milliseconds: what the worker fetches for records Faust left out
    (processor/worker/patches/skippedrecords.py)."""
    return ConsumerRecord("touchpoints", 0, 7, timestamp_ms, 0, b"k", b"v", None, 1, 1, ())


def test_arrival_is_the_record_timestamp_when_it_is_not_ahead_of_the_wall_clock() -> None:
    wall_s = 1_800_000_000.5
    assert arrival_us(faust_message(1_700_000_000.123), wall_s) == 1_700_000_000_123_000
    assert arrival_us(kafka_record(1_700_000_000_123), wall_s) == 1_700_000_000_123_000


def test_arrival_is_never_later_than_the_wall_clock() -> None:
    """A producer that stamps its records with a future time cannot open the bound."""
    wall_s = 1_800_000_000.5
    assert arrival_us(faust_message(4_070_908_800.0), wall_s) == 1_800_000_000_500_000
    assert arrival_us(kafka_record(4_070_908_800_000), wall_s) == 1_800_000_000_500_000


@pytest.mark.parametrize("stamp", [None, -1.0])
def test_a_record_without_a_timestamp_arrives_at_the_wall_clock(stamp: float | None) -> None:
    assert arrival_us(faust_message(stamp), 1_800_000_000.0) == 1_800_000_000 * US_PER_S


def test_a_record_gets_the_same_arrival_on_every_delivery() -> None:
    """Redelivered after a crash, later by the wall clock: same arrival, so the same verdict."""
    record = faust_message(1_700_000_000.0)
    assert {arrival_us(record, wall) for wall in (1_700_000_001.0, 1_700_003_600.0, 1_800_000_000.0)} == {
        1_700_000_000 * US_PER_S
    }


# --- the replay: one future-dated touchpoint among normal traffic


def traffic() -> list[bytes]:
    """The issue's case: 300 simulated contacts over the four presets (about 900 touchpoints), before NOW."""
    plans = [plan_for(load_preset(name), {}, {}) for name in PRESETS]
    docs = generate(plans, Config(seed=17, contacts=300, days=30), end_us=NOW - 86_400 * US_PER_S)
    return [orjson.dumps(doc) for doc in docs]


def test_a_touchpoint_from_2099_is_dead_lettered_and_every_other_output_is_the_replay_without_it() -> None:
    lines = traffic()
    middle = len(lines) // 2
    victim = orjson.loads(lines[middle])["contact_id"]  # a contact of the traffic, mid-journey
    future = orjson.dumps(
        {"event_id": "e-2099", "contact_id": victim, "type": "purchase", "occurred_at": "2099-01-01T00:00:00Z"}
    )
    with_it = [*lines[:middle], future, *lines[middle:]]

    outputs, letters = replay(with_it)
    expected, none = replay(lines)
    assert none == []
    assert outputs == expected
    assert [(d["reason"], d["source"], d["payload"]) for d in letters] == [
        (FUTURE_TIMESTAMP, {"file": "in.jsonl", "line": middle + 1}, future.decode())
    ]
    validator("deadletter").validate(letters[0])

    # Without the bound, the same record moves the clock 73 years: every contact stalls at once.
    unbounded, _ = replay(with_it, now=None)
    stalled = Counter(orjson.loads(o).get("reason") for o in unbounded)["stalled"]
    assert stalled > Counter(orjson.loads(o).get("reason") for o in expected)["stalled"] + 100


def test_a_refused_touchpoint_changes_no_state_clock_count_or_dedup_memory() -> None:
    """c1's future purchase would count towards b2b-sales' nth=2 (loyal_customer), remember its event
    id (so the real purchase with that id would be a duplicate), and move the clock past c1's and c2's
    stall deadlines. Refused, it does none of that: the outputs are those of the traffic without it."""
    make = Touchpoints(start=T0, gap=timedelta(hours=1))
    docs = [
        make("ad_click", "c1"),
        make("quote_requested", "c2"),
        make("purchase", "c1", event_id="e-dup", at=T0 + 400 * DAY),  # refused: the future, seen from T0 + 10 days
        make("purchase", "c1", event_id="e-dup", at=T0 + 2 * DAY),
        make("form_submitted", "c2", at=T0 + 3 * DAY),
    ]
    lines = [orjson.dumps(doc) for doc in docs]
    now = micros(T0 + 10 * DAY)
    outputs, letters = replay(lines, now=now)
    assert [(d["reason"], d["source"]["line"]) for d in letters] == [(FUTURE_TIMESTAMP, 3)]
    assert outputs == replay(lines[:2] + lines[3:], now=now)[0]
    moves = [(o["contact_id"], o["funnel"], o.get("to_stage")) for o in map(orjson.loads, outputs)]
    assert ("c1", "b2b-sales", "customer") in moves  # the real purchase is not a duplicate
    assert ("c1", "b2b-sales", "loyal_customer") not in moves  # the refused one was not counted
    assert all(o["kind"] == "transition" for o in map(orjson.loads, outputs))  # no clock ran ahead
    unbounded, _ = replay(lines, now=now, future_tolerance=NO_FUTURE_BOUND)
    assert {orjson.loads(o).get("reason") for o in unbounded} >= {"stalled"}  # what the bound prevents


# --- `funnel-processor replay --now ... --future-tolerance ...`


def run_cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "processor", "replay", "--funnel", "aida", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def touch(n: int, when: str) -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "contact_id": f"c{n}", "type": "ad_click", "occurred_at": when})


def reasons(result: subprocess.CompletedProcess[bytes]) -> list[tuple[str, int]]:
    *letters, summary = result.stderr.splitlines()  # the dead letters, then the summary line
    assert summary.startswith(b"funnel-processor replay: ")
    return [(d["reason"], d["source"]["line"]) for d in map(orjson.loads, letters)]


def entered(result: subprocess.CompletedProcess[bytes]) -> list[str]:
    return [o["contact_id"] for o in map(orjson.loads, result.stdout.splitlines()) if o["kind"] == "transition"]


def test_replay_measures_the_future_from_now(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(
        b"\n".join(
            [
                touch(1, "2026-03-01T11:00:00Z"),
                touch(2, "2026-03-01T12:04:59Z"),  # within the default 5 minutes
                touch(3, "2026-03-01T12:10:00Z"),  # 10 minutes ahead
                touch(4, "2099-01-01T00:00:00Z"),
            ]
        )
        + b"\n"
    )
    at_now = run_cli("--input", str(path), "--now", "2026-03-01T12:00:00Z")
    assert at_now.returncode == 0, at_now.stderr
    assert entered(at_now) == ["c1", "c2"]
    assert reasons(at_now) == [(FUTURE_TIMESTAMP, 3), (FUTURE_TIMESTAMP, 4)]

    wider = run_cli("--input", str(path), "--now", "2026-03-01T12:00:00Z", "--future-tolerance", "15m")
    assert (entered(wider), reasons(wider)) == (["c1", "c2", "c3"], [(FUTURE_TIMESTAMP, 4)])

    off = run_cli("--input", str(path), "--now", "2026-03-01T12:00:00Z", "--future-tolerance", "off")
    assert (entered(off), reasons(off)) == (["c1", "c2", "c3", "c4"], [])

    # By default "now" is the wall clock: this file lies in the past, but for 2099.
    wall = run_cli("--input", str(path))
    assert (entered(wall), reasons(wall)) == (["c1", "c2", "c3"], [(FUTURE_TIMESTAMP, 4)])


def test_a_refused_line_does_not_count_for_until(tmp_path: Path) -> None:
    """--until must not be earlier than the latest touchpoint: one the replay refuses is not one."""
    path = tmp_path / "in.jsonl"
    path.write_bytes(touch(1, "2026-03-01T11:00:00Z") + b"\n" + touch(2, "2099-01-01T00:00:00Z") + b"\n")
    result = run_cli("--input", str(path), "--now", "2026-03-01T12:00:00Z", "--until", "2026-03-20T00:00:00Z")
    assert result.returncode == 0, result.stderr
    assert [orjson.loads(line)["kind"] for line in result.stdout.splitlines()] == ["transition", "dropoff"]
    assert reasons(result) == [(FUTURE_TIMESTAMP, 2)]


@pytest.mark.parametrize("bad", [["--future-tolerance", "soon"], ["--future-tolerance", "0s"], ["--now", "today"]])
def test_bad_values_are_usage_errors(bad: list[str]) -> None:
    result = run_cli("--input", "-", *bad, stdin=b"")
    assert result.returncode == 2
    assert bad[0].encode() in result.stderr
