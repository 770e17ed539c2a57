"""A team's event names to touchpoint types, and UTM medium and source to channels.

The Segment and Snowplow input formats name events in the team's own words ("Order
Completed", "demo-requested") and say where a visit came from in UTM terms (medium
`cpc`, source `google`). An `EventMapping` turns both into the touchpoint's words. It
is plain data, compiled from a mapping file (schemas/event-mapping) by
`processor.config.eventmapping`, or the defaults.

**Normal form.** Names are compared in their normal form: lower case, each run of
characters that are neither letters nor digits replaced by one `_`, none at either
end. "Order Completed", "order-completed" and "ORDER_COMPLETED" are all
`order_completed`. A name the mapping does not list becomes the touchpoint type in its
normal form, so a funnel rule can still name it ("Demo Requested" -> demo_requested).

**Channels.** A medium and a source, in normal form, go through the channel rules in
order: the mapping's own rules first, then the defaults below (unless the mapping
turns them off). The first rule whose given fields all match names the channel.
When none matches, the channel is the mapping's `unmatched_channel` if it names one,
else the medium's normal form, else the source's. No medium and no source: no channel.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

_WORD = re.compile(r"[^\W_]+")  # a run of letters and digits (any script)
_CACHED = 10_000  # (medium, source) pairs whose channel a mapping remembers


@lru_cache(maxsize=8192)
def normal_form(name: str) -> str:
    """'Order Completed' -> 'order_completed'; '' when the name has no letter or digit."""
    return "_".join(_WORD.findall(name.lower()))


@dataclass(frozen=True, slots=True)
class ChannelRule:
    """Names `channel` for a medium in `mediums` and a source in `sources` (None: any)."""

    channel: str
    mediums: frozenset[str] | None = None
    sources: frozenset[str] | None = None

    def matches(self, medium: str | None, source: str | None) -> bool:
        return (self.mediums is None or medium in self.mediums) and (self.sources is None or source in self.sources)


def channel_rule(channel: str, medium: Iterable[str] | None = None, source: Iterable[str] | None = None) -> ChannelRule:
    """A rule with its mediums and sources in normal form."""
    mediums = None if medium is None else frozenset(normal_form(m) for m in medium)
    sources = None if source is None else frozenset(normal_form(s) for s in source)
    return ChannelRule(normal_form(channel), mediums, sources)


_SEARCH_ENGINES = ("google", "bing", "duckduckgo", "yahoo", "ecosia", "baidu", "yandex")
_SOCIAL_NETWORKS = ("facebook", "instagram", "linkedin", "twitter", "x", "tiktok", "pinterest", "reddit", "youtube")
# The defaults, in the order they are tried: mediums first, then a source alone.
DEFAULT_CHANNEL_RULES: tuple[ChannelRule, ...] = (
    channel_rule("paid_search", medium=("cpc", "ppc", "paid", "paid_search", "paidsearch", "sem")),
    channel_rule("display", medium=("display", "banner", "cpm", "programmatic")),
    channel_rule("email", medium=("email", "e-mail", "newsletter")),
    channel_rule("social", medium=("social", "social-media", "social-network", "sm")),
    channel_rule("affiliate", medium=("affiliate", "affiliates", "partner")),
    channel_rule("referral", medium=("referral", "referrer")),
    channel_rule("organic", medium=("organic", "seo")),
    channel_rule("direct", medium=("(none)",)),  # what analytics tools write for a direct visit
    channel_rule("direct", source=("(direct)",)),
    channel_rule("social", source=_SOCIAL_NETWORKS),
    channel_rule("organic", source=_SEARCH_ENGINES),
)


@dataclass(frozen=True)
class EventMapping:
    # Each listed name (as written in the file) and its type, in the file's order.
    listed: tuple[tuple[str, str], ...] = ()
    channel_rules: tuple[ChannelRule, ...] = DEFAULT_CHANNEL_RULES
    unmatched_channel: str | None = None
    events: Mapping[str, str] = field(init=False)  # normal form of a listed name -> its type
    _channels: dict[tuple[str | None, str | None], str | None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events", {normal_form(name): kind for name, kind in self.listed})
        object.__setattr__(self, "_channels", {})

    def type_for(self, name: str) -> str:
        """The touchpoint type of an event name: the mapped type, else the name's normal form ('' if empty)."""
        key = normal_form(name)
        return self.events.get(key, key)

    def channel_for(self, medium: str | None, source: str | None) -> str | None:
        """The channel of a UTM medium and source (either may be None or empty)."""
        pair = (medium or None, source or None)
        if pair in self._channels:
            return self._channels[pair]
        m = (normal_form(medium) or None) if medium else None
        s = (normal_form(source) or None) if source else None
        channel: str | None = None
        if m is not None or s is not None:
            channel = next((r.channel for r in self.channel_rules if r.matches(m, s)), None)
            if channel is None:
                channel = self.unmatched_channel or m or s
        if len(self._channels) >= _CACHED:
            self._channels.clear()
        self._channels[pair] = channel
        return channel

    def name_for(self, kind: str) -> str:
        """An event name whose type is `kind`: the first listed for it, else the type in words
        ('demo_requested' -> 'Demo Requested'). For writing events in a format (simulate)."""
        for name, mapped in self.listed:
            if mapped == kind:
                return name
        return " ".join(word.capitalize() for word in kind.split("_"))


DEFAULT_MAPPING = EventMapping()

__all__ = ["DEFAULT_CHANNEL_RULES", "DEFAULT_MAPPING", "ChannelRule", "EventMapping", "channel_rule", "normal_form"]
