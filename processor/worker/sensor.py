"""Faust's Prometheus sensor, with its per-record counting moved to scrape time.

faust-streaming's `PrometheusMonitor` updates several labelled Prometheus series for
every record (received, active, per topic, per partition, per stream, ...): about
35 µs of the worker's per-record time, measured. This subclass exports the same
series under the same names, but its per-record hooks only bump plain counters (and
Faust's own `Monitor` bookkeeping, which its web views read); `publish()` adds what
was counted to the Prometheus series, and the worker's `/metrics` page calls it
before every scrape, so a scrape sees exactly what the stock sensor would show.

The one series still updated per record is the event runtime histogram (an
observation per event cannot be summed up beforehand).
"""

from __future__ import annotations

from collections import Counter
from typing import Any
from weakref import WeakKeyDictionary

from faust.sensors.monitor import Monitor
from faust.sensors.prometheus import FaustMetrics, PrometheusMonitor
from faust.types import TP, AppT, EventT, StreamT
from faust.types.tuples import Message
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest


class LeanPrometheusMonitor(PrometheusMonitor):
    def __init__(self, metrics: FaustMetrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        self._received = 0
        self._received_by_topic: Counter[str] = Counter()
        self._done = 0  # messages fully acked
        self._events = 0
        self._events_by_stream: Counter[str] = Counter()
        self._events_done = 0
        self._stream_labels: WeakKeyDictionary[StreamT[Any], str] = WeakKeyDictionary()

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_in(self, tp, offset, message)  # also keeps tp_read_offsets[tp]
        self._received += 1
        self._received_by_topic[tp.topic] += 1

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        Monitor.on_message_out(self, tp, offset, message)
        self._done += 1

    def on_records_in(self, tp: TP, count: int, last_offset: int) -> None:
        """A partition's records taken as one list, past Faust's per-record delivery
        (processor/worker/patches/partitionbatches.py): counted as received, as Faust would."""
        self.messages_received_total += count
        self.messages_active += count
        self.messages_received_by_topic[tp.topic] += count
        self.tp_read_offsets[tp] = last_offset
        self._received += count
        self._received_by_topic[tp.topic] += count

    def on_records_out(self, count: int) -> None:
        """Records of such lists acked."""
        self.messages_active -= count
        self._done += count

    def on_stream_event_in(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any]
    ) -> dict[str, Any] | None:
        state = Monitor.on_stream_event_in(self, tp, offset, stream, event)
        self._events += 1
        label = self._stream_labels.get(stream)
        if label is None:
            label = self._stream_labels[stream] = f"stream.{self._stream_label(stream)}.events"
        self._events_by_stream[label] += 1
        return state

    def on_stream_event_out(
        self, tp: TP, offset: int, stream: StreamT[Any], event: EventT[Any], state: dict[str, Any] | None = None
    ) -> None:
        Monitor.on_stream_event_out(self, tp, offset, stream, event, state)
        self._events_done += 1
        if state is not None:
            self._metrics.events_runtime_latency.observe(self.secs_to_ms(self.events_runtime[-1]))

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        Monitor.track_tp_end_offset(self, tp, offset)  # kept in tp_end_offsets, published when scraped

    def _clear_partition_related_metrics(self) -> None:
        super()._clear_partition_related_metrics()  # at a rebalance: the per-topic counts start again
        self._received_by_topic.clear()

    def publish(self) -> None:
        """Add what was counted since the last call to the Prometheus series."""
        m = self._metrics
        received, self._received = self._received, 0
        done, self._done = self._done, 0
        events, self._events = self._events, 0
        events_done, self._events_done = self._events_done, 0
        m.messages_received.inc(received)
        m.active_messages.inc(received - done)
        m.total_events.inc(events)
        m.total_active_events.inc(events - events_done)
        for topic, count in self._received_by_topic.items():
            m.messages_received_per_topics.labels(topic=topic).inc(count)
        self._received_by_topic.clear()
        for label, count in self._events_by_stream.items():
            m.total_events_per_stream.labels(stream=label).inc(count)
        self._events_by_stream.clear()
        # Faust's Monitor forgets a partition's offsets at a rebalance, as the stock sensor
        # clears these series then: what it still holds is this worker's.
        for tp, offset in self.tp_read_offsets.items():
            m.messages_received_per_topics_partition.labels(topic=tp.topic, partition=tp.partition).set(offset)
        for tp, offset in self.tp_end_offsets.items():
            m.topic_partition_end_offset.labels(topic=tp.topic, partition=tp.partition).set(offset)


def setup_lean_prometheus_sensor(app: AppT, registry: CollectorRegistry, name_prefix: str) -> LeanPrometheusMonitor:
    """Faust's metrics (names prefixed by `name_prefix`) and the registry's on the app's /metrics page."""
    monitor = LeanPrometheusMonitor(FaustMetrics.create(registry, name_prefix))
    app.monitor = monitor

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        monitor.publish()
        return self.bytes(generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    return monitor
