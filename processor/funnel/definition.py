"""Funnel definitions: stages in order, matching rules, lost rules, stall times.

`compile_funnel` turns a definition document (already checked against
schemas/funnel-definition) into a `Funnel` with lookup tables built for the hot
path, refusing funnels that cannot work with an error naming the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from processor.funnel.timefmt import parse_duration
from processor.funnel.vocabulary import DEFAULT_CHANNELS, NONE, OTHER


class DefinitionError(ValueError):
    """A funnel definition that cannot work. `where` names the field."""

    def __init__(self, source: str, where: str, problem: str) -> None:
        self.source, self.where, self.problem = source, where, problem
        super().__init__(f"{source}: {where}: {problem}" if where else f"{source}: {problem}")


# A property condition: (key, operator, operand).
Condition = tuple[str, str, Any]
_NUMERIC_OPS = {"gt", "gte", "lt", "lte"}


@dataclass(frozen=True, slots=True)
class Rule:
    """Matches touchpoints of one type; `stage` is -1 for a lost rule."""

    stage: int
    type: str
    nth: int = 1
    channels: frozenset[str] | None = None
    properties: tuple[Condition, ...] = ()

    def matches(self, channel: str | None, properties: Mapping[str, Any] | None, count: int) -> bool:
        if count < self.nth:
            return False
        if self.channels is not None and channel not in self.channels:
            return False
        return all(_holds(properties, key, op, operand) for key, op, operand in self.properties)


def _equal(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0."""
    return bool(a == b) and isinstance(a, bool) == isinstance(b, bool)


def _holds(properties: Mapping[str, Any] | None, key: str, op: str, operand: Any) -> bool:
    present = properties is not None and key in properties
    if op == "exists":
        return present is bool(operand)
    if not present:
        return False
    assert properties is not None
    value = properties[key]
    if op == "eq":
        return _equal(value, operand)
    if op == "ne":
        return not _equal(value, operand)
    if op == "in":
        return any(_equal(value, item) for item in operand)
    if op == "not_in":
        return not any(_equal(value, item) for item in operand)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if op == "gt":
        return bool(value > operand)
    if op == "gte":
        return bool(value >= operand)
    if op == "lt":
        return bool(value < operand)
    return bool(value <= operand)  # lte


# What a funnel's figures can be broken down by, in the order they are counted and shown.
BREAKDOWNS = ("first_channel", "first_campaign", "trigger_channel")
CHANNEL_BREAKDOWNS = frozenset({"first_channel", "trigger_channel"})


@dataclass(frozen=True, slots=True)
class Breakdown:
    """One breakdown of a funnel's figures: `by` one of BREAKDOWNS, with its values.

    Its labels are the values, then OTHER for any other value and NONE for a missing one,
    so a metric broken down by it has a bounded number of series whatever arrives.
    """

    by: str
    values: tuple[str, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return (*self.values, OTHER, NONE)


def breakdowns_of(spec: Mapping[str, Sequence[str] | None]) -> tuple[Breakdown, ...]:
    """Breakdowns from {by: values}, in BREAKDOWNS order; None values: the default channels.

    The values are checked by the definition schema (or the worker's setting): no 'other' or
    'none', no repeats. A campaign breakdown must name its values (ValueError).
    """
    made = []
    for by in BREAKDOWNS:
        if by in spec:
            values = spec[by]
            if values is None and by not in CHANNEL_BREAKDOWNS:
                raise ValueError(f"{by} needs its values listed (there is no default list of campaigns)")
            made.append(Breakdown(by, DEFAULT_CHANNELS if values is None else tuple(values)))
    return tuple(made)


@dataclass(frozen=True, slots=True)
class Funnel:
    name: str
    stages: tuple[str, ...]
    terminal: tuple[bool, ...]
    stall_after: tuple[int | None, ...]  # microseconds, None when a stage never stalls
    rules: tuple[Rule, ...]
    lost: tuple[Rule, ...]
    # Built from the above: rules by type, furthest stage first; lost rules by type;
    # the types whose counts an `nth` rule needs, with the largest nth asked for;
    # every type the funnel reacts to.
    by_type: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False)
    lost_by_type: Mapping[str, tuple[Rule, ...]] = field(default_factory=dict, compare=False)
    counted: Mapping[str, int] = field(default_factory=dict, compare=False)
    types: frozenset[str] = field(default=frozenset(), compare=False)  # every type any rule names
    breakdowns: tuple[Breakdown, ...] = ()  # metrics only: the core never reads them
    # After a change of the stage list (processor/funnel/migration.py): a former stage name ->
    # the stage it is now called (from `renamed_from`), and a removed stage -> the stage its
    # contacts move to (from `removed`). Only stored journeys read them.
    former: Mapping[str, str] = field(default_factory=dict)
    removed: Mapping[str, str] = field(default_factory=dict)


def _index(rules: Sequence[Rule]) -> dict[str, tuple[Rule, ...]]:
    grouped: dict[str, list[Rule]] = {}
    for rule in rules:
        grouped.setdefault(rule.type, []).append(rule)
    return {t: tuple(sorted(rs, key=lambda r: -r.stage)) for t, rs in grouped.items()}


def _conditions(spec: Mapping[str, Any], where: str, source: str) -> tuple[Condition, ...]:
    out: list[Condition] = []
    for key, cond in spec.items():
        if not isinstance(cond, dict):
            out.append((key, "eq", cond))
            continue
        for op, operand in cond.items():
            if op in _NUMERIC_OPS and (isinstance(operand, bool) or not isinstance(operand, int | float)):
                raise DefinitionError(source, f"{where}.{key}.{op}", f"needs a number, got {operand!r}")
            out.append((key, op, operand))
    return tuple(out)


