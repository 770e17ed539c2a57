"""The funnels an engine runs, indexed once for the per-touchpoint step.

A touchpoint of one type can only move a contact in the funnels that name that type,
and within a funnel only through the rules for that type. `Rulebook` looks both up in
one dict read (`reactions[type]`), in the order the funnels are configured, so the step
never visits a funnel a touchpoint cannot change. A rule with no condition (no `nth`
above 1, no channel, no property test) is stored as None, so matching it costs no call.
Built once per set of funnel definitions (an engine's life), never per touchpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from processor.funnel.definition import Funnel, Rule


class StageRule(NamedTuple):
    stage: int
    test: Rule | None  # None: matches every touchpoint of its type


class Reaction(NamedTuple):
    """How one funnel can react to one touchpoint type."""

    funnel: Funnel
    rules: tuple[StageRule, ...]  # furthest stage first
    lost: tuple[Rule, ...]


@dataclass(frozen=True, slots=True)
class Rulebook:
    funnels: tuple[Funnel, ...]
    counted: Mapping[str, int]  # types whose counts an `nth` rule needs, with the largest nth
    reactions: Mapping[str, tuple[Reaction, ...]]  # type -> the funnels it can change, in configured order
    stalls: tuple[tuple[str, tuple[int | None, ...]], ...]  # (funnel name, stall time per stage), stalling funnels


def counted_types(funnels: Sequence[Funnel]) -> dict[str, int]:
    """Types whose counts any funnel's `nth` rules need, with the largest nth."""
    merged: dict[str, int] = {}
    for funnel in funnels:
        for kind, nth in funnel.counted.items():
            merged[kind] = max(merged.get(kind, 1), nth)
    return merged


def _plain(rule: Rule) -> bool:
    return rule.nth <= 1 and rule.channels is None and not rule.properties


def rulebook(funnels: Sequence[Funnel]) -> Rulebook:
    reactions: dict[str, list[Reaction]] = {}
    for funnel in funnels:
        for kind in sorted(funnel.types):
            rules = tuple(StageRule(r.stage, None if _plain(r) else r) for r in funnel.by_type.get(kind, ()))
            reactions.setdefault(kind, []).append(Reaction(funnel, rules, funnel.lost_by_type.get(kind, ())))
    stalls = tuple((f.name, f.stall_after) for f in funnels if any(s is not None for s in f.stall_after))
    return Rulebook(
        funnels=tuple(funnels),
        counted=counted_types(funnels),
        reactions={kind: tuple(found) for kind, found in reactions.items()},
        stalls=stalls,
    )
