"""The shared test helpers hold: `factories.replay` is the replay command's replay.

Every test that runs the engine over touchpoints goes through `factories.replay`, and
the integration tests hold the worker to `factories.replay_partitions`. That is only worth
something if the helper gives what `funnel-processor replay` (`run_replay`) gives on the
same input: the same output lines byte for byte, the same dead letters, in the same order.
"""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import orjson
import pytest
from factories import DAY, HOUR, T0, Touchpoints, line, micros, replay, replay_partitions, touchpoint

from processor.config.definitions import PRESETS, load_funnels, load_preset
from processor.funnel.state import Limits
from processor.funnel.touchpoint import NO_FUTURE_BOUND
from processor.tools.replay import run_replay
from processor.tools.simgen import Config, generate, plan_for
from processor.worker.agent import default_partition

END = micros(T0 + 40 * DAY)


def traffic(contacts: int = 200, seed: int = 5) -> list[bytes]:
    """Simulated touchpoints over the four presets, ending at END."""
    plans = [plan_for(load_preset(name), {}, {}) for name in PRESETS]
    return [line(doc) for doc in generate(plans, Config(seed=seed, contacts=contacts, days=30), end_us=END)]


def command(lines: list[bytes], **options: Any) -> tuple[list[bytes], list[dict[str, Any]]]:
    """(output lines, dead letters) of the replay command's own function."""
    out, errors = io.BytesIO(), io.BytesIO()
    run_replay(lines, "in.jsonl", load_funnels(PRESETS), out, errors, **options)
    return out.getvalue().splitlines(), [orjson.loads(letter) for letter in errors.getvalue().splitlines()]


def with_bad_lines(lines: list[bytes]) -> list[bytes]:
    """The traffic with a record that is no JSON, one missing a field, a blank line and one from 2099."""
    third = len(lines) // 3
    future = touchpoint("purchase", orjson.loads(lines[third])["contact_id"], at="2099-01-01T00:00:00Z", event_id="x")
    missing = line({"event_id": "m", "contact_id": "c", "occurred_at": "2024-01-02T00:00:00Z"})
    return [*lines[:third], b"{not json", line(future), b"", missing, *lines[third:]]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"now": END + micros(T0 + HOUR) - micros(T0)},
        {"now": END, "future_tolerance": NO_FUTURE_BOUND},
        {"until": END + 90 * 86_400_000_000, "now": END},
        {"limits": Limits(dedup_horizon_us=60_000_000)},
    ],
    ids=["plain", "now", "no-bound", "until", "short-dedup"],
)
def test_the_helper_gives_the_replay_commands_lines_and_dead_letters(options: dict[str, Any]) -> None:
    lines = with_bad_lines(traffic())
    expected, letters = command(lines, **options)
    helper = dict(options)
    if "until" in helper:
        helper["until"] = T0 + timedelta(microseconds=helper["until"] - micros(T0))
    else:
        helper["flush"] = "clock"
    run = replay(PRESETS, lines, source="in.jsonl", **helper)
    assert len(expected) > 300 and len(letters) >= 2
    assert run.lines == expected
    assert run.letters == letters
    assert run.outputs == [orjson.loads(out) for out in expected]


def test_the_oracle_is_the_command_per_partition() -> None:
    lines = traffic(contacts=300, seed=9)
    parts: dict[int, list[bytes]] = {}
    for record in lines:
        parts.setdefault(default_partition(orjson.loads(record)["contact_id"].encode(), 4), []).append(record)
    expected: dict[str, dict[str, Any]] = {}
    for part in parts.values():
        outputs, letters = command(part)
        assert letters == []
        expected.update((o["id"], o) for o in map(orjson.loads, outputs))
    assert len(parts) == 4
    assert replay_partitions(PRESETS, parts.values()) == expected
    assert replay_partitions(PRESETS, [lines]) != expected  # one clock for all: the partitions' clocks matter here


def test_the_oracle_fails_on_a_dead_letter() -> None:
    with pytest.raises(AssertionError):
        replay_partitions(PRESETS, [[b"{not json"]])


def late_stall() -> list[dict[str, Any]]:
    """c2 enters quote-to-deal 8 days before the clock: its 7-day stall is already due when it arrives."""
    make = Touchpoints(start=T0)
    return [make("page_view", "c1", at=T0 + 10 * DAY), make("quote_requested", "c2", at=T0 + 2 * DAY)]


def test_flush_is_explicit_nothing_by_default_the_clock_or_a_span_after_it() -> None:
    none = replay(["quote-to-deal"], late_stall())
    clock = replay(["quote-to-deal"], late_stall(), flush="clock")
    later = replay(["quote-to-deal"], late_stall(), flush=timedelta(days=400))
    assert none.tail == [] and none.engine.clock == micros(T0 + 10 * DAY)
    assert [(o["contact_id"], o["reason"]) for o in clock.tail] == [("c2", "stalled")]
    assert later.tail == clock.tail and later.engine.clock == micros(T0 + 410 * DAY)
    assert none.steps == clock.steps == later.steps
    with pytest.raises(ValueError, match="not both"):
        replay(["quote-to-deal"], late_stall(), until=T0, flush="clock")


def test_a_dict_built_wrong_raises_instead_of_becoming_a_dead_letter() -> None:
    with pytest.raises(Exception, match="type"):
        replay(["aida"], [{"event_id": "e1", "contact_id": "c1", "occurred_at": "2024-01-01T00:00:00Z"}])
