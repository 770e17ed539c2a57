"""The breakdown metrics: why contacts move and drop, counted per breakdown value.

Beside the unbroken families of `processor.worker.metrics`, and in their own families:

- funnel_breakdown_entries_total{funnel, breakdown, value}: contacts entering the funnel
- funnel_breakdown_stage_entries_total{funnel, stage, breakdown, value}: entering a stage
- funnel_breakdown_stage_exits_total{funnel, stage, breakdown, value}: moving on from it
- funnel_breakdown_dropoffs_total{funnel, stage, reason, breakdown, value}: dropping off in it
- funnel_dropoffs_by_last_touch_total{funnel, stage, reason, last_touch_type}

A value belongs to a stage visit (docs/semantics.md#breakdowns): the contact's first
touchpoint's channel or campaign, or the channel of the touchpoint that moved the contact
into the stage; a visit's entry, exit and drop-off count under the same value, so a
value's conversion is a ratio of like with like. Values are bounded by the funnel's
breakdowns (its values, then `other`, then `none` for a missing one), last touch types by
the canonical vocabulary (then `other`): whatever arrives, the series are those listed in
`series_count`, all present at 0 from the start.

Counting costs a few increments of plain integers per output, in flat lists indexed by
stage and value: no label lookup, no lock. The lists are read into metric families when
/metrics is scraped. They only grow, so sums over any number of workers are right.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from processor.funnel.definition import BREAKDOWNS, Breakdown, Funnel
from processor.funnel.outputs import Output, last_touch_type
from processor.funnel.state import Attribution
from processor.funnel.vocabulary import CANONICAL_TYPES, OTHER

REASONS = ("lost", "stalled")
# An Attribution's fields follow BREAKDOWNS: first channel, first campaign, then the channel that
# opened the visit (the trigger channel of the stage a move leaves or a drop-off ends).
TRIGGER = BREAKDOWNS.index("trigger_channel")
LAST_TOUCH_TYPES = (*CANONICAL_TYPES, OTHER)
_TYPE_SLOT = {kind: i for i, kind in enumerate(CANONICAL_TYPES)}
_OTHER_TYPE = len(CANONICAL_TYPES)


def series_count(funnel: Funnel) -> dict[str, int]:
    """The series each family holds for a funnel: per breakdown (by its name), and for the
    drop-offs by last touch type. V values (configured + other + none), S stages, N of them
    non-terminal: a breakdown has V x (1 + S + (S - 1) + 2N); last touch, 2N x 32."""
    stages, droppable = len(funnel.stages), sum(not terminal for terminal in funnel.terminal)
    counts = {b.by: len(b.labels) * (1 + stages + (stages - 1) + len(REASONS) * droppable) for b in funnel.breakdowns}
    counts["last_touch_type"] = len(REASONS) * droppable * len(LAST_TOUCH_TYPES)
    return counts


class _Dimension:
    """One breakdown of one funnel: its counts, each list indexed by stage x value."""

    __slots__ = ("by", "drops", "entries", "exits", "kind", "labels", "none", "other", "slot", "stage_entries", "width")

    def __init__(self, breakdown: Breakdown, stages: int) -> None:
        self.by, self.kind, self.labels = breakdown.by, BREAKDOWNS.index(breakdown.by), breakdown.labels
        self.width = width = len(self.labels)
        self.slot = {value: i for i, value in enumerate(breakdown.values)}
        self.other, self.none = width - 2, width - 1
        self.entries = [0] * width
        self.stage_entries = [0] * (stages * width)
        self.exits = [0] * (stages * width)
        self.drops = [0] * (stages * len(REASONS) * width)


class _FunnelCounts:
    __slots__ = ("dimensions", "funnel", "last_touch", "stage")

    def __init__(self, funnel: Funnel) -> None:
        self.funnel = funnel
        self.stage = {name: i for i, name in enumerate(funnel.stages)}
        self.dimensions = tuple(_Dimension(b, len(funnel.stages)) for b in funnel.breakdowns)
        self.last_touch = [0] * (len(funnel.stages) * len(REASONS) * len(LAST_TOUCH_TYPES))


class BreakdownMetrics(Collector):
    def __init__(self, funnels: Sequence[Funnel]) -> None:
        self._funnels = {funnel.name: _FunnelCounts(funnel) for funnel in funnels}

    def count(self, outputs: Sequence[Output], attributions: Sequence[Attribution] | None) -> None:
        """Count outputs; breakdowns need their attributions (`Engine.take_attributions`), in order."""
        funnels = self._funnels
        types = len(LAST_TOUCH_TYPES)
        paired: Sequence[Attribution | None] = [None] * len(outputs) if attributions is None else attributions
        for output, attribution in zip(outputs, paired, strict=True):
            counts = funnels.get(output["funnel"])
            if counts is None:
                continue
            stage_of = counts.stage
            if output["kind"] == "transition":
                if attribution is None:
                    continue
                into, source = stage_of[output["to_stage"]], output["from_stage"]
                trigger = output["trigger"]["channel"]
                for dim in counts.dimensions:
                    kind, width = dim.kind, dim.width
                    raw = trigger if kind == TRIGGER else attribution[kind]
                    value = dim.none if raw is None else dim.slot.get(raw, dim.other)
                    dim.stage_entries[into * width + value] += 1
                    if source is None:
                        dim.entries[value] += 1
                        continue
                    if kind == TRIGGER:  # the visit left counts under the channel that opened it
                        raw = attribution[kind]
                        value = dim.none if raw is None else dim.slot.get(raw, dim.other)
                    dim.exits[stage_of[source] * width + value] += 1
                continue
            stage = stage_of[output["stage"]] * 2 + (output["reason"] == "stalled")
            last = last_touch_type(output)
            counts.last_touch[stage * types + _TYPE_SLOT.get(last or "", _OTHER_TYPE)] += 1
            if attribution is not None:
                for dim in counts.dimensions:
                    raw = attribution[dim.kind]
                    value = dim.none if raw is None else dim.slot.get(raw, dim.other)
                    dim.drops[stage * dim.width + value] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        value_labels = ["funnel", "breakdown", "value"]
        entries = CounterMetricFamily(
            "funnel_breakdown_entries", "Contacts entering the funnel, by breakdown value", labels=value_labels
        )
        stage_labels = ["funnel", "stage", "breakdown", "value"]
        stage_entries = CounterMetricFamily(
            "funnel_breakdown_stage_entries", "Contacts entering a stage, by breakdown value", labels=stage_labels
        )
        exits = CounterMetricFamily(
            "funnel_breakdown_stage_exits",
            "Contacts moving on from a stage (to any later one), by the breakdown value of their visit",
            labels=stage_labels,
        )
        drops = CounterMetricFamily(
            "funnel_breakdown_dropoffs",
            "Drop-offs, by the breakdown value of the stage visit",
            labels=["funnel", "stage", "reason", "breakdown", "value"],
        )
        last = CounterMetricFamily(
            "funnel_dropoffs_by_last_touch",
            "Drop-offs, by the type of the last touchpoint sent before the drop",
            labels=["funnel", "stage", "reason", "last_touch_type"],
        )
        for counts in self._funnels.values():
            funnel = counts.funnel
            name, stages = funnel.name, funnel.stages
            droppable = [(i, stage) for i, stage in enumerate(stages) if not funnel.terminal[i]]
            for dim in counts.dimensions:
                width, labels = dim.width, dim.labels
                for v, value in enumerate(labels):
                    entries.add_metric([name, dim.by, value], dim.entries[v])
                for i, stage in enumerate(stages):
                    for v, value in enumerate(labels):
                        stage_entries.add_metric([name, stage, dim.by, value], dim.stage_entries[i * width + v])
                        if i < len(stages) - 1:
                            exits.add_metric([name, stage, dim.by, value], dim.exits[i * width + v])
                for i, stage in droppable:
                    for r, reason in enumerate(REASONS):
                        for v, value in enumerate(labels):
                            drops.add_metric([name, stage, reason, dim.by, value], dim.drops[(i * 2 + r) * width + v])
            types = len(LAST_TOUCH_TYPES)
            for i, stage in droppable:
                for r, reason in enumerate(REASONS):
                    for t, kind in enumerate(LAST_TOUCH_TYPES):
                        last.add_metric([name, stage, reason, kind], counts.last_touch[(i * 2 + r) * types + t])
        yield from (entries, stage_entries, exits, drops, last)
