"""Funnel metrics from real outputs: bounded labels, every series present from the start."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from factories import Touchpoints
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from processor.config.definitions import load_funnels
from processor.funnel.engine import Engine
from processor.funnel.touchpoint import from_dict
from processor.worker.metrics import DURATION_BUCKETS, FunnelMetrics
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


def test_counted_outputs_publish_exactly_what_prometheus_would_have_counted() -> None:
    """Outputs are counted in plain integers and added to the series when the registry is read;
    every read sees the figures Prometheus' own increments and observations would give."""
    registry, metrics, *_ = setup()
    funnel, stage = FUNNELS[0].name, FUNNELS[0].stages[0]
    reference = CollectorRegistry()
    histogram = Histogram("reference", "the same observations", buckets=DURATION_BUCKETS, registry=reference)
    values = [0.0, 1e-9, 59.9, 60, 60.1, 600, 86400, 365 * 86400, 400 * 86400, 3.5e6]
    for value in values:
        histogram.observe(value)
    outputs: list[Any] = [
        {
            "kind": "transition",
            "funnel": funnel,
            "from_stage": None,
            "to_stage": stage,
            "since_funnel_entry_s": v,
            "time_in_previous_stage_s": None,
        }
        for v in values
    ]
    metrics.count(outputs)
    want = {
        (sample.name.removeprefix("reference"), sample.labels.get("le")): sample.value
        for family in reference.collect()
        for sample in family.samples
        if not sample.name.endswith("_created")
    }
    labels = {"funnel": funnel, "stage": stage}
    for _ in range(2):  # two reads: nothing is counted twice
        got = {
            (sample.name.removeprefix("funnel_time_to_convert_seconds"), sample.labels.get("le")): sample.value
            for family in registry.collect()
            for sample in family.samples
            if sample.name.startswith("funnel_time_to_convert_seconds")
            and not sample.name.endswith("_created")
            and {k: v for k, v in sample.labels.items() if k != "le"} == labels
        }
        assert got == want
        assert registry.get_sample_value("funnel_stage_entries_total", labels) == len(values)
