"""One contact's state in the core: where it is in each funnel, what it sent lately, and the
bounds on what it keeps (`Limits`). Tuples, so that a worker can keep millions of them and store
them cheaply (processor/funnel/codec.py); the steps that change them are in journey.py and expiry.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

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
