"""The demo's event time: a year of history played fast, then the present, never ahead of it.

The demo wants drop-offs on screen within minutes, but a stall takes weeks of event time,
and a worker refuses touchpoints dated after the time they arrive (FUNNEL_FUTURE_TOLERANCE).
So the demo's event time starts HISTORY before the wall clock and moves on one BATCH_SPAN
per batch (a week per batch of 5 s: about 73,000 times real time) until it reaches the
present; from then on each batch covers the wall-clock time since the one before.

Each batch's new contacts enter within the batch's window. Their later touchpoints (a
journey lasts months) wait here until a batch's window passes them, so every touchpoint
goes out in event-time order and none is dated after the moment it is sent: the worker's
default tolerance applies unchanged. Pure: the caller gives the wall clock.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from processor.funnel.timefmt import US_PER_S

DAY_US = 86_400 * US_PER_S
HISTORY_US = 365 * DAY_US
BATCH_SPAN_US = 7 * DAY_US


@dataclass
class EventTime:
    """Where the demo's event time stands, and the simulated touchpoints not yet due."""

    horizon: int  # µs: every touchpoint before it has been released, none at or after it
    pending: list[tuple[int, int, bytes]] = field(default_factory=list)  # (occurred_at, order, line), a heap
    added: int = 0

    @classmethod
    def starting(cls, wall_us: int) -> EventTime:
        """HISTORY_US before the wall clock, at 00:00 UTC."""
        return cls((wall_us - HISTORY_US) // DAY_US * DAY_US)

    def window(self, wall_us: int) -> tuple[int, int]:
        """(start, end) of the next batch: the horizon, then one BATCH_SPAN_US on, but never past
        the wall clock (whole seconds). start == end: no time has passed for a new batch."""
        return self.horizon, max(self.horizon, min(self.horizon + BATCH_SPAN_US, wall_us // US_PER_S * US_PER_S))

    def live(self, wall_us: int) -> bool:
        """Whether event time has caught up with the present (a batch covers less than BATCH_SPAN_US)."""
        return self.horizon + BATCH_SPAN_US > wall_us

    def add(self, timed: Iterable[tuple[int, bytes]]) -> None:
        """A batch's touchpoints, (occurred_at µs, line); none may be before the horizon."""
        for at, line in timed:
            if at < self.horizon:
                raise ValueError(f"a touchpoint at {at} is before the event time already sent ({self.horizon})")
            heapq.heappush(self.pending, (at, self.added, line))
            self.added += 1

    def release(self, end: int) -> list[bytes]:
        """The touchpoints before `end`, in event-time order (ties as added); the horizon moves to `end`."""
        if end < self.horizon:
            raise ValueError("event time never goes back")
        due = []
        while self.pending and self.pending[0][0] < end:
            due.append(heapq.heappop(self.pending)[2])
        self.horizon = end
        return due
