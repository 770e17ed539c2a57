"""What simulated touchpoints look like: channels, campaigns and properties by type, drawn from
the simulation's random source; and a touchpoint that meets a rule's conditions. Pure."""

from __future__ import annotations

import random
from bisect import bisect_right
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from processor.funnel.definition import Rule
from processor.funnel.vocabulary import DEFAULT_CHANNELS

T = TypeVar("T")


def below(rng: random.Random, n: int) -> int:
    """A whole number in [0, n): cheaper than randrange, as reproducible."""
    return min(n - 1, int(rng.random() * n))


def pick(rng: random.Random, items: Sequence[T]) -> T:
    return items[below(rng, len(items))]


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
        ("page_view", "content_view", "product_view", "pricing_view"), lambda rng: {"path": pick(rng, _PATHS)}
    ),
    "engaged_visit": lambda rng: {"duration_s": 120 + below(rng, 1681)},
    **dict.fromkeys(
        ("purchase", "quote_accepted"), lambda rng: {"amount": (2_000 + below(rng, 198_001)) / 100, "currency": "EUR"}
    ),
    **dict.fromkeys(("quote_requested", "quote_sent"), lambda rng: {"value": 100 * (10 + below(rng, 490))}),
    **dict.fromkeys(
        ("form_submitted", "info_requested", "demo_requested"),
        lambda rng: {"form": pick(rng, ("contact", "demo", "pricing"))},
    ),
    "review_posted": lambda rng: {"rating": 1 + below(rng, 5)},
}


class TouchMaker:
    """Touchpoint bodies (event_id and occurred_at filled in later) of a given type."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def touch(self, contact: str, kind: str, channels: Sequence[str] | None = None) -> dict[str, Any]:
        rng = self.rng
        channel = pick(rng, channels) if channels else self._channel(kind)
        body: dict[str, Any] = {"event_id": "", "contact_id": contact, "type": kind, "occurred_at": ""}
        if channel is not None:
            body["channel"] = channel
            campaigns = _CAMPAIGNS.get(channel)
            if campaigns is not None and rng.random() < 0.85:
                body["campaign"] = pick(rng, campaigns)
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
            return pick(rng, hinted)
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
