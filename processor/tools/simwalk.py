"""Contacts walking a funnel, stage by stage, as their plan draws. Pure: no I/O, no clock.

What a touchpoint does to a contact (moves it into a stage, loses it, or changes nothing) is
asked of the core: `processor.funnel.journey.advance`, the step the worker and the replay run,
on the contact's state after the touchpoints it sent so far. The simulator keeps no matching
rules of its own; it keeps a touchpoint only when the core gives it exactly the intended effect.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from processor.funnel.definition import Rule
from processor.funnel.journey import advance
from processor.funnel.outputs import Output
from processor.funnel.rulebook import Rulebook, rulebook
from processor.funnel.state import ContactState, Limits
from processor.funnel.timefmt import format_time
from processor.funnel.touchpoint import Touchpoint
from processor.tools.simplan import DAY_US, SECOND_US, Config, FunnelPlan
from processor.tools.simtouch import TouchMaker, below, pick

MAX_NOISE = 20  # extra touchpoints per stage visit, at most
NOISE_TRIES = 3
# Types no preset uses: noise that matches no stage at all.
IRRELEVANT = ("email_opened", "app_login", "chat_started", "site_search", "video_played")
_LIMITS = Limits()  # the core's bounds on a contact's memory; dedup plays no part (the walks send no duplicates to it)

# One entry per line: (occurred_at µs, generation order, body, is a re-send).
Entry = tuple[int, int, dict[str, Any], bool]


@dataclass(slots=True)
class Walkable:
    """A plan with the lookups a walk needs, built once."""

    plan: FunnelPlan
    stage_rules: list[tuple[Rule, ...]] = field(init=False)
    known_types: list[tuple[str, ...]] = field(init=False)  # types of rules at or before each stage
    book: Rulebook = field(init=False)  # the funnel, as the core's step takes it

    def __post_init__(self) -> None:
        funnel = self.plan.funnel
        self.stage_rules = [tuple(r for r in funnel.rules if r.stage == i) for i in range(len(funnel.stages))]
        self.known_types = [
            tuple(sorted({r.type for r in funnel.rules if r.stage <= i})) for i in range(len(funnel.stages))
        ]
        self.book = rulebook((funnel,))


class Journey:
    """One contact in one funnel: its state in the core after the touchpoints it sent so far."""

    __slots__ = ("book", "factor", "funnel", "last_at", "state")

    def __init__(self, walkable: Walkable, last_at: int) -> None:
        self.funnel = walkable.plan.funnel
        self.book = walkable.book
        self.state: ContactState | None = None
        self.last_at = last_at
        self.factor: float | None = None  # the conversion factor of its first touchpoint's channel, once it sent one

    @property
    def stage(self) -> int:
        """The stage the contact is in (-1 before it entered the funnel)."""
        pos = None if self.state is None else self.state.positions.get(self.funnel.name)
        return -1 if pos is None else pos.stage

    def after(self, state: ContactState | None, body: dict[str, Any], at: int) -> tuple[ContactState, list[Output]]:
        """The core's step: `state` after the touchpoint `body` at `at`, and the outputs it gives."""
        tp = Touchpoint(
            body["event_id"],
            body["contact_id"],
            body["type"],
            at,
            "",  # its text is stamped when the touchpoint is yielded; no output here is kept
            body.get("channel"),
            body.get("campaign"),
            body.get("properties"),
        )
        return advance(state, tp, self.book, _LIMITS, 0)


def _moves_into(outputs: Sequence[Output], stage: str) -> bool:
    return bool(outputs) and outputs[0]["kind"] == "transition" and outputs[0]["to_stage"] == stage


def _loses(outputs: Sequence[Output]) -> bool:
    return bool(outputs) and outputs[0]["kind"] == "dropoff"


def _or_one(factor: float | None) -> float:
    return 1.0 if factor is None else factor


