"""The engine says what each touchpoint was (in order, late, duplicate), so the worker counts
its metrics from that answer rather than by diffing the engine's counters."""

from __future__ import annotations

from factories import line, touchpoint

from processor.config.definitions import load_funnels
from processor.funnel.engine import DUPLICATE, IN_ORDER, LATE, Engine
from processor.funnel.touchpoint import decode


def record(event_id: str, contact: str, kind: str, when: str) -> bytes:
    return line(touchpoint(kind, contact, at=when, event_id=event_id))


def test_in_order_late_and_duplicate_are_told_apart_and_counted_alike() -> None:
    engine = Engine(load_funnels(["b2b-sales"]))
    first = decode(record("e1", "c1", "page_view", "2026-01-02T00:00:00Z"))
    outputs, verdict = engine.apply(first)
    assert verdict == IN_ORDER and outputs  # the contact enters the funnel

    earlier = decode(record("e2", "c2", "page_view", "2026-01-01T00:00:00Z"))
    outputs, verdict = engine.apply(earlier)
    assert verdict == LATE and outputs  # older than the latest seen, applied all the same

    outputs, verdict = engine.apply(first)
    assert verdict == DUPLICATE and outputs == []

    assert (engine.duplicates, engine.late) == (1, 1)  # the counters the replay summary prints agree


def test_observe_is_apply_without_the_verdict() -> None:
    a, b = Engine(load_funnels(["b2b-sales"])), Engine(load_funnels(["b2b-sales"]))
    lines = [
        record("e1", "c1", "page_view", "2026-01-02T00:00:00Z"),
        record("e2", "c1", "demo_requested", "2026-01-03T00:00:00Z"),
        record("e2", "c1", "demo_requested", "2026-01-03T00:00:00Z"),
    ]
    for raw in lines:
        tp = decode(raw)
        assert a.observe(tp) == b.apply(tp)[0]
