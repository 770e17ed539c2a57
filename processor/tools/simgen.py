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
and exact re-sends (duplicates) are mixed in. Every touchpoint is checked against the
funnel's own rules before it is kept, so it has exactly the intended effect.
"""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, TypeVar

from processor.funnel.definition import Funnel, Rule
from processor.funnel.timefmt import format_time
from processor.funnel.vocabulary import DEFAULT_CHANNELS

SECOND_US = 1_000_000
DAY_US = 86_400 * SECOND_US
DEFAULT_CONVERSION = 0.5
DEFAULT_DELAY_US = 2 * DAY_US
STALL_SHARE = 0.4  # default mean delay: this share of the stage's stall_after
MAX_NOISE = 20  # extra touchpoints per stage visit, at most
NOISE_TRIES = 3
GIVE_UP = 1000  # contacts without a single touchpoint: the rules cannot be met
# Types no preset uses: noise that matches no stage at all.
IRRELEVANT = ("email_opened", "app_login", "chat_started", "site_search", "video_played")


@dataclass(frozen=True, slots=True)
class FunnelPlan:
    funnel: Funnel
    conversion: tuple[float, ...]  # per stage: probability of moving on (0 for the last)
    mean_delay_us: tuple[int, ...]  # per stage: mean time before moving on (or going quiet)


def plan_for(funnel: Funnel, conversion: Mapping[str, float], delay: Mapping[str, int]) -> FunnelPlan:
    """Defaults for every stage, overridden by stage name; ValueError names a bad one."""
    last = funnel.stages[-1]
    for name in (*conversion, *delay):
        if name not in funnel.stages:
            raise ValueError(f"funnel {funnel.name!r} has no stage {name!r}")
    if last in conversion:
        raise ValueError(f"stage {last!r} is the last of funnel {funnel.name!r}: there is nothing to convert to")
    for name, p in conversion.items():
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"conversion for {name!r} must be between 0 and 1, got {p}")
    probs = tuple(0.0 if s == last else conversion.get(s, DEFAULT_CONVERSION) for s in funnel.stages)
    stalls = zip(funnel.stages, funnel.stall_after, strict=True)
    means = tuple(delay.get(s, _default_delay(stall)) for s, stall in stalls)
    return FunnelPlan(funnel, probs, means)


def _default_delay(stall: int | None) -> int:
    return DEFAULT_DELAY_US if stall is None else max(SECOND_US, round(stall * STALL_SHARE))


@dataclass(frozen=True, slots=True)
class Config:
    seed: int
    contacts: int | None = None  # exactly this many contacts, or
    touchpoints: int | None = None  # contacts until at least this many, cut to exactly this many
    days: float = 1.0  # contacts enter the funnel within this many days of the start
    lost_rate: float = 0.3  # a contact that does not move on sends a lost touchpoint
    duplicate_rate: float = 0.02  # a touchpoint is sent twice
    noise_rate: float = 0.3  # chance of each further extra touchpoint in a stage visit
    skip_rate: float = 0.05  # a contact that moves on skips a stage
    contact_prefix: str = "c-"  # contact ids are this + a six-digit number
    # Channel -> factor on every stage's conversion probability (capped at 1) for contacts whose first
    # touchpoint came through that channel; other channels convert at the stage's own probability.
    channel_conversion: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


# One entry per line: (occurred_at µs, generation order, body, is a re-send).
Entry = tuple[int, int, dict[str, Any], bool]


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
    sim = _Simulation(rng, config, [_Walkable(p) for p in plans])
    window_s = max(1, round(config.days * 86_400))
    n = 0
    while (config.contacts is not None and n < config.contacts) or (
        config.touchpoints is not None and len(sim.entries) < config.touchpoints
    ):
        n += 1
        walkable = sim.walkables[0] if len(sim.walkables) == 1 else _pick(rng, sim.walkables)
        sim.walk(walkable, f"{config.contact_prefix}{n:06d}", _below(rng, window_s) * SECOND_US)  # from 0
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


def _or_one(factor: float | None) -> float:
    return 1.0 if factor is None else factor


def _order(entry: Entry) -> tuple[int, int]:
    return entry[0], entry[1]


T = TypeVar("T")


def _below(rng: random.Random, n: int) -> int:
    """A whole number in [0, n): cheaper than randrange, as reproducible."""
    return min(n - 1, int(rng.random() * n))


def _pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[_below(rng, len(items))]


@dataclass(slots=True)
class _Walkable:
    """A plan with the lookups a walk needs, built once."""

    plan: FunnelPlan
    stage_rules: list[tuple[Rule, ...]] = field(init=False)
    known_types: list[tuple[str, ...]] = field(init=False)  # types of rules at or before each stage

    def __post_init__(self) -> None:
        funnel = self.plan.funnel
        self.stage_rules = [tuple(r for r in funnel.rules if r.stage == i) for i in range(len(funnel.stages))]
        self.known_types = [
            tuple(sorted({r.type for r in funnel.rules if r.stage <= i})) for i in range(len(funnel.stages))
        ]


@dataclass(slots=True)
class _Journey:
    """What the funnel's rules make of one contact's touchpoints so far."""

    funnel: Funnel
    stage: int = -1
    last_at: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    factor: float | None = None  # the conversion factor of its first touchpoint's channel, once it sent one

    def effect(self, body: dict[str, Any], extra: int = 0) -> tuple[int | None, bool]:
        """(stage it would move to, or None; whether it would lose the contact)."""
        kind = body["type"]
        channel, props = body.get("channel"), body.get("properties")
        count = self.counts.get(kind, 0) + 1 + extra
        for rule in self.funnel.by_type.get(kind, ()):
            if rule.stage <= self.stage:
                break
            if rule.matches(channel, props, count):
                return rule.stage, False
        if self.stage >= 0 and not self.funnel.terminal[self.stage]:
            for rule in self.funnel.lost_by_type.get(kind, ()):
                if rule.matches(channel, props, 1):
                    return None, True
        return None, False


class _Simulation:
    def __init__(self, rng: random.Random, config: Config, walkables: list[_Walkable]) -> None:
        self.rng, self.config, self.walkables = rng, config, walkables
        self.make = _TouchMaker(rng)
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

    def emit(self, journey: _Journey, body: dict[str, Any], at: int) -> None:
        entries = self.entries
        entries.append((at, len(entries), body, False))  # occurred_at is stamped when yielded
        if self.rng.random() < self.config.duplicate_rate:
            entries.append((at, len(entries), body, True))
        journey.counts[body["type"]] = journey.counts.get(body["type"], 0) + 1
        journey.last_at = at
        if journey.factor is None:
            journey.factor = self.config.channel_conversion.get(body.get("channel") or "", 1.0)

    def walk(self, walkable: _Walkable, contact: str, at: int) -> None:
        rng, config, plan = self.rng, self.config, walkable.plan
        funnel = plan.funnel
        last = len(funnel.stages) - 1
        journey = _Journey(funnel, last_at=at)
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

    def move(self, walkable: _Walkable, journey: _Journey, contact: str, target: int, at: int) -> bool:
        """Touchpoints that move the contact exactly into `target` at `at` (earlier ones for an nth)."""
        rules = walkable.stage_rules[target]
        first = _below(self.rng, len(rules))
        for k in range(len(rules)):
            rule = rules[(first + k) % len(rules)]
            before = rule.nth - 1 - journey.counts.get(rule.type, 0)
            bodies = [self.make.touch(contact, rule.type) for _ in range(before)] if before > 0 else []
            if bodies and any(journey.effect(b, i) != (None, False) for i, b in enumerate(bodies)):
                continue
            final = self.make.satisfying(contact, rule)
            if final is None or journey.effect(final, len(bodies))[0] != target:
                continue
            if bodies:
                base = journey.last_at
                span_s = (at - base) // SECOND_US
                offsets = sorted(self.rng.randint(0, span_s) for _ in bodies)
                for body, offset in zip(bodies, offsets, strict=True):
                    self.emit(journey, body, base + offset * SECOND_US)
            self.emit(journey, final, at)
            journey.stage = target
            return True
        return False

    def lose(self, journey: _Journey, contact: str, at: int) -> None:
        rules = journey.funnel.lost
        first = _below(self.rng, len(rules))
        for k in range(len(rules)):
            rule = rules[(first + k) % len(rules)]
            body = self.make.satisfying(contact, rule)
            if body is not None and journey.effect(body) == (None, True):
                self.emit(journey, body, at)
                return

    def noise(self, walkable: _Walkable, journey: _Journey, contact: str, at: int, window_s: int) -> None:
        rng, rate = self.rng, self.config.noise_rate
        count = 0
        while count < MAX_NOISE and rng.random() < rate:
            count += 1
        if count == 0 or window_s < 2:
            return
        known = walkable.known_types[journey.stage]
        for offset in sorted(1 + _below(rng, window_s - 1) for _ in range(count)):
            for _ in range(NOISE_TRIES):
                kind = _pick(rng, known) if rng.random() < 0.7 else _pick(rng, IRRELEVANT)
                body = self.make.touch(contact, kind)
                if journey.effect(body) == (None, False):
                    self.emit(journey, body, at + offset * SECOND_US)
                    break


# What touchpoints look like: channels, campaigns and properties by type.
_CHANNELS = DEFAULT_CHANNELS  # what a channel breakdown shows by default
_CHANNEL_CUM = (0.28, 0.50, 0.68, 0.82, 0.92, 1.0)
_TYPE_CHANNELS = {
    "ad_impression": ("paid_search", "social"),
    "ad_click": ("paid_search", "social"),
    "social_engagement": ("social",),
    "newsletter_signup": ("email", "organic"),
    "webinar_attended": ("email", "social"),
    "unsubscribed": ("email",),
    "referral_made": ("referral",),
}
# Sales-side events, logged by a person: often without a channel.
_OFFLINE = frozenset(
    {
        *("lead_qualified", "meeting_held", "briefing_held", "quote_sent", "quote_accepted", "quote_rejected"),
        *("deal_lost", "order_delivered", "support_contacted", "complaint_resolved"),
    }
)
_CAMPAIGNS = {
    "paid_search": ("brand-search", "generic-search", "competitor-search"),
    "social": ("spring-launch", "retargeting"),
    "email": ("newsletter-weekly", "nurture-series", "webinar-invite"),
    "referral": ("partner-program",),
}
_PATHS = ("/", "/pricing", "/product", "/blog/funnel-metrics", "/docs/getting-started")
_PROPERTIES: dict[str, Callable[[random.Random], dict[str, Any]]] = {
    **dict.fromkeys(
        ("page_view", "content_view", "product_view", "pricing_view"), lambda rng: {"path": _pick(rng, _PATHS)}
    ),
    "engaged_visit": lambda rng: {"duration_s": 120 + _below(rng, 1681)},
    **dict.fromkeys(
        ("purchase", "quote_accepted"), lambda rng: {"amount": (2_000 + _below(rng, 198_001)) / 100, "currency": "EUR"}
    ),
    **dict.fromkeys(("quote_requested", "quote_sent"), lambda rng: {"value": 100 * (10 + _below(rng, 490))}),
    **dict.fromkeys(
        ("form_submitted", "info_requested", "demo_requested"),
        lambda rng: {"form": _pick(rng, ("contact", "demo", "pricing"))},
    ),
    "review_posted": lambda rng: {"rating": 1 + _below(rng, 5)},
}


class _TouchMaker:
    """Touchpoint bodies (event_id and occurred_at filled in later) of a given type."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def touch(self, contact: str, kind: str, channels: Sequence[str] | None = None) -> dict[str, Any]:
        rng = self.rng
        channel = _pick(rng, channels) if channels else self._channel(kind)
        body: dict[str, Any] = {"event_id": "", "contact_id": contact, "type": kind, "occurred_at": ""}
        if channel is not None:
            body["channel"] = channel
            campaigns = _CAMPAIGNS.get(channel)
            if campaigns is not None and rng.random() < 0.85:
                body["campaign"] = _pick(rng, campaigns)
        shape = _PROPERTIES.get(kind)
        if shape is not None and rng.random() < 0.8:
            body["properties"] = shape(rng)
        return body

    def _channel(self, kind: str) -> str | None:
        rng = self.rng
        if kind in _OFFLINE:
            return "direct" if rng.random() < 0.5 else None
        if rng.random() < 0.08:
            return None
        hinted = _TYPE_CHANNELS.get(kind)
        if hinted is not None:
            return _pick(rng, hinted)
        return _CHANNELS[bisect_right(_CHANNEL_CUM, rng.random())]

    def satisfying(self, contact: str, rule: Rule) -> dict[str, Any] | None:
        """A touchpoint meeting the rule's channel and property conditions, or None if none can."""
        body = self.touch(contact, rule.type, None if rule.channels is None else sorted(rule.channels))
        if rule.properties:
            props = dict(body.get("properties") or {})
            grouped: dict[str, list[tuple[str, Any]]] = {}
            for key, op, operand in rule.properties:
                grouped.setdefault(key, []).append((op, operand))
            for key, conditions in grouped.items():
                found = _value_for(key, conditions, self.rng)
                if found is None:
                    return None
                present, value = found
                if present:
                    props[key] = value
                else:
                    props.pop(key, None)
            body.pop("properties", None)
            if props:
                body["properties"] = props
        return body if rule.matches(body.get("channel"), body.get("properties"), rule.nth) else None


