"""The demo's event time (scripts/demo_time.py): a year of history played fast, then the present.

The demo used to start each batch the day after the previous batch's last touchpoint, and
reached 2044 after 74 s. Now no touchpoint may be sent before its time, or the worker's
bound on the future would refuse it; and touchpoints must still go out in event-time order.
"""

from __future__ import annotations

import importlib.util
import sys
from itertools import pairwise
from pathlib import Path
from types import ModuleType

import orjson
import pytest

from processor.config.definitions import PRESETS, load_preset
from processor.funnel.timefmt import parse_time
from processor.tools.simgen import Config, generate, plan_for

ROOT = Path(__file__).resolve().parents[2]
DAY = 86_400_000_000
SECOND = 1_000_000
WALL = parse_time("2026-12-07T10:30:00.25Z")


def load_demo_time() -> ModuleType:
    spec = importlib.util.spec_from_file_location("demo_time", ROOT / "scripts" / "demo_time.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["demo_time"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


demo_time = load_demo_time()


def test_event_time_starts_a_year_back_at_midnight() -> None:
    clock = demo_time.EventTime.starting(WALL)
    assert clock.horizon == parse_time("2025-12-07T00:00:00Z")
    assert not clock.live(WALL)


def test_windows_run_a_week_at_a_time_then_follow_the_wall_clock_never_past_it() -> None:
    clock = demo_time.EventTime.starting(WALL)
    wall, windows = WALL, list[tuple[int, int]]()
    while len(windows) < 60:
        start, end = clock.window(wall)
        windows.append((start, end))
        clock.release(end)
        wall += 5 * SECOND
    assert windows[0][0] == clock.starting(WALL).horizon
    assert all(a[1] == b[0] for a, b in pairwise(windows))  # contiguous: event time never goes back
    assert [end - start for start, end in windows[:52]] == [7 * DAY] * 52
    assert all(end <= WALL + 5 * SECOND * n for n, (_, end) in enumerate(windows))
    live = windows[53:]
    assert clock.live(wall)
    assert [end - start for start, end in live] == [5 * SECOND] * len(live)  # the wall clock's pace


def test_no_time_passed_means_an_empty_window() -> None:
    clock = demo_time.EventTime(horizon=WALL // SECOND * SECOND)
    assert clock.window(WALL) == (clock.horizon, clock.horizon)


def test_released_touchpoints_are_in_order_and_never_ahead_of_the_batch() -> None:
    """Simulated batches as the demo makes them: each batch's touchpoints reach far past its window;
    released ones come out in event-time order, none at or after the window's end, nor after the wall."""
    plans = [plan_for(load_preset(name), {}, {}) for name in PRESETS]
    clock = demo_time.EventTime.starting(WALL)
    wall, released, held_back = WALL, [], 0
    for batch in range(70):
        start, end = clock.window(wall)
        config = Config(seed=batch, contacts=40, days=(end - start) / DAY, contact_prefix=f"b{batch}-")
        lines = [orjson.dumps(doc) for doc in generate(plans, config, start_us=start)]
        clock.add((parse_time(orjson.loads(line)["occurred_at"]), line) for line in lines)
        due = clock.release(end)
        times = [parse_time(orjson.loads(line)["occurred_at"]) for line in due]
        assert all(t < end <= wall for t in times)
        held_back = max(held_back, len(clock.pending))
        released += times
        wall += 5 * SECOND
    assert released == sorted(released) and len(released) > 5_000
    assert held_back > 1_000  # journeys outlast their batch: their later steps waited


def test_a_touchpoint_before_the_horizon_is_refused() -> None:
    clock = demo_time.EventTime(horizon=WALL)
    with pytest.raises(ValueError, match="before the event time already sent"):
        clock.add([(WALL - 1, b"{}")])
    with pytest.raises(ValueError, match="never goes back"):
        clock.release(WALL - 1)