def _rules(items: Sequence[Mapping[str, Any]], where: str, source: str, stages: Sequence[str]) -> list[Rule]:
    rules: list[Rule] = []
    for i, item in enumerate(items):
        here = f"{where}[{i}]"
        stage = -1
        if "stage" in item:
            if item["stage"] not in stages:
                raise DefinitionError(source, f"{here}.stage", f"unknown stage {item['stage']!r}")
            stage = stages.index(item["stage"])
        types = item["type"] if isinstance(item["type"], list) else [item["type"]]
        channel = item.get("channel")
        channels = None if channel is None else frozenset([channel] if isinstance(channel, str) else channel)
        props = _conditions(item.get("properties", {}), f"{here}.properties", source)
        rules.extend(Rule(stage, t, item.get("nth", 1), channels, props) for t in types)
    return rules


def _stage_map(doc: Mapping[str, Any], key: str, stages: Sequence[str], source: str) -> Mapping[str, Any]:
    value: Mapping[str, Any] = doc.get(key, {})
    for name in value:
        if name not in stages:
            raise DefinitionError(source, f"{key}.{name}", f"unknown stage {name!r}")
    return value


def compile_funnel(doc: Mapping[str, Any], source: str = "<definition>") -> Funnel:
    """Build a Funnel from a schema-valid definition document.

    Refuses what the schema cannot see: duplicate stages, rules or stall times naming
    unknown stages, bad durations, stall times on terminal stages, unreachable stages.
    """
    stages: list[str] = list(doc["stages"])
    if not stages:
        raise DefinitionError(source, "stages", "a funnel needs at least one stage")
    for i, name in enumerate(stages):
        if name in stages[:i]:
            raise DefinitionError(source, f"stages[{i}]", f"duplicate stage name {name!r}")
    rules = _rules(doc["rules"], "rules", source, stages)
    for i, item in enumerate(doc["rules"]):
        if "stage" not in item:
            raise DefinitionError(source, f"rules[{i}]", "a stage rule needs 'stage'")
    lost = _rules(doc.get("lost", []), "lost", source, stages)
    for i, item in enumerate(doc.get("lost", [])):
        if "stage" in item or "nth" in item:
            raise DefinitionError(source, f"lost[{i}]", "a lost rule takes no 'stage' and no 'nth'")

    terminal_names = doc.get("terminal")
    if terminal_names is None:
        terminal_names = [stages[-1]]
    for i, name in enumerate(terminal_names):
        if name not in stages:
            raise DefinitionError(source, f"terminal[{i}]", f"unknown stage {name!r}")
    terminal = tuple(s in terminal_names for s in stages)

    stall_spec = _stage_map(doc, "stall_after", stages, source)
    stall: list[int | None] = []
    for i, name in enumerate(stages):
        if name not in stall_spec:
            stall.append(None)
            continue
        if terminal[i]:
            raise DefinitionError(source, f"stall_after.{name}", "a terminal stage cannot stall")
        try:
            stall.append(parse_duration(stall_spec[name]))
        except ValueError as exc:
            raise DefinitionError(source, f"stall_after.{name}", str(exc)) from None

    reached = {r.stage for r in rules}
    for i, name in enumerate(stages):
        if i not in reached:
            raise DefinitionError(source, "rules", f"no rule leads into stage {name!r}")

    former, removed = _stage_changes(doc, stages, source)
    breakdown_spec = {by: item.get("values") for by, item in doc.get("breakdowns", {}).items()}
    counted: dict[str, int] = {}
    for rule in rules:
        if rule.nth > 1:
            counted[rule.type] = max(counted.get(rule.type, 1), rule.nth)
    return Funnel(
        name=doc["name"],
        stages=tuple(stages),
        terminal=terminal,
        stall_after=tuple(stall),
        rules=tuple(rules),
        lost=tuple(lost),
        by_type=_index(rules),
        lost_by_type=_index(lost),
        counted=counted,
        types=frozenset(r.type for r in (*rules, *lost)),
        breakdowns=breakdowns_of(breakdown_spec),
        former=former,
        removed=removed,
    )


def _stage_changes(doc: Mapping[str, Any], stages: Sequence[str], source: str) -> tuple[dict[str, str], dict[str, str]]:
    """({former name: stage}, {removed stage: stage its contacts move to}) from `renamed_from`
    and `removed`: a former or removed name is no current stage and is given once, a rename
    names a current stage, a removal's target is a current stage."""
    former: dict[str, str] = {}
    for stage, names in _stage_map(doc, "renamed_from", stages, source).items():
        for name in [names] if isinstance(names, str) else names:
            where = f"renamed_from.{stage}"
            if name in stages:
                raise DefinitionError(
                    source, where, f"{name!r} is a stage of this funnel: a stage cannot be renamed from a name in use"
                )
            if name in former:
                raise DefinitionError(source, where, f"{name!r} is already the former name of {former[name]!r}")
            former[name] = stage
    removed: dict[str, str] = {}
    for name, target in doc.get("removed", {}).items():
        where = f"removed.{name}"
        if name in stages:
            raise DefinitionError(source, where, f"{name!r} is still a stage: list only stages taken out of `stages`")
        if name in former:
            raise DefinitionError(
                source, where, f"{name!r} is the former name of {former[name]!r}: renamed, not removed"
            )
        if target not in stages:
            raise DefinitionError(
                source, where, f"unknown stage {target!r}: its contacts must move to a stage of `stages`"
            )
        removed[name] = target
    return former, removed
