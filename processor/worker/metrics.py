"""Prometheus metrics of the funnels, in one registry shared with Faust's own sensor.

Labels are bounded: funnel, stage, from_stage, to_stage, reason; never a contact.
Every label set of every configured funnel exists at 0 from the start, so rates and
ratios have series to work with before the first event. Counters sum correctly over
any number of workers; the contacts-in-stage gauges are read, at scrape time, from
the stage counts of the partitions this worker owns, so they sum correctly too. The one
exception is funnel_stage_position, a stage's place in its funnel (for dashboards to
order stages by), the same on every worker: take its max, not its sum.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from processor.funnel.definition import Funnel
from processor.funnel.outputs import Output
from processor.funnel.state import Attribution
from processor.funnel.timefmt import parse_time
from processor.funnel.touchpoint import REASONS
from processor.worker.breakdownmetrics import BreakdownMetrics
from processor.worker.state.stagecounts import StageCounts

ENTRY = "none"  # from_stage of a transition into the funnel
# Seconds, from a minute to a year: funnel stages last hours to months.
DURATION_BUCKETS = (60, 600, 3600, 6 * 3600, 86400, 3 * 86400, 7 * 86400, 14 * 86400, 30 * 86400, 60 * 86400,
                    90 * 86400, 180 * 86400, 365 * 86400)  # fmt: skip
LATENESS_BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600)


class StageGauges(Collector):
    """funnel_contacts_in_stage and funnel_contacts_dropped_in_stage, read when scraped."""

    def __init__(self, counts: StageCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[GaugeMetricFamily]:
        active = GaugeMetricFamily(
            "funnel_contacts_in_stage", "Contacts whose current stage this is (not dropped)", labels=["funnel", "stage"]
        )
        dropped = GaugeMetricFamily(
            "funnel_contacts_dropped_in_stage",
            "Contacts dropped (stalled or lost) in this stage and not moved on since",
            labels=["funnel", "stage"],
        )
        for funnel, stages in self.counts.table().items():
            for stage, figures in stages.items():
                active.add_metric([funnel, stage], figures["active"])
                dropped.add_metric([funnel, stage], figures["dropped"])
        yield active
        yield dropped


class FunnelMetrics:
    def __init__(self, registry: CollectorRegistry, funnels: Sequence[Funnel], counts: StageCounts) -> None:
        self.touchpoints = Counter("funnel_touchpoints", "Touchpoints processed", registry=registry)
        self.duplicates = Counter(
            "funnel_duplicate_touchpoints", "Touchpoints ignored as duplicates", registry=registry
        )
        self.late = Counter("funnel_late_touchpoints", "Touchpoints older than one already seen", registry=registry)
        self.recovered = Counter(
            "funnel_recovered_touchpoints",
            "Touchpoints Faust left out after taking on a partition, fetched and processed"
            " (processor/worker/patches/skippedrecords.py)",
            registry=registry,
        )
        self.redelivered = Counter(
            "funnel_redelivered_touchpoints",
            "Touchpoints delivered again after a crash and already applied (only the clock moved)",
            registry=registry,
        )
        self.dead_letters = Counter("funnel_dead_letters", "Records refused, by reason", ["reason"], registry=registry)
        self.entries = Counter(
            "funnel_stage_entries", "Contacts entering a stage", ["funnel", "stage"], registry=registry
        )
        self.transitions = Counter(
            "funnel_transitions", "Stage transitions", ["funnel", "from_stage", "to_stage"], registry=registry
        )
        self.dropoffs = Counter("funnel_dropoffs", "Drop-offs", ["funnel", "stage", "reason"], registry=registry)
        self.time_in_stage = Histogram(
            "funnel_time_in_stage_seconds",
            "Time in a stage before moving on, in event time",
            ["funnel", "stage"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.time_to_convert = Histogram(
            "funnel_time_to_convert_seconds",
            "Time from entering the funnel to entering a stage, in event time",
            ["funnel", "stage"],
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        self.event_time_lag = Gauge(
            "funnel_event_time_lag_seconds",
            "Wall clock minus the latest event time, largest over the partitions this worker owns",
            registry=registry,
        )
        self.deadline_lateness = Histogram(
            "funnel_deadline_lateness_seconds",
            "How far the clock had passed a stall deadline when it fired, in event time",
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.positions = Gauge(
            "funnel_stage_position",
            "Place of the stage in its funnel, from 1 (for ordering stages; take max over workers, not sum)",
            ["funnel", "stage"],
            registry=registry,
        )
        registry.register(StageGauges(counts))
        self.breakdowns = BreakdownMetrics(funnels)
        registry.register(self.breakdowns)
        self._moves: dict[tuple[str, str | None, str], tuple[Any, Any, Any, Any]] = {}
        self._drops: dict[tuple[str, str, str], Any] = {}
        for reason in REASONS:
            self.dead_letters.labels(reason)
        for funnel in funnels:
            for i, stage in enumerate(funnel.stages):
                self.positions.labels(funnel.name, stage).set(i + 1)
                self.entries.labels(funnel.name, stage)
                self.time_in_stage.labels(funnel.name, stage)
                self.time_to_convert.labels(funnel.name, stage)
                for reason in ("lost", "stalled"):
                    self.dropoffs.labels(funnel.name, stage, reason)
                for before in (ENTRY, *funnel.stages[:i]):
                    self.transitions.labels(funnel.name, before, stage)

    def count(
        self, outputs: Sequence[Output], clock_s: float | None = None, attributions: Sequence[Attribution] | None = None
    ) -> None:
        """Count outputs; `clock_s` (event time, seconds) measures how late stalls fired, and
        `attributions` (one per output, from the engine) let the breakdowns count them too."""
        self.breakdowns.count(outputs, attributions)
        moves, drops = self._moves, self._drops
        for output in outputs:
            if output["kind"] == "transition":
                key = (output["funnel"], output["from_stage"], output["to_stage"])
                move = moves.get(key)
                if move is None:
                    move = moves[key] = self._move(*key)
                entries, transitions, to_convert, in_stage = move
                entries.inc()
                transitions.inc()
                to_convert.observe(output["since_funnel_entry_s"])
                previous = output["time_in_previous_stage_s"]
                if in_stage is not None and previous is not None:
                    in_stage.observe(previous)
            else:
                reason = output["reason"]
                key = (output["funnel"], output["stage"], reason)
                drop = drops.get(key)
                if drop is None:
                    drop = drops[key] = self.dropoffs.labels(*key)
                drop.inc()
                if reason == "stalled" and clock_s is not None:  # a stall occurs at its deadline
                    deadline_s = parse_time(output["occurred_at"]) / 1_000_000
                    self.deadline_lateness.observe(max(0.0, clock_s - deadline_s))

    def _move(self, funnel: str, from_stage: str | None, to_stage: str) -> tuple[Any, Any, Any, Any]:
        """The series one transition counts in (looked up once per label set: labels() is slow)."""
        return (
            self.entries.labels(funnel, to_stage),
            self.transitions.labels(funnel, from_stage or ENTRY, to_stage),
            self.time_to_convert.labels(funnel, to_stage),
            None if from_stage is None else self.time_in_stage.labels(funnel, from_stage),
        )
