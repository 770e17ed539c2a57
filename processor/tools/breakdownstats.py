"""Funnel figures per breakdown value, from transition and drop-off records (`report --by`).

The same breakdowns the worker's metrics count (`processor.worker.breakdownmetrics`), with the
values as they are, unbounded, and computed from outputs alone. A value belongs to a
stage visit (docs/semantics.md#breakdowns), so the records are joined per contact and
funnel: a transition carries the contact's first touch and the channel that moved it
into `to_stage`; a drop-off or a move out of a stage takes the value of the transition
into that stage (each stage is entered at most once per contact and funnel). Entries
at the top and "reached" count contacts by the value of their entry into the funnel.
A record whose stage entry is not in the input has no value: it is left out, and counted.

`last_touch_type` counts drop-offs only: by the type of the contact's last touchpoint
before the drop (for a loss, the touchpoint before the lost one).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from processor.funnel.definition import BREAKDOWNS
from processor.funnel.outputs import DroppedOff, last_touch_type
from processor.tools.funnelstats import DROPOFF, BadRecord, FunnelTable, Moves

BY = (*BREAKDOWNS, "last_touch_type")
_UNKNOWN = object()  # a record whose value the input cannot tell


@dataclass(slots=True)
class _Contact:
    """One contact in one funnel: its first touch, and the channel that opened each stage visit."""

    first: tuple[str | None, str | None] | None = None  # (channel, campaign)
    visits: dict[str, str | None] = field(default_factory=dict)  # stage -> trigger channel
    entry: str | None = None  # the stage it entered the funnel at


@dataclass(frozen=True, slots=True)
class ValueFigures:
    value: str | None  # None: the value was missing
    table: FunnelTable  # for last_touch_type, only the drop-off columns mean anything


class BreakdownStats:
    """Feed it the records FunnelStats accepts (`prepare`, then the returned step once the
    record is known not to be a duplicate); `values` then gives one table per value."""

    def __init__(self, by: str) -> None:
        if by not in BY:
            raise ValueError(f"{by!r} is not a breakdown; choose from {', '.join(BY)}")
        self.by = by
        self._contacts: dict[tuple[str, str], _Contact] = {}
        # Kept until the end, when every visit is known: (funnel, contact, from, to, time in from).
        self._moves: list[tuple[str, str, str | None, str, float | None]] = []
        self._drops: list[tuple[str, str, str, str, str | None]] = []  # funnel, contact, stage, reason, last type

    def prepare(self, kind: str, doc: dict[str, Any]) -> Callable[[], None]:
        """Check what the breakdown needs of a record (BadRecord), and return the step that counts it."""
        key = (doc["funnel"], _string(doc, "contact_id", kind))
        if kind == DROPOFF:
            recent = doc.get("recent_touchpoints")
            if type(recent) is not list or not all(type(t) is dict and type(t.get("type")) is str for t in recent):
                raise BadRecord("dropoff record whose 'recent_touchpoints' is not a list of touchpoints")
            drop = (*key, doc["stage"], doc["reason"], last_touch_type(cast(DroppedOff, doc)))
            return lambda: self._drops.append(drop)
        first, trigger = doc.get("first_touch"), doc.get("trigger")
        if type(first) is not dict or type(trigger) is not dict:
            raise BadRecord("transition record without a 'first_touch' and a 'trigger' object")
        touch = (_optional(first, "channel"), _optional(first, "campaign"))
        channel, source, to = _optional(trigger, "channel"), doc.get("from_stage"), doc["to_stage"]
        spent = doc.get("time_in_previous_stage_s")

        def step() -> None:
            contact = self._contacts.setdefault(key, _Contact())
            contact.first = touch
            contact.visits[to] = channel
            if source is None:
                contact.entry = to
            self._moves.append((*key, source, to, None if spent is None else float(spent)))

        return step

    def values(self, funnel: str, order: Sequence[str]) -> tuple[list[ValueFigures], int]:
        """Per value (most records first, a missing value last): its table, stages in `order`;
        and how many records were left out for want of their stage entry."""
        moves: dict[str | None, Moves] = {}
        left_out = 0

        def tally(value: object) -> Moves | None:
            nonlocal left_out
            if value is _UNKNOWN:
                left_out += 1
                return None
            assert value is None or isinstance(value, str)
            return moves.setdefault(value, Moves())

        contacts = self._contacts
        for name, contact_id, source, to, spent in self._moves:
            if name != funnel or self.by == "last_touch_type":
                continue
            contact = contacts[name, contact_id]
            if (into := tally(self._value(contact, to))) is not None:
                into.entered[to] += 1
            if source is not None and (out := tally(self._value(contact, source))) is not None:
                out.converted[source] += 1
                if spent is not None:
                    out.times.setdefault(source, []).append(spent)
            if (entry := tally(self._value(contact, contact.entry))) is not None:
                entry.crossings[source, to] += 1
        for name, contact_id, stage, reason, kind in self._drops:
            if name != funnel:
                continue
            if self.by == "last_touch_type":
                value: object = kind
            else:
                found = contacts.get((name, contact_id))
                value = _UNKNOWN if found is None else self._value(found, stage)
            if (dropped := tally(value)) is not None:
                dropped.drops[stage, reason] += 1
        shown = [ValueFigures(v, FunnelTable(funnel, m.entries(), m.rows(order), ())) for v, m in moves.items()]
        weight = Counter({v: sum(m.entered.values()) + sum(m.drops.values()) for v, m in moves.items()})
        shown.sort(key=lambda item: (item.value is None, -weight[item.value], item.value or ""))
        return shown, left_out

    def _value(self, contact: _Contact, stage: str | None) -> object:
        """The breakdown value of the contact's visit to `stage`, or _UNKNOWN."""
        if self.by == "trigger_channel":
            return contact.visits.get(stage, _UNKNOWN) if stage is not None else _UNKNOWN
        if contact.first is None:
            return _UNKNOWN
        return contact.first[0] if self.by == "first_channel" else contact.first[1]


def _string(doc: dict[str, Any], name: str, kind: str) -> str:
    value = doc.get(name)
    if type(value) is not str or not value:
        raise BadRecord(f"{kind} record without a string {name!r}")
    return value


def _optional(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is not None and type(value) is not str:
        raise BadRecord(f"a touch whose {name!r} is neither null nor a string")
    return value
