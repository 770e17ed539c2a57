"""The funnel engine for one clock: a replayed file, or one input partition.

It owns the event-time clock and a timer heap of stall deadlines, and keeps contact
states in any mutable mapping (a dict in a replay, a Faust table in the worker).
Firing costs grow with what is due, not with how many contacts are tracked: the
heap holds one entry per scheduled deadline and stale entries are skipped on pop.

An engine made with `attributed=True` (the worker's) also keeps, for each output it
returns, what the breakdown metrics need and the output does not carry (`Attribution`:
the contact's first touch, the channel that opened the stage visit), for the caller to
take in order with `take_attributions`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Literal

from processor.funnel.definition import Funnel
from processor.funnel.expiry import expire
from processor.funnel.journey import advance, attribute, event_hash, is_duplicate, next_deadline
from processor.funnel.outputs import Output
from processor.funnel.rulebook import rulebook
from processor.funnel.state import Attribution, ContactState, Limits
from processor.funnel.touchpoint import Touchpoint

Verdict = Literal["in_order", "late", "duplicate"]
IN_ORDER: Verdict = "in_order"
LATE: Verdict = "late"
DUPLICATE: Verdict = "duplicate"


class Engine:
    def __init__(
        self,
        funnels: Sequence[Funnel],
        store: MutableMapping[str, ContactState] | None = None,
        limits: Limits | None = None,
        *,
        attributed: bool = False,
    ) -> None:
        names = [f.name for f in funnels]
        if len(set(names)) != len(names):
            raise ValueError(f"funnel names must be unique, got {names}")
        self.funnels = tuple(funnels)
        self.limits = limits or Limits()
        self.book = rulebook(self.funnels)  # the funnels indexed by touchpoint type, once
        self.counted = self.book.counted
        self.store: MutableMapping[str, ContactState] = {} if store is None else store
        self.clock: int | None = None  # event time, possibly advanced further by advance_to
        self.latest: int | None = None  # the largest occurred_at seen
        self.duplicates = 0  # touchpoints ignored as duplicates
        self.late = 0  # touchpoints older than the latest one seen before them
        self._timers: list[tuple[int, str]] = []
        # With `attributed`, the attribution of every output returned, in the same order, until taken.
        self._attributions: list[Attribution] | None = [] if attributed else None

    def observe(self, tp: Touchpoint) -> list[Output]:
        """Advance the clock to the touchpoint, fire what is due, then apply it."""
        return self.apply(tp)[0]

    def apply(self, tp: Touchpoint) -> tuple[list[Output], Verdict]:
        """`observe`, also saying what the touchpoint was: IN_ORDER, LATE (older than the latest
        one seen before it; applied all the same) or DUPLICATE (ignored)."""
        state = self.store.get(tp.contact_id)
        digest = event_hash(tp.event_id)
        if is_duplicate(state, digest, self.limits):
            self.duplicates += 1
            return [], DUPLICATE
        verdict: Verdict = IN_ORDER
        if self.latest is None or tp.at >= self.latest:
            self.latest = tp.at
        else:
            self.late += 1
            verdict = LATE
        if self.clock is None or tp.at > self.clock:
            self.clock = tp.at
        outputs = self._fire_due() if self._timers and self._timers[0][0] < self.clock else []
        if outputs:  # firing may have changed this contact's state
            state = self.store.get(tp.contact_id)
        new, produced = advance(state, tp, self.book, self.limits, digest)
        self.store[tp.contact_id] = new
        if produced and self._attributions is not None:
            attribute(state, new.first, produced, self._attributions)
        if state is None or new.positions is not state.positions:
            due = next_deadline(new, self.funnels)
            if due is not None and (state is None or due != next_deadline(state, self.funnels)):
                heapq.heappush(self._timers, (due, tp.contact_id))
        if outputs:
            outputs.extend(produced)
            return outputs, verdict
        return produced, verdict

    def advance_to(self, clock: int) -> list[Output]:
        """Move the clock forward (never back) and fire every deadline it passes."""
        if self.clock is None or clock > self.clock:
            self.clock = clock
        return self._fire_due()

    def take_attributions(self) -> list[Attribution]:
        """The attributions of the outputs returned since the last call, in order (an engine
        made with `attributed=True`; else always empty)."""
        taken = self._attributions
        if not taken:
            return []
        self._attributions = []
        return taken

    def schedule(self, contact_ids: Iterable[str]) -> None:
        """(Re)build timers for contacts whose states were loaded from elsewhere."""
        timers = []
        for contact_id in contact_ids:
            state = self.store.get(contact_id)
            due = None if state is None else next_deadline(state, self.funnels)
            if due is not None:
                timers.append((due, contact_id))
        self.add_timers(timers)

    def add_timers(self, timers: Iterable[tuple[int, str]]) -> None:
        """Add timers (deadline, contact id) for stored states. Each deadline should be the
        state's `next_deadline`: any other is skipped as stale when it comes due."""
        self._timers.extend(timers)
        heapq.heapify(self._timers)

    def _fire_due(self) -> list[Output]:
        outputs: list[Output] = []
        clock = self.clock
        timers = self._timers
        while timers and clock is not None and timers[0][0] < clock:
            deadline, contact_id = heapq.heappop(timers)
            state = self.store.get(contact_id)
            if state is None or next_deadline(state, self.funnels) != deadline:
                continue  # stale: the contact moved on, or a newer entry exists
            new, fired = expire(state, contact_id, clock, self.funnels)
            self.store[contact_id] = new
            if self._attributions is not None:
                attribute(state, state.first, fired, self._attributions)
            outputs.extend(fired)
            later = next_deadline(new, self.funnels)
            if later is not None:
                heapq.heappush(timers, (later, contact_id))
        return outputs
