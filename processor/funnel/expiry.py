"""Stall deadlines: when a contact's stage visit stalls (`next_deadline`), firing the deadlines
a clock has passed (`expire`), and the drop-off record both stalls and losses write."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, NamedTuple

from processor.funnel.definition import Funnel
from processor.funnel.outputs import DroppedOff, Output, RecentTouch, output_id
from processor.funnel.state import ContactState, Position, Touch
from processor.funnel.timefmt import format_time, seconds


def _recent(touches: Sequence[Touch]) -> list[RecentTouch]:
    return [{"type": t.type, "channel": t.channel, "occurred_at": t.when} for t in touches]


class DropContext(NamedTuple):
    """What every drop-off of a contact at one moment repeats: built once, shared by them (outputs are read-only)."""

    touches: Sequence[Touch]  # the contact's recent touches
    recent: list[RecentTouch]  # the same as the outputs write them
    last_at: int
    last_text: str


def drop_context(touches: Sequence[Touch], last_at: int) -> DropContext:
    return DropContext(touches, _recent(touches), last_at, time_text(last_at, touches))


def time_text(at: int, touches: Sequence[Touch]) -> str:
    """`format_time(at)`, taken from a recent touch at that time when there is one (formatting costs more)."""
    for touch in reversed(touches):
        if touch.at == at:
            return touch.when
    return format_time(at)


def dropoff(
    funnel: Funnel,
    contact_id: str,
    pos: Position,
    reason: Literal["lost", "stalled"],
    at: int,
    at_text: str,
    context: DropContext,
    seq: int,
) -> DroppedOff:
    return {
        "kind": "dropoff",
        "id": output_id(funnel.name, contact_id, seq),
        "funnel": funnel.name,
        "contact_id": contact_id,
        "stage": funnel.stages[pos.stage],
        "reason": reason,
        "entered_stage_at": time_text(pos.entered_at, context.touches),
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
    context = drop_context(recent, last_at)
    for deadline, _, funnel, pos in due:
        seq = pos.sequence + 1
        positions[funnel.name] = Position(pos.stage, pos.entered_at, pos.entry_at, True, seq, pos.trigger_channel)
        at_text = format_time(deadline)
        outputs.append(dropoff(funnel, contact_id, pos, "stalled", deadline, at_text, context, seq))
    return ContactState(first, recent, last_at, counts, seen_ids, seen_at, positions), outputs


def _due_order(due: tuple[int, int, Funnel, Position]) -> tuple[int, int]:
    return due[0], due[1]
