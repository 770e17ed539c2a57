"""One contact's journey: the state and the two steps that change it.

- `advance(state, touchpoint, ...)` applies a (non-duplicate) touchpoint.
- `expire(state, clock, ...)` fires the stall deadlines the clock has passed.

Both are functions of their arguments and return a new state and the outputs;
nothing is read from a clock or from settings. States are tuples so that a worker
can keep millions of them and store them cheaply (see `processor.funnel.codec`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from hashlib import blake2b
from typing import Literal, NamedTuple

from processor.funnel.definition import Funnel
from processor.funnel.outputs import (
    DroppedOff,
    Output,
    RecentTouch,
    StageTransitioned,
    TouchSummary,
    Trigger,
    output_id,
)
from processor.funnel.rulebook import Rulebook, StageRule
from processor.funnel.rulebook import counted_types as counted_types
from processor.funnel.timefmt import format_time, seconds
from processor.funnel.touchpoint import Touchpoint

RECENT = 5  # touchpoints kept per contact for drop-off context


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on per-contact memory; given by the caller, never read from settings."""

    dedup_horizon_us: int = 24 * 3600 * 1_000_000
    dedup_capacity: int = 32  # most event ids remembered per contact


class Touch(NamedTuple):
    type: str
    channel: str | None
    campaign: str | None
    at: int
    when: str  # `at` as RFC 3339 UTC text, kept so outputs need not format it again


class Position(NamedTuple):
    """Where a contact is in one funnel."""

    stage: int  # index into Funnel.stages
    entered_at: int  # when this stage visit began (event time, µs)
    entry_at: int  # when the contact entered the funnel
    dropped: bool  # a drop-off was emitted for this stage visit
    sequence: int  # outputs emitted so far in this funnel
    # The channel of the touchpoint that moved the contact into this stage (for breakdowns by
    # trigger channel: a visit's exit and drop-off count under the channel that opened it).
    trigger_channel: str | None = None


class ContactState(NamedTuple):
    first: Touch  # the contact's first touchpoint ever
    recent: tuple[Touch, ...]  # the last RECENT touchpoints, oldest first
    last_at: int  # the latest occurred_at seen
    counts: Mapping[str, int]  # touchpoints per type, for types an `nth` rule needs
    seen_ids: tuple[int, ...]  # hashes of the event ids remembered for dedup, in arrival order
    seen_at: tuple[int, ...]  # their occurred_at, in the same order
    positions: Mapping[str, Position]  # funnel name -> position; absent before entry


class Attribution(NamedTuple):
    """What counting an output by breakdown needs beyond the output itself.

    The contact's first touchpoint (a drop-off does not carry it), and the channel of the
    touchpoint that opened the stage visit the output ends: the visit a move leaves (None
    for an entry into the funnel) or the visit a drop-off ends.
    """

    first_channel: str | None
    first_campaign: str | None
    visit_channel: str | None


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


def _summary(touch: Touch) -> TouchSummary:
    return {
        "type": touch.type,
        "channel": touch.channel,
        "campaign": touch.campaign,
        "occurred_at": touch.when,
    }


def _recent(touches: Sequence[Touch]) -> list[RecentTouch]:
    return [{"type": t.type, "channel": t.channel, "occurred_at": t.when} for t in touches]


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
                _dropoff(funnel, tp.contact_id, pos, "lost", at, tp.when, _context(recent, last_at), new_pos.sequence)
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


class _Context(NamedTuple):
    """What every drop-off of a contact at one moment repeats: built once, shared by them (outputs are read-only)."""

    touches: Sequence[Touch]  # the contact's recent touches
    recent: list[RecentTouch]  # the same as the outputs write them
    last_at: int
    last_text: str


def _context(touches: Sequence[Touch], last_at: int) -> _Context:
    return _Context(touches, _recent(touches), last_at, _time_text(last_at, touches))


def _time_text(at: int, touches: Sequence[Touch]) -> str:
    """`format_time(at)`, taken from a recent touch at that time when there is one (formatting costs more)."""
    for touch in reversed(touches):
        if touch.at == at:
            return touch.when
    return format_time(at)


def _dropoff(
    funnel: Funnel,
    contact_id: str,
    pos: Position,
    reason: Literal["lost", "stalled"],
    at: int,
    at_text: str,
    context: _Context,
    seq: int,
) -> DroppedOff:
    return {
        "kind": "dropoff",
        "id": output_id(funnel.name, contact_id, seq),
        "funnel": funnel.name,
        "contact_id": contact_id,
        "stage": funnel.stages[pos.stage],
        "reason": reason,
        "entered_stage_at": _time_text(pos.entered_at, context.touches),
        "last_touch_at": context.last_text,
        "occurred_at": at_text,
        "time_in_stage_s": seconds(at - pos.entered_at),
        "recent_touchpoints": context.recent,
        "sequence": seq,
    }


def _deadline(funnel: Funnel, pos: Position) -> int | None:
    stall = funnel.stall_after[pos.stage]
    if stall is None or pos.dropped:
        return None
    return pos.entered_at + stall


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


def expire(
    state: ContactState, contact_id: str, clock: int, funnels: Sequence[Funnel]
) -> tuple[ContactState, list[Output]]:
    """Fire every stall deadline strictly before `clock`, earliest first (funnels in order on a tie)."""
    due: list[tuple[int, int, Funnel, Position]] = []
    for order, funnel in enumerate(funnels):
        pos = state.positions.get(funnel.name)
        if pos is not None:
            deadline = _deadline(funnel, pos)
            if deadline is not None and deadline < clock:
                due.append((deadline, order, funnel, pos))
    if not due:
        return state, []
    if len(due) > 1:
        due.sort(key=_due_order)
    positions = dict(state.positions)
    outputs: list[Output] = []
    first, recent, last_at, counts, seen_ids, seen_at, _ = state
    context = _context(recent, last_at)
    for deadline, _, funnel, pos in due:
        seq = pos.sequence + 1
        positions[funnel.name] = Position(pos.stage, pos.entered_at, pos.entry_at, True, seq, pos.trigger_channel)
        at_text = format_time(deadline)
        outputs.append(_dropoff(funnel, contact_id, pos, "stalled", deadline, at_text, context, seq))
    return ContactState(first, recent, last_at, counts, seen_ids, seen_at, positions), outputs


def _due_order(due: tuple[int, int, Funnel, Position]) -> tuple[int, int]:
    return due[0], due[1]