def _value_for(key: str, conditions: list[tuple[str, Any]], rng: random.Random) -> tuple[bool, Any] | None:
    """(present, value) meeting every condition on one property, or None if nothing does."""
    if all(op == "exists" and operand is False for op, operand in conditions):
        return False, None
    candidates: list[Any] = []
    for op, operand in conditions:
        if op == "eq":
            candidates.append(operand)
        elif op == "in" and operand:
            candidates.append(rng.choice(operand))
            candidates.extend(operand)
    lows = [v for op, v in conditions if op in ("gt", "gte")]
    highs = [v for op, v in conditions if op in ("lt", "lte")]
    lo, hi = (max(lows) if lows else None), (min(highs) if highs else None)
    if lo is not None and hi is not None:
        candidates.extend([lo + (hi - lo) // 2, (lo + hi) / 2])
    elif lo is not None:
        candidates.extend([lo + 1 + rng.randint(0, 100), lo + 0.5])
    elif hi is not None:
        candidates.extend([hi - 1 - rng.randint(0, 100), hi - 0.5])
    candidates.extend(["other", 1, True])
    check = Rule(0, "_", 1, None, tuple((key, op, operand) for op, operand in conditions))
    for value in candidates:
        if check.matches(None, {key: value}, 1):
            return True, value
    return None