class Simulation:
    """Contacts walking their plans; every touchpoint kept is in `entries`, in generation order."""

    def __init__(self, rng: random.Random, config: Config, walkables: list[Walkable]) -> None:
        self.rng, self.config, self.walkables = rng, config, walkables
        self.make = TouchMaker(rng)
        self.entries: list[Entry] = []
        self._days: dict[int, str] = {}

    def stamp(self, at: int) -> str:
        """format_time(at), faster for whole seconds: the date part is formatted once per day."""
        day, rest = divmod(at, DAY_US)
        if rest % SECOND_US:
            return format_time(at)
        date = self._days.get(day)
        if date is None:
            date = self._days[day] = format_time(day * DAY_US)[:11]
        minutes, second = divmod(rest // SECOND_US, 60)
        return f"{date}{minutes // 60:02d}:{minutes % 60:02d}:{second:02d}Z"

    def emit(self, journey: Journey, body: dict[str, Any], at: int, state: ContactState | None = None) -> None:
        """Keep `body` at `at`; `state` is the journey's state after it, when already asked of the core."""
        entries = self.entries
        entries.append((at, len(entries), body, False))  # occurred_at is stamped when yielded
        if self.rng.random() < self.config.duplicate_rate:
            entries.append((at, len(entries), body, True))
        journey.state = state if state is not None else journey.after(journey.state, body, at)[0]
        journey.last_at = at
        if journey.factor is None:
            journey.factor = self.config.channel_conversion.get(body.get("channel") or "", 1.0)

    def walk(self, walkable: Walkable, contact: str, at: int) -> None:
        rng, config, plan = self.rng, self.config, walkable.plan
        funnel = plan.funnel
        last = len(funnel.stages) - 1
        journey = Journey(walkable, last_at=at)
        if not self.move(walkable, journey, contact, 0, at):
            return
        while True:
            stage = journey.stage
            window_s = max(1, round(rng.expovariate(1.0) * plan.mean_delay_us[stage] / SECOND_US))
            due = at + window_s * SECOND_US
            converts = stage < last and rng.random() < min(1.0, plan.conversion[stage] * _or_one(journey.factor))
            self.noise(walkable, journey, contact, at, window_s)
            if not converts:
                if funnel.lost and not funnel.terminal[stage] and rng.random() < config.lost_rate:
                    self.lose(journey, contact, due)
                return
            target = stage + 2 if stage + 2 <= last and rng.random() < config.skip_rate else stage + 1
            if not self.move(walkable, journey, contact, target, due) and not (
                target > stage + 1 and self.move(walkable, journey, contact, stage + 1, due)
            ):
                return
            at = due

    def move(self, walkable: Walkable, journey: Journey, contact: str, target: int, at: int) -> bool:
        """Touchpoints that move the contact exactly into `target` at `at` (earlier ones for an nth)."""
        rules = walkable.stage_rules[target]
        into = walkable.plan.funnel.stages[target]
        counts = {} if journey.state is None else journey.state.counts
        first = below(self.rng, len(rules))
        for k in range(len(rules)):
            rule = rules[(first + k) % len(rules)]
            before = rule.nth - 1 - counts.get(rule.type, 0)
            bodies = [self.make.touch(contact, rule.type) for _ in range(before)] if before > 0 else []
            state = journey.state
            for body in bodies:  # the earlier ones of an nth rule must change nothing
                state, outputs = journey.after(state, body, journey.last_at)
                if outputs:
                    break
            else:
                outputs = []
            if outputs:
                continue
            final = self.make.satisfying(contact, rule)
            if final is None:
                continue
            moved, outputs = journey.after(state, final, at)
            if not _moves_into(outputs, into):
                continue
            if bodies:
                base = journey.last_at
                span_s = (at - base) // SECOND_US
                offsets = sorted(self.rng.randint(0, span_s) for _ in bodies)
                for body, offset in zip(bodies, offsets, strict=True):
                    self.emit(journey, body, base + offset * SECOND_US)
            self.emit(journey, final, at, None if bodies else moved)  # after earlier ones: at their own times
            return True
        return False

    def lose(self, journey: Journey, contact: str, at: int) -> None:
        rules = journey.funnel.lost
        first = below(self.rng, len(rules))
        for k in range(len(rules)):
            rule = rules[(first + k) % len(rules)]
            body = self.make.satisfying(contact, rule)
            if body is None:
                continue
            lost, outputs = journey.after(journey.state, body, at)
            if _loses(outputs):
                self.emit(journey, body, at, lost)
                return

    def noise(self, walkable: Walkable, journey: Journey, contact: str, at: int, window_s: int) -> None:
        rng, rate = self.rng, self.config.noise_rate
        count = 0
        while count < MAX_NOISE and rng.random() < rate:
            count += 1
        if count == 0 or window_s < 2:
            return
        known = walkable.known_types[journey.stage]
        for offset in sorted(1 + below(rng, window_s - 1) for _ in range(count)):
            for _ in range(NOISE_TRIES):
                kind = pick(rng, known) if rng.random() < 0.7 else pick(rng, IRRELEVANT)
                body = self.make.touch(contact, kind)
                when = at + offset * SECOND_US
                state, outputs = journey.after(journey.state, body, when)
                if not outputs:
                    self.emit(journey, body, when, state)
                    break


# What touchpoints look like: channels, campaigns and properties by type.
