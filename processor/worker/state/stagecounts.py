"""Contacts currently in each stage, per input partition, kept as states change.

Counts are per partition so a worker reports only the partitions it owns, and a
partition's counts leave with it when it moves to another worker. "In a stage"
means the contact's current stage; a contact dropped there (stalled or lost) is
counted apart, as dropped, until it moves on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from processor.funnel.definition import Funnel
from processor.funnel.state import ContactState
from processor.worker.state.entry import Key, Layout

__all__ = ["Key", "StageCounts"]


class StageCounts:
    """Counts under the (funnel, stage, dropped) keys the layout reads a position as (one
    encoding, `Layout.stage_keys`, for counts kept from states and rebuilt from headers)."""

    def __init__(self, funnels: Sequence[Funnel], layout: Layout | None = None) -> None:
        self.funnels = tuple(funnels)
        self.layout = Layout(self.funnels) if layout is None else layout
        self._by_partition: dict[int, Counter[Key]] = {}

    def keys(self, state: ContactState | None) -> list[Key]:
        """The (funnel, stage, dropped) key the state counts under, one per funnel it is in."""
        return [] if state is None else self.layout.keys(state)

    def rebuild(self, partition: int, counts: Mapping[Key, int]) -> None:
        """Start a partition's counts over from its stored contacts' (`journeystore.stored_by_partition`)."""
        self._by_partition[partition] = Counter(counts)

    def apply(self, partition: int, changes: Iterable[tuple[ContactState | None, ContactState]]) -> None:
        counts = self._by_partition.setdefault(partition, Counter())
        keys = self.layout.keys
        for before, after in changes:
            if before is not None:
                if before.positions is after.positions:
                    continue
                counts.subtract(keys(before))
            counts.update(keys(after))

    def drop(self, partition: int) -> None:
        self._by_partition.pop(partition, None)

    def partitions(self) -> list[int]:
        return sorted(self._by_partition)

    def table(self) -> dict[str, dict[str, dict[str, int]]]:
        """{funnel: {stage: {"active": n, "dropped": m}}} over the partitions held, every stage listed."""
        total: Counter[Key] = Counter()
        for counts in self._by_partition.values():
            total.update(counts)
        return {
            f.name: {s: {"active": total[(f.name, s, False)], "dropped": total[(f.name, s, True)]} for s in f.stages}
            for f in self.funnels
        }
