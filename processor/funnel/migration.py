"""Changing a funnel under stored journeys: where each stored position goes, decided by stage name.

A stored position holds its stage as an index into the stage list its journey was written
under, which is cheap to keep and to compare on the hot path. What those indexes mean is
recorded apart, once per set of definitions (a `Recorded` layout: each funnel's `Shape`, the
stage names in order). When the configured funnels differ from a recorded layout, `plan`
decides, funnel by funnel, where each recorded stage goes in the configured one:

- a stage still listed keeps its contacts, whatever moved around it (stages added anywhere,
  rules, stall times, terminal stages changed): the name decides, not the index;
- a stage the definition says it was renamed from (`renamed_from`) goes to its new name;
- a stage the definition says was removed (`removed`) goes to the stage named there;
- any other stage is stranded: its contacts have nowhere to go, and the worker refuses to
  start if any contact is in one (the caller counts them);
- a funnel no longer configured keeps its positions as they are (dormant), under the shape
  it was last recorded with, so that configuring it again resumes them.

`migrate` then moves a state's positions; it keeps everything else (entry time, drop, sequence),
emits nothing, and is applied when a stored journey is read, not per touchpoint. Deadlines
follow from the configured stall times when they are next computed, so a deadline a shorter
stall time puts in the past fires as an ordinary stall on the next clock advance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from processor.funnel.definition import Funnel
from processor.funnel.state import ContactState, Position

Moves = tuple[int | None, ...]  # per stage index of a recorded shape: its index now, None: stranded


class Unmigratable(ValueError):
    """A stored position whose stage the configured definition cannot place."""


@dataclass(frozen=True, slots=True)
class Shape:
    """A funnel as its stored positions know it: the name, the stages in order, and what the
    definition says of stage names it no longer lists."""

    name: str
    stages: tuple[str, ...]
    former: Mapping[str, str] = field(default_factory=dict)  # former name -> stage
    removed: Mapping[str, str] = field(default_factory=dict)  # removed stage -> stage its contacts go to

    @classmethod
    def of(cls, funnel: Funnel) -> Shape:
        return cls(funnel.name, funnel.stages, dict(funnel.former), dict(funnel.removed))

    def place(self, stage: str) -> int | None:
        """The index here of a stage that had this name when a journey was stored, or None."""
        name = self.former.get(stage) or self.removed.get(stage) or stage
        try:
            return self.stages.index(name)
        except ValueError:
            return None

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "stages": list(self.stages),
            "renamed": dict(self.former),
            "removed": dict(self.removed),
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> Shape:
        return cls(str(doc["name"]), tuple(doc["stages"]), dict(doc.get("renamed", {})), dict(doc.get("removed", {})))


def moves(old: Shape, new: Shape) -> Moves:
    """Where each stage of `old` goes in `new`, by name."""
    return tuple(new.place(stage) for stage in old.stages)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A set of definitions journeys were written under: its digest (as entry headers carry it)
    and its funnels' shapes, in the order of the headers' stage slots."""

    digest: bytes
    shapes: tuple[Shape, ...]


@dataclass(frozen=True, slots=True)
class Stranded:
    """A recorded stage the configured definition cannot place: the funnel, the stage, and
    where entry headers show it (digest, slot, stage index)."""

    funnel: str
    stage: str
    places: tuple[tuple[bytes, int, int], ...]


@dataclass(frozen=True, slots=True)
class Plan:
    """What the configured funnels make of every recorded layout."""

    shapes: tuple[Shape, ...]  # configured funnels, then dormant ones: the layout entries are written in
    configured: int  # how many of `shapes` are configured funnels
    moves: Mapping[bytes, Mapping[str, Moves]]  # per recorded digest, per funnel whose indexes change
    stranded: tuple[Stranded, ...]
    recorded: frozenset[bytes]  # every digest recorded (an entry with another was written after this plan)
    notes: tuple[str, ...]  # one line per change, for the start-up log

    @property
    def dormant(self) -> tuple[Shape, ...]:
        return self.shapes[self.configured :]


def plan(funnels: Sequence[Funnel], recorded: Sequence[Recorded]) -> Plan:
    """Compare the configured funnels with every recorded layout (oldest first)."""
    current = {f.name: Shape.of(f) for f in funnels}
    latest: dict[str, Shape] = {}  # each funnel's most recently recorded shape
    for layout in recorded:
        for shape in layout.shapes:
            latest[shape.name] = shape
    dormant = {name: shape for name, shape in latest.items() if name not in current}
    target = {**current, **dormant}
    all_moves: dict[bytes, dict[str, Moves]] = {}
    stranded: dict[tuple[str, str], list[tuple[bytes, int, int]]] = {}
    for layout in recorded:
        changed: dict[str, Moves] = {}
        for slot, shape in enumerate(layout.shapes):
            moved = moves(shape, target[shape.name])
            if moved != tuple(range(len(shape.stages))):
                changed[shape.name] = moved
            for index, place in enumerate(moved):
                if place is None:
                    stranded.setdefault((shape.name, shape.stages[index]), []).append((layout.digest, slot, index))
        if changed:
            all_moves[layout.digest] = changed
    notes = []
    for name, shape in current.items():
        before = latest.get(name)
        if before is None:
            notes.append(f"funnel {name!r}: new; contacts enter it on their next matching touchpoint")
        elif before.stages != shape.stages:
            notes.append(
                f"funnel {name!r}: stages {list(before.stages)} -> {list(shape.stages)}; positions follow by name"
            )
    notes += [f"funnel {name!r}: no longer configured; its positions are kept, dormant" for name in dormant]
    return Plan(
        shapes=(*current.values(), *dormant.values()),
        configured=len(current),
        moves=all_moves,
        stranded=tuple(Stranded(f, s, tuple(p)) for (f, s), p in stranded.items()),
        recorded=frozenset(layout.digest for layout in recorded),
        notes=tuple(notes),
    )


def migrate(state: ContactState, moved: Mapping[str, Moves]) -> ContactState:
    """The state with its positions moved (`Plan.moves` of the layout it was stored under);
    funnels not named keep theirs. Nothing else changes, and nothing is emitted."""
    positions: dict[str, Position] | None = None
    for name, pos in state.positions.items():
        table = moved.get(name)
        if table is None:
            continue
        place = table[pos.stage] if pos.stage < len(table) else None
        if place is None:
            raise Unmigratable(f"funnel {name!r}: a stored position at stage index {pos.stage} has no stage to go to")
        if place != pos.stage:
            if positions is None:
                positions = dict(state.positions)
            positions[name] = pos._replace(stage=place)
    return state if positions is None else state._replace(positions=positions)
