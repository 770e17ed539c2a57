"""The lean Faust sensor shows, when scraped, what faust-streaming's own sensor shows."""

from __future__ import annotations

from typing import Any

from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP
from prometheus_client import CollectorRegistry

from processor.worker.sensor import LeanPrometheusMonitor

TOUCHPOINTS = [TP("funnel.touchpoints", 0), TP("funnel.touchpoints", 1), TP("funnel-processor-ticks", 0)]


class FakeMessage:
    time_in: float | None = None
    time_out: float | None = None
    time_total: float | None = None


class FakeTask:
    pass


class FakeStream:
    shortlabel = "Stream: Topic: funnel.touchpoints|funnel-processor-ticks"

    def __init__(self) -> None:
        self.task_owner = FakeTask()


def drive(monitor: PrometheusMonitor, rebalance: bool = False) -> None:
    """Records through the sensor hooks as Faust calls them: in, event in/out, acked; end offsets."""
    stream: Any = FakeStream()
    offsets = {tp: 0 for tp in TOUCHPOINTS}
    for i in range(50):
        tp = TOUCHPOINTS[i % 3]
        message: Any = FakeMessage()
        offsets[tp] += 1
        monitor.on_message_in(tp, offsets[tp], message)
        state = monitor.on_stream_event_in(tp, offsets[tp], stream, message)
        monitor.on_stream_event_out(tp, offsets[tp], stream, message, state)
        if i % 5:  # some still unacked: the active gauges are not zero
            monitor.on_message_out(tp, offsets[tp], message)
        if i % 10 == 0:
            monitor.track_tp_end_offset(tp, offsets[tp] + 7)
        if rebalance and i == 30:
            monitor.on_rebalance_end(None, monitor.on_rebalance_start(_App()))  # type: ignore[arg-type]


class _App:
    rebalancing_count = 1


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    got = {}
    for family in registry.collect():
        for sample in family.samples:
            if family.name.endswith("events_runtime_ms") and not sample.name.endswith("_count"):
                continue  # how long an event took differs between any two runs
            if sample.name.endswith("_created") or "rebalance" in sample.name:
                continue
            got[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return got


def test_scraped_series_equal_the_stock_sensors() -> None:
    for rebalance in (False, True):
        stock_registry, lean_registry = CollectorRegistry(), CollectorRegistry()
        stock = PrometheusMonitor(FaustMetrics.create(stock_registry, "funnel_faust"))
        lean = LeanPrometheusMonitor(FaustMetrics.create(lean_registry, "funnel_faust"))
        drive(stock, rebalance)
        drive(lean, rebalance)
        lean.publish()
        expected = samples(stock_registry)
        assert expected[("funnel_faust_messages_received_total", ())] == 50
        assert expected[("funnel_faust_active_messages", ())] == 10
        assert samples(lean_registry) == expected


def test_nothing_is_counted_twice_over_several_scrapes() -> None:
    registry = CollectorRegistry()
    lean = LeanPrometheusMonitor(FaustMetrics.create(registry, "funnel_faust"))
    drive(lean)
    lean.publish()
    lean.publish()
    drive(lean)
    lean.publish()
    value = registry.get_sample_value
    assert value("funnel_faust_messages_received_total") == 100
    assert value("funnel_faust_total_events_total") == 100
    assert value("funnel_faust_active_messages") == 20
    assert value("funnel_faust_messages_received_per_topic_total", {"topic": "funnel.touchpoints"}) == 68


def test_records_taken_in_partition_lists_are_counted_as_faust_counts_messages() -> None:
    """processor/worker/patches/partitionbatches.py hands a partition's records over as one list."""
    stock_registry, lean_registry = CollectorRegistry(), CollectorRegistry()
    stock = PrometheusMonitor(FaustMetrics.create(stock_registry, "funnel_faust"))
    lean = LeanPrometheusMonitor(FaustMetrics.create(lean_registry, "funnel_faust"))
    tp = TOUCHPOINTS[0]
    for offset in range(1, 11):
        message: Any = FakeMessage()
        stock.on_message_in(tp, offset, message)
        if offset <= 6:
            stock.on_message_out(tp, offset, message)
    lean.on_records_in(tp, 10, 10)
    lean.on_records_out(6)
    lean.publish()
    got = samples(lean_registry)
    for name in (
        "funnel_faust_messages_received_total",
        "funnel_faust_active_messages",
        "funnel_faust_messages_received_per_topic_total",
        "funnel_faust_messages_received_per_topics_partition",
    ):
        assert {k: v for k, v in got.items() if k[0] == name} == {
            k: v for k, v in samples(stock_registry).items() if k[0] == name
        }, name
    assert lean.tp_read_offsets[tp] == 10
