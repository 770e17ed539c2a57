"""Funnel figures from transition and drop-off records, whatever they were read from.

Feed `FunnelStats.add` the decoded output records one by one (from a file, stdin or a
topic); it deduplicates them by `id`, since at-least-once delivery repeats outputs as
exact copies, and keeps only small per-stage tallies. `table` then gives the figures
of one funnel in a stage order, and `plan` the entries needed for a target.

Every stage is entered at most once per contact and funnel, and contacts only move
forward, so counting records counts contacts; and a contact has reached stage i (entered
it or a later one) exactly when one of its transitions goes from before i (or from
outside the funnel) to i or beyond. No per-contact memory is needed beyond the ids.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from statistics import median
from typing import Any

TRANSITION, DROPOFF, DUPLICATE, SKIPPED = "transition", "dropoff", "duplicate", "skipped"


class BadRecord(ValueError):
    """A record that says it is a transition or drop-off but lacks what the figures need."""


@dataclass(frozen=True, slots=True)
class StageFigures:
    stage: str
    entered: int
    converted: int
    converted_rate: float | None  # converted / entered; None when nobody entered, or at the last stage
    stalled: int
    lost: int
    median_time_s: float | None  # over transitions out of the stage; None when none
    reached: int  # contacts who entered this stage or a later one
    reach_rate: float | None  # reached / funnel entries


@dataclass(frozen=True, slots=True)
class FunnelTable:
    funnel: str
    entries: int  # transitions with from_stage null
    stages: tuple[StageFigures, ...]
    inferred: tuple[str, ...]  # stages ordered from the records, not from a definition


@dataclass(frozen=True, slots=True)
class Plan:
    target: int
    stage: str
    reach_rate: float | None  # None when nothing reached the stage yet
    entries_needed: int | None


@dataclass(slots=True)
class _Tally:
    moves: Counter[tuple[str | None, str]] = field(default_factory=Counter)  # (from, to) -> transitions
    times: dict[str, list[float]] = field(default_factory=dict)  # from_stage -> time_in_previous_stage_s
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> drop-offs
    seen: dict[str, int] = field(default_factory=dict)  # stage -> first-seen rank
    edges: set[tuple[str, str]] = field(default_factory=set)  # stage a comes before stage b
    records: int = 0

    def note(self, *stages: str) -> None:
        for stage in stages:
            self.seen.setdefault(stage, len(self.seen))


def _text(doc: dict[str, Any], name: str, kind: str) -> str:
    value = doc.get(name)
    if type(value) is not str or not value:
        raise BadRecord(f"{kind} record without a string {name!r}")
    return value


def _number(value: Any) -> bool:
    return type(value) is int or type(value) is float


# Something else to count each record with (`processor.tools.breakdownstats`): it checks a record
# and returns the step that counts it, which runs only if the record is no duplicate.
Also = Callable[[str, dict[str, Any]], Callable[[], None]]


def _stages_renamed(doc: dict[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    """The record with every stage name it holds under its name now."""
    copy = dict(doc)
    for key in ("from_stage", "to_stage", "stage"):
        value = copy.get(key)
        if type(value) is str:
            copy[key] = names.get(value, value)
    skipped = copy.get("skipped")
    if type(skipped) is list:
        copy["skipped"] = [names.get(s, s) if type(s) is str else s for s in skipped]
    return copy


class FunnelStats:
    """With `renamed` ({funnel: {former stage name: stage}}, from definitions' `renamed_from`),
    records written before a rename count under the stage's name now, with those after it."""

    def __init__(self, also: Also | None = None, renamed: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.ids: set[str] = set()
        self.counts: Counter[str] = Counter()  # TRANSITION, DROPOFF, DUPLICATE, SKIPPED
        self._tallies: dict[str, _Tally] = {}
        self._also = also
        self._renamed = {f: names for f, names in (renamed or {}).items() if names}

    def add(self, doc: Any) -> str:
        """Count one decoded record; returns what it was. Raises BadRecord."""
        kind = doc.get("kind") if type(doc) is dict else None
        if kind not in (TRANSITION, DROPOFF):
            self.counts[SKIPPED] += 1
            return SKIPPED
        record_id = _text(doc, "id", kind)
        funnel = _text(doc, "funnel", kind)
        names = self._renamed.get(funnel)
        if names is not None:
            doc = _stages_renamed(doc, names)
        apply = self._transition(doc) if kind == TRANSITION else self._dropoff(doc)
        also = None if self._also is None else self._also(str(kind), doc)
        if record_id in self.ids:
            self.counts[DUPLICATE] += 1
            return DUPLICATE
        self.ids.add(record_id)
        tally = self._tallies.setdefault(funnel, _Tally())
        tally.records += 1
        apply(tally)
        if also is not None:
            also()
        self.counts[kind] += 1
        return str(kind)

    def _transition(self, doc: dict[str, Any]) -> Callable[[_Tally], None]:
        to_stage = _text(doc, "to_stage", TRANSITION)
        source = doc.get("from_stage")
        skipped = doc.get("skipped", [])
        spent = doc.get("time_in_previous_stage_s")
        if source is not None and (type(source) is not str or not source):
            raise BadRecord("transition record with a 'from_stage' that is neither null nor a string")
        if type(skipped) is not list or not all(type(s) is str and s for s in skipped):
            raise BadRecord("transition record whose 'skipped' is not a list of stage names")
        if spent is not None and not _number(spent):
            raise BadRecord("transition record whose 'time_in_previous_stage_s' is not a number")

        def apply(tally: _Tally) -> None:
            path = ([source] if source else []) + skipped + [to_stage]
            tally.note(*path)
            tally.edges.update(pairwise(path))
            tally.moves[source, to_stage] += 1
            if source is not None and spent is not None:
                tally.times.setdefault(source, []).append(float(spent))

        return apply

    def _dropoff(self, doc: dict[str, Any]) -> Callable[[_Tally], None]:
        stage = _text(doc, "stage", DROPOFF)
        reason = doc.get("reason")
        if reason not in ("lost", "stalled"):
            raise BadRecord("dropoff record whose 'reason' is neither 'lost' nor 'stalled'")

        def apply(tally: _Tally) -> None:
            tally.note(stage)
            tally.drops[stage, str(reason)] += 1

        return apply

    def funnels(self) -> list[str]:
        """Funnels with at least one counted record, in the order first seen."""
        return list(self._tallies)

    def records(self, funnel: str) -> int:
        tally = self._tallies.get(funnel)
        return 0 if tally is None else tally.records

    def table(self, funnel: str, stages: Sequence[str] | None = None) -> FunnelTable:
        """The figures of `funnel` with `stages` in that order (a definition's), or inferred.

        Stages seen in the records but missing from `stages` follow them, in inferred order.
        """
        tally = self._tallies.get(funnel, _Tally())
        given = list(stages or ())
        extra = [s for s in _infer_order(tally) if s not in given]
        entered: Counter[str] = Counter()
        converted: Counter[str] = Counter()
        for (source, to), n in tally.moves.items():
            entered[to] += n
            if source is not None:
                converted[source] += n
        moves = Moves(entered, converted, tally.times, tally.drops, tally.moves)
        return FunnelTable(funnel, moves.entries(), moves.rows(given + extra), tuple(extra))


@dataclass(slots=True)
class Moves:
    """What a funnel table is computed from; `processor.tools.breakdownstats` fills one per breakdown value.

    `crossings` are transitions (from, to), from None on entry: a contact has reached stage i
    when one of them goes from before i (or from outside the funnel) to i or beyond.
    """

    entered: Counter[str] = field(default_factory=Counter)  # stage -> contacts who entered it
    converted: Counter[str] = field(default_factory=Counter)  # stage -> contacts who moved on from it
    times: dict[str, list[float]] = field(default_factory=dict)  # stage -> time in it before moving on
    drops: Counter[tuple[str, str]] = field(default_factory=Counter)  # (stage, reason) -> drop-offs
    crossings: Counter[tuple[str | None, str]] = field(default_factory=Counter)

    def entries(self) -> int:
        return sum(n for (source, _), n in self.crossings.items() if source is None)

    def rows(self, order: Sequence[str]) -> tuple[StageFigures, ...]:
        rank = {stage: i for i, stage in enumerate(order)}
        entries = self.entries()
        rows = []
        for i, stage in enumerate(order):
            entered, converted = self.entered[stage], self.converted[stage]
            reached = sum(
                n
                for (source, to), n in self.crossings.items()
                if rank.get(to, -1) >= i and (source is None or rank.get(source, len(order)) < i)
            )
            times = self.times.get(stage)
            rows.append(
                StageFigures(
                    stage=stage,
                    entered=entered,
                    converted=converted,
                    converted_rate=converted / entered if entered and i < len(order) - 1 else None,
                    stalled=self.drops[stage, "stalled"],
                    lost=self.drops[stage, "lost"],
                    median_time_s=median(times) if times else None,
                    reached=reached,
                    reach_rate=reached / entries if entries else None,
                )
            )
        return tuple(rows)


def plan(table: FunnelTable, target: int, stage: str) -> Plan:
    """Entries needed at the top to get `target` contacts to `stage` at current rates."""
    row = next((r for r in table.stages if r.stage == stage), None)
    if row is None or not row.reached or not table.entries:
        return Plan(target, stage, None, None)
    needed = -(-target * table.entries // row.reached)  # ceil(target / (reached / entries)), in integers
    return Plan(target, stage, row.reached / table.entries, needed)


def _infer_order(tally: _Tally) -> list[str]:
    """Stages ordered so that every seen move goes forward; ties by first sighting.

    Consistent records always admit such an order; should they not (a cycle), the
    earliest-seen stage left is placed next.
    """
    before: dict[str, set[str]] = {stage: set() for stage in tally.seen}
    for a, b in tally.edges:
        if a != b:
            before[b].add(a)
    order: list[str] = []
    remaining = sorted(tally.seen, key=tally.seen.__getitem__)
    while remaining:
        ready = next((s for s in remaining if not before[s]), remaining[0])
        order.append(ready)
        remaining.remove(ready)
        for deps in before.values():
            deps.discard(ready)
    return order
