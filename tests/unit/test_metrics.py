"""Funnel metrics from real outputs: bounded labels, every series present from the start."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from factories import Touchpoints
from prometheus_client import CollectorRegistry, generate_latest

from processor.config.definitions import load_funnels
from processor.funnel.engine import Engine
from processor.funnel.touchpoint import from_dict
from processor.worker.metrics import FunnelMetrics
from processor.worker.state.entry import Layout
from processor.worker.state.stagecounts import StageCounts
from processor.worker.state.store import JourneyStore

FUNNELS = load_funnels(["quote-to-deal"])


def setup() -> tuple[CollectorRegistry, FunnelMetrics, Engine, JourneyStore, StageCounts]:
    registry, counts = CollectorRegistry(), StageCounts(FUNNELS)
    store = JourneyStore({}, Layout(FUNNELS))
    return registry, FunnelMetrics(registry, FUNNELS, counts), Engine(FUNNELS, store), store, counts


def test_every_label_set_exists_at_zero_before_any_event() -> None:
    registry, *_ = setup()
    value = registry.get_sample_value
    assert value("funnel_stage_entries_total", {"funnel": "quote-to-deal", "stage": "won"}) == 0
    assert value("funnel_transitions_total", {"funnel": "quote-to-deal", "from_stage": "none", "to_stage": "won"}) == 0
    labels = {"funnel": "quote-to-deal", "from_stage": "request", "to_stage": "proposal"}
    assert value("funnel_transitions_total", labels) == 0
    assert value("funnel_dropoffs_total", {"funnel": "quote-to-deal", "stage": "proposal", "reason": "stalled"}) == 0
    assert value("funnel_dead_letters_total", {"reason": "bad_timestamp"}) == 0
    assert value("funnel_contacts_in_stage", {"funnel": "quote-to-deal", "stage": "briefing"}) == 0
    # no backwards transition is ever created, and no contact id is ever a label
    labels = {"funnel": "quote-to-deal", "from_stage": "won", "to_stage": "request"}
    assert value("funnel_transitions_total", labels) is None


def test_outputs_are_counted_by_funnel_stage_and_reason() -> None:
    registry, metrics, engine, store, counts = setup()
    stream = Touchpoints()
    docs = [
        stream("quote_requested", "a"),
        stream("briefing_held", "a", after=timedelta(days=2)),
        stream("quote_requested", "b"),
        stream("quote_rejected", "b"),
        stream("quote_sent", "c"),  # enters at proposal, skipping two stages
    ]
    for doc in docs:
        outputs = engine.observe(from_dict(doc))
        metrics.count(outputs)
        counts.apply(0, store.commit())
    value = registry.get_sample_value
    q = "quote-to-deal"
    assert value("funnel_stage_entries_total", {"funnel": q, "stage": "request"}) == 2
    assert value("funnel_transitions_total", {"funnel": q, "from_stage": "request", "to_stage": "briefing"}) == 1
    assert value("funnel_transitions_total", {"funnel": q, "from_stage": "none", "to_stage": "proposal"}) == 1
    assert value("funnel_dropoffs_total", {"funnel": q, "stage": "request", "reason": "lost"}) == 1
    assert value("funnel_time_in_stage_seconds_count", {"funnel": q, "stage": "request"}) == 1
    assert value("funnel_time_in_stage_seconds_sum", {"funnel": q, "stage": "request"}) == 2 * 86400
    assert value("funnel_time_in_stage_seconds_bucket", {"funnel": q, "stage": "request", "le": "86400.0"}) == 0
    assert value("funnel_time_in_stage_seconds_bucket", {"funnel": q, "stage": "request", "le": "259200.0"}) == 1
    assert value("funnel_contacts_in_stage", {"funnel": q, "stage": "briefing"}) == 1
    assert value("funnel_contacts_dropped_in_stage", {"funnel": q, "stage": "request"}) == 1
    assert value("funnel_contacts_in_stage", {"funnel": q, "stage": "proposal"}) == 1
    assert b"contact" not in generate_latest(registry).replace(b"contacts_", b"").replace(b"_contacted", b"")


def test_stall_lateness_is_measured_in_event_time() -> None:
    registry, metrics, engine, _, _ = setup()
    engine.observe(from_dict(Touchpoints()("quote_requested", "a")))
    assert engine.clock is not None
    clock = engine.clock + 7 * 86_400_000_000 + 3_000_000  # 3 s past the 7-day deadline
    metrics.count(engine.advance_to(clock), clock / 1_000_000)
    assert registry.get_sample_value("funnel_deadline_lateness_seconds_count") == 1
    assert registry.get_sample_value("funnel_deadline_lateness_seconds_sum") == 3.0


def test_stage_positions_give_each_funnels_stage_order() -> None:
    registry, *_ = setup()
    [funnel] = FUNNELS
    positions = {
        stage: registry.get_sample_value("funnel_stage_position", {"funnel": funnel.name, "stage": stage})
        for stage in funnel.stages
    }
    assert sorted(positions, key=lambda stage: positions[stage] or 0) == list(funnel.stages)
    assert sorted(cast(list[float], list(positions.values()))) == list(range(1, len(funnel.stages) + 1))
