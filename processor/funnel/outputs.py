"""What the funnel emits, as facts in the past tense.

Outputs are plain dicts typed as TypedDicts: building and serialising a dict costs a
fraction of a dataclass, and a worker emits one or more per touchpoint. Field order
is as declared; schemas/transition and schemas/dropoff describe the same shapes.

Outputs are read-only once returned: the transitions one touchpoint causes share their
`trigger`, `first_touch` and `last_touch` dicts, and the drop-offs fired together share
their `recent_touchpoints` list (built once, not once per funnel).
"""

from __future__ import annotations

from typing import Literal, TypedDict


def output_id(funnel: str, contact_id: str, sequence: int) -> str:
    """The id of a contact's `sequence`-th output in a funnel.

    Derived only from the funnel, the contact and the output's place in the journey,
    so a reprocessed touchpoint yields the same id. Funnel names hold no ':' and the
    sequence is digits, so the id is unique whatever the contact id holds.
    """
    return f"{funnel}:{sequence}:{contact_id}"


class TouchSummary(TypedDict):
    type: str
    channel: str | None
    campaign: str | None
    occurred_at: str


class RecentTouch(TypedDict):
    type: str
    channel: str | None
    occurred_at: str


class Trigger(TypedDict):
    event_id: str
    type: str
    channel: str | None
    campaign: str | None


class StageTransitioned(TypedDict):
    """A contact entered `to_stage` (from `from_stage`, or on entering the funnel)."""

    kind: Literal["transition"]
    id: str
    funnel: str
    contact_id: str
    from_stage: str | None
    to_stage: str
    skipped: list[str]
    occurred_at: str
    time_in_previous_stage_s: float | None
    since_funnel_entry_s: float
    trigger: Trigger
    first_touch: TouchSummary
    last_touch: TouchSummary | None
    sequence: int
    reactivated: bool


class DroppedOff(TypedDict):
    """A contact was lost, or stalled past its deadline, in `stage`."""

    kind: Literal["dropoff"]
    id: str
    funnel: str
    contact_id: str
    stage: str
    reason: Literal["lost", "stalled"]
    entered_stage_at: str
    last_touch_at: str
    occurred_at: str
    time_in_stage_s: float
    recent_touchpoints: list[RecentTouch]
    sequence: int


Output = StageTransitioned | DroppedOff


def last_touch_type(dropoff: DroppedOff) -> str | None:
    """The type of the contact's last touchpoint before the one that dropped it: for a loss,
    the touchpoint before the lost one; for a stall (which no touchpoint causes), the last."""
    recent = dropoff["recent_touchpoints"]
    back = 2 if dropoff["reason"] == "lost" else 1
    return recent[-back]["type"] if len(recent) >= back else None
