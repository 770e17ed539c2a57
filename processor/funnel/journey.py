"""One contact's journey: what the engine asks of it for every touchpoint.

- `advance(state, touchpoint, ...)` applies a (non-duplicate) touchpoint;
- `is_duplicate` / `event_hash`: whether the contact sent that event id within the horizon;
- `next_deadline`: the contact's earliest stall deadline (for the engine's timers);
- `attribute`: what counting an output by breakdown needs.

`expire(state, clock, ...)` (expiry.py) fires the stall deadlines the clock has passed;
it runs only when one is due. All are functions of their arguments; nothing is read from a
clock or from settings. The state's types are in state.py (types only: building one runs
no code of that module).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from hashlib import blake2b
from typing import NamedTuple

from processor.funnel.definition import Funnel
from processor.funnel.expiry import drop_context, dropoff
from processor.funnel.outputs import Output, StageTransitioned, TouchSummary, Trigger, output_id
from processor.funnel.rulebook import Rulebook, StageRule
from processor.funnel.state import RECENT, Attribution, ContactState, Limits, Position, Touch
from processor.funnel.timefmt import seconds
from processor.funnel.touchpoint import Touchpoint


def attribute(before: ContactState | None, first: Touch, outputs: Sequence[Output], into: list[Attribution]) -> None:
    """Append the attribution of each output to `into`, in order; `before` is the state the
    outputs were produced from (None for a contact's first touchpoint)."""
    positions = None if before is None else before.positions
    for output in outputs:
        pos = None if positions is None else positions.get(output["funnel"])
        into.append(Attribution(first.channel, first.campaign, None if pos is None else pos.trigger_channel))


def event_hash(event_id: str) -> int:
    """A stable 64-bit hash of an event id (Python's hash() is salted per process)."""
    return int.from_bytes(blake2b(event_id.encode(), digest_size=8).digest(), "little")


def is_duplicate(state: ContactState | None, digest: int, limits: Limits) -> bool:
    """Whether the contact already sent the event id hashed to `digest` within the horizon."""
    if state is None or digest not in state.seen_ids:  # a C-level scan: the common case
        return False
    cutoff = state.last_at - limits.dedup_horizon_us
    return any(h == digest and at >= cutoff for h, at in zip(state.seen_ids, state.seen_at, strict=True))


def next_deadline(state: ContactState, funnels: Sequence[Funnel]) -> int | None:
    """The earliest stall deadline among the contact's funnels, if any."""
    best: int | None = None
    positions = state.positions
    for funnel in funnels:
        pos = positions.get(funnel.name)
        if pos is None or pos.dropped:
            continue
        stall = funnel.stall_after[pos.stage]
        if stall is not None:
            due = pos.entered_at + stall
            if best is None or due < best:
                best = due
    return best


def _summary(touch: Touch) -> TouchSummary:
    return {
        "type": touch.type,
        "channel": touch.channel,
        "campaign": touch.campaign,
        "occurred_at": touch.when,
    }


def advance(
    state: ContactState | None,
    tp: Touchpoint,
    book: Rulebook,
    limits: Limits,
    digest: int | None = None,
) -> tuple[ContactState, list[Output]]:
    """Apply one touchpoint (already known not to be a duplicate) to a contact.

    `book` is `rulebook(funnels)` and `digest` is `event_hash(tp.event_id)`, both
    passed in so that callers compute them once.
    """
    kind, at = tp.type, tp.at
    touch = Touch(kind, tp.channel, tp.campaign, at, tp.when)
    if state is None:
        first, previous, last_at = touch, None, at
        recent: tuple[Touch, ...] = (touch,)
        counts: Mapping[str, int] = {}
        seen_ids: tuple[int, ...] = ()
        seen_at: tuple[int, ...] = ()
        positions: Mapping[str, Position] = {}
    else:
        first, previous = state.first, state.recent[-1]
        recent = (*state.recent[1 - RECENT :], touch) if len(state.recent) >= RECENT else (*state.recent, touch)
        last_at = at if at > state.last_at else state.last_at
        counts, positions = state.counts, state.positions
        seen_ids, seen_at = state.seen_ids, state.seen_at

    cap = book.counted.get(kind)
    if cap is not None:
        counts = {**counts, kind: min(counts.get(kind, 0) + 1, cap)}
    cutoff = last_at - limits.dedup_horizon_us
    # Forget ids past the horizon (oldest arrivals first) and beyond the capacity.
    start = max(0, len(seen_ids) + 1 - limits.dedup_capacity)
    while start < len(seen_at) and seen_at[start] < cutoff:
        start += 1
    if start:
        seen_ids, seen_at = seen_ids[start:], seen_at[start:]
    seen_ids = (*seen_ids, event_hash(tp.event_id) if digest is None else digest)
    seen_at = (*seen_at, at)

    reactions = book.reactions.get(kind)
    if reactions is None:  # a type no funnel names: nothing can move
        return ContactState(first, recent, last_at, counts, seen_ids, seen_at, positions), []
    outputs: list[Output] = []
    changed: dict[str, Position] | None = None
    touches: _Touches | None = None  # shared by the transitions this touchpoint causes, built on the first
    for funnel, rules, lost in reactions:
        pos = positions.get(funnel.name)
        new_pos = _forward(rules, pos, tp, counts)
        if new_pos is not None:
            if touches is None:
                touches = _touches(tp, first, previous)
            outputs.append(_transition(funnel, tp, pos, new_pos, touches))
        elif pos is None or pos.dropped or not lost or funnel.terminal[pos.stage]:
            continue
        elif any(rule.matches(tp.channel, tp.properties, 1) for rule in lost):
            new_pos = Position(pos.stage, pos.entered_at, pos.entry_at, True, pos.sequence + 1, pos.trigger_channel)
            outputs.append(
                dropoff(
                    funnel, tp.contact_id, pos, "lost", at, tp.when, drop_context(recent, last_at), new_pos.sequence
                )
            )
        else:
            continue
        if changed is None:
            changed = dict(positions)
        changed[funnel.name] = new_pos
    final = positions if changed is None else changed
    return ContactState(first, recent, last_at, counts, seen_ids, seen_at, final), outputs


def _forward(
    rules: Sequence[StageRule], pos: Position | None, tp: Touchpoint, counts: Mapping[str, int]
) -> Position | None:
    """The position the furthest stage rule matching `tp` past the current stage moves to, or None."""
    current = -1 if pos is None else pos.stage
    for stage, test in rules:
        if stage <= current:
            return None
        if test is None or test.matches(tp.channel, tp.properties, counts.get(tp.type, 1)):
            if pos is None:
                return Position(stage, tp.at, tp.at, False, 1, tp.channel)
            return Position(stage, tp.at, pos.entry_at, False, pos.sequence + 1, tp.channel)
    return None


class _Touches(NamedTuple):
    trigger: Trigger
    first: TouchSummary
    last: TouchSummary | None


def _touches(tp: Touchpoint, first: Touch, previous: Touch | None) -> _Touches:
    """What every transition one touchpoint causes repeats: built once, shared by them (outputs are read-only)."""
    trigger: Trigger = {"event_id": tp.event_id, "type": tp.type, "channel": tp.channel, "campaign": tp.campaign}
    return _Touches(trigger, _summary(first), None if previous is None else _summary(previous))


def _transition(
    funnel: Funnel, tp: Touchpoint, pos: Position | None, new: Position, touches: _Touches
) -> StageTransitioned:
    return {
        "kind": "transition",
        "id": output_id(funnel.name, tp.contact_id, new.sequence),
        "funnel": funnel.name,
        "contact_id": tp.contact_id,
        "from_stage": None if pos is None else funnel.stages[pos.stage],
        "to_stage": funnel.stages[new.stage],
        "skipped": [] if pos is None else list(funnel.stages[pos.stage + 1 : new.stage]),
        "occurred_at": tp.when,
        "time_in_previous_stage_s": None if pos is None else seconds(tp.at - pos.entered_at),
        "since_funnel_entry_s": seconds(tp.at - new.entry_at),
        "trigger": touches.trigger,
        "first_touch": touches.first,
        "last_touch": touches.last,
        "sequence": new.sequence,
        "reactivated": pos is not None and pos.dropped,
    }
