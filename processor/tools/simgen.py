"""Synthetic touchpoints: seeded contacts walking funnels. Pure: no I/O, no clock.

`generate(plans, config, start_us=...)` or `generate(plans, config, end_us=...)`
yields touchpoint dicts (the contract of processor.funnel.touchpoint) in event-time
order, ties in a stable order; the same arguments always yield the same touchpoints.
With `start_us` the first contact enters no earlier than it; with `end_us` the last
touchpoint falls exactly on it, so a file can end "now" and still be reproducible
(the same walks, shifted in time). Writers (a file, a topic) only serialise what it
yields.

Each contact enters one funnel (chosen at random among the plans) at its first
stage, then per stage: with the stage's conversion probability (times its channel's
factor, when one is given for the channel of its first touchpoint) it moves on after an
exponential delay (sometimes skipping a stage), otherwise it goes quiet or, at the
lost rate, sends a lost touchpoint. Extra touchpoints that move nothing ("noise")
and exact re-sends (duplicates) are mixed in. Every touchpoint is run through the core's
journey step before it is kept, so it has exactly the intended effect (processor/tools/simwalk.py).

The plans and settings: processor/tools/simplan.py; what a touchpoint looks like:
processor/tools/simtouch.py.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import Any

from processor.tools.simplan import SECOND_US, Config, FunnelPlan, plan_for
from processor.tools.simtouch import below, pick
from processor.tools.simwalk import Entry, Simulation, Walkable

__all__ = ["Config", "FunnelPlan", "generate", "plan_for"]

GIVE_UP = 1000  # contacts without a single touchpoint: the rules cannot be met
# Types no preset uses: noise that matches no stage at all.


def generate(
    plans: Sequence[FunnelPlan], config: Config, start_us: int | None = None, *, end_us: int | None = None
) -> Iterator[dict[str, Any]]:
    """Touchpoint dicts in event-time order; event ids 'e-<seed>-<n>' in file order.

    Give `start_us` (contacts enter from then on) or `end_us` (the last touchpoint's time).
    """
    if not plans:
        raise ValueError("simulate needs at least one funnel")
    if (config.contacts is None) == (config.touchpoints is None):
        raise ValueError("give exactly one of contacts and touchpoints")
    if (start_us is None) == (end_us is None):
        raise ValueError("give exactly one of start_us and end_us")
    rng = random.Random(config.seed)  # noqa: S311 -- reproducible on purpose, nothing secret
    sim = Simulation(rng, config, [Walkable(p) for p in plans])
    window_s = max(1, round(config.days * 86_400))
    n = 0
    while (config.contacts is not None and n < config.contacts) or (
        config.touchpoints is not None and len(sim.entries) < config.touchpoints
    ):
        n += 1
        walkable = sim.walkables[0] if len(sim.walkables) == 1 else pick(rng, sim.walkables)
        sim.walk(walkable, f"{config.contact_prefix}{n:06d}", below(rng, window_s) * SECOND_US)  # from 0
        if n == GIVE_UP and not sim.entries:
            raise ValueError(f"no touchpoint can enter these funnels' first stages ({n} contacts tried)")
    entries = sim.entries
    entries.sort(key=_order)
    limit = len(entries) if config.touchpoints is None else config.touchpoints
    kept = entries[:limit]
    # Walks start from time 0: every time is shifted here, by the start or so that the last touchpoint ends.
    shift = start_us if start_us is not None else (end_us or 0) - (kept[-1][0] if kept else 0)
    prefix = f"e-{config.seed}-"
    sent = 0
    stamp = sim.stamp
    for at, _, body, resend in kept:
        if not resend:
            sent += 1
            body["event_id"] = prefix + str(sent)
            body["occurred_at"] = stamp(at + shift)
        yield dict(body)  # the original precedes its re-send, so its id and time are already set


def _order(entry: Entry) -> tuple[int, int]:
    return entry[0], entry[1]
