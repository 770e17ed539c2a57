"""Simulated touchpoints written as Segment-spec or Snowplow events (simulate --format). Pure.

Each touchpoint becomes events of the format from which the worker's adapter
(processor/funnel/formats.py), given the same mapping, gives back exactly that
touchpoint; so a replay of the formatted file equals the replay of the touchpoints.
The shapes the adapters must read are spread over the records, each chosen from a
hash of the event id (a record, and its duplicate, always get the same shape):

- Segment: a `track` call named through the mapping (the first name it lists for the
  type, else the type in words: "Demo Requested"), or for a page_view a `page` call
  (with properties) or a `screen` call (without). The contact is the userId (with an
  anonymousId beside it), the anonymousId alone, or the anonymousId with an empty userId
  (as RudderStack sends a visitor not yet identified). The time is `timestamp` beside the
  other three, or only `receivedAt`, or only `originalTimestamp`, `sentAt` and `receivedAt`
  with the device's clock off by up to five minutes (the adapter corrects it as Segment
  does). The channel is `context.campaign`'s medium and source. Each contact's first
  touchpoint is followed by an identify call, and a few by group or alias calls: the
  adapter recognises and skips them.
- Snowplow: a page_view (with `page_urlpath`), a structured event (`se_action`, for a
  touchpoint without properties) or a self-describing event (`event_name`, the properties
  as its data); `user_id` with a `domain_userid`, or the `domain_userid` alone;
  `derived_tstamp` beside `collector_tstamp`, or `collector_tstamp` alone; the `mkt_*` fields.

A type or channel that the mapping cannot give back from any name or UTM pair (a mapped
name taken by another type, a custom channel the channel rules turn into another) raises
ValueError naming it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from hashlib import blake2b
from typing import Any

from processor.funnel.eventmap import EventMapping, normal_form
from processor.funnel.timefmt import US_PER_S, parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The UTM medium and source each canonical channel is written with (a custom channel: its own name as the medium).
_UTM = {
    "paid_search": ("cpc", "google"),
    "email": ("email", "newsletter"),
    "social": ("social", "linkedin"),
    "referral": ("referral", "partner-blog"),
    "organic": ("organic", "google"),
    "direct": ("(none)", "(direct)"),
    "display": ("display", "programmatic"),
    "affiliate": ("affiliate", "partner-network"),
}
_LIBRARY = {"name": "analytics.js", "version": "2.11.1"}


def _stamp(us: int, offset_minutes: int = 0) -> str:
    """RFC 3339 with milliseconds, as trackers write it: 'Z' in UTC, else the offset."""
    zone = timezone(timedelta(minutes=offset_minutes))
    text = (_EPOCH + timedelta(microseconds=us)).astimezone(zone).isoformat(timespec="milliseconds")
    return text.replace("+00:00", "Z")


class Shaper:
    """Touchpoint dicts (processor/tools/simgen.py) -> events of one format."""

    def __init__(self, fmt: str, mapping: EventMapping) -> None:
        if fmt not in ("segment", "snowplow"):
            raise ValueError(f"no simulated shape for the format {fmt!r}")
        self.fmt, self.mapping = fmt, mapping
        self._names: dict[str, str] = {}  # type -> its event name, checked to map back
        self._utm: dict[str, tuple[str, str | None]] = {}  # channel -> (medium, source), checked
        self._contacts: set[str] = set()  # contacts whose first touchpoint was written
        self._ids: set[str] = set()  # event ids written (a duplicate gets no second identify, group or alias)

    def shape(self, tp: dict[str, Any]) -> list[dict[str, Any]]:
        """The events for one touchpoint, in order."""
        h = int.from_bytes(blake2b(tp["event_id"].encode(), digest_size=8).digest(), "big")
        if self.fmt == "snowplow":
            return [self._snowplow(tp, h)]
        events = [self._segment(tp, h)]
        if tp["event_id"] not in self._ids:
            self._ids.add(tp["event_id"])
            events += self._skipped_calls(tp, h, events[0])
        return events

    # -- names and channels, checked to come back as they went ------------------

    def name(self, kind: str) -> str:
        name = self._names.get(kind)
        if name is None:
            name = self.mapping.name_for(kind)
            if self.mapping.type_for(name) != kind:
                raise ValueError(
                    f"the type {kind!r} cannot be written as an event name: the mapping turns {name!r} into "
                    f"{self.mapping.type_for(name)!r}; list a name for {kind!r} in the mapping file"
                )
            self._names[kind] = name
        return name

    def utm(self, channel: str) -> tuple[str, str | None]:
        pair = self._utm.get(channel)
        if pair is None:
            pair = _UTM.get(channel, (channel, None))
            if self.mapping.channel_for(*pair) != channel:
                raise ValueError(
                    f"the channel {channel!r} cannot be written as a UTM medium and source: the channel rules "
                    f"turn medium {pair[0]!r} into {self.mapping.channel_for(*pair)!r}"
                )
            self._utm[channel] = pair
        return pair

    # -- Segment -------------------------------------------------------------

    def _segment(self, tp: dict[str, Any], h: int) -> dict[str, Any]:
        kind, properties = tp["type"], tp.get("properties")
        if kind == "page_view":
            event: dict[str, Any] = {"type": "page" if properties else "screen"}
        else:
            event = {"type": "track", "event": self.name(kind)}
        event["messageId"] = tp["event_id"]
        contact = tp["contact_id"]
        identities = (
            {"userId": contact, "anonymousId": _anonymous_id(contact)},
            {"anonymousId": contact},
            {"userId": "", "anonymousId": contact},  # RudderStack's visitor not yet identified
        )
        event.update(identities[(h >> 4) % 3])
        event.update(_segment_times(parse_time(tp["occurred_at"]), h))
        context: dict[str, Any] = {"library": _LIBRARY}
        campaign = self._utm_fields(tp, "medium", "source", "name")
        if campaign:
            context["campaign"] = campaign
        path = (properties or {}).get("path")
        if event["type"] == "page" and isinstance(path, str):
            context["page"] = {"path": path}
        event["context"] = context
        if properties is not None:
            event["properties"] = properties
        return event

    def _skipped_calls(self, tp: dict[str, Any], h: int, track: dict[str, Any]) -> list[dict[str, Any]]:
        contact, event_id, calls = tp["contact_id"], tp["event_id"], []
        ids = {"userId": contact, "anonymousId": _anonymous_id(contact)}
        when = {"timestamp": _stamp(parse_time(tp["occurred_at"]))}
        if contact not in self._contacts:
            self._contacts.add(contact)
            traits = {"plan": ("free", "team", "enterprise")[h % 3]}
            calls.append({"type": "identify", "messageId": f"{event_id}-identify", **ids, **when, "traits": traits})
        if h % 50 == 7:
            calls.append({"type": "group", "messageId": f"{event_id}-group", **ids, **when, "groupId": "acme"})
        if h % 97 == 11:
            alias = {"previousId": ids["anonymousId"], "userId": contact}
            calls.append({"type": "alias", "messageId": f"{event_id}-alias", **alias, **when})
        return calls

    # -- Snowplow ------------------------------------------------------------

    def _snowplow(self, tp: dict[str, Any], h: int) -> dict[str, Any]:
        kind, properties = tp["type"], tp.get("properties")
        event: dict[str, Any] = {"app_id": "site", "platform": "web", "event_id": tp["event_id"]}
        at = parse_time(tp["occurred_at"])
        delay = (1 + (h >> 8) % 5) * US_PER_S
        if h % 5 == 0:
            event["collector_tstamp"] = _stamp(at)
        else:
            event.update(collector_tstamp=_stamp(at + delay), derived_tstamp=_stamp(at))
        contact = tp["contact_id"]
        if h & 16:
            event.update(user_id=contact, domain_userid=_anonymous_id(contact))
        else:
            event["domain_userid"] = contact
        event.update(self._utm_fields(tp, "mkt_medium", "mkt_source", "mkt_campaign"))
        path_only = properties is None or (list(properties) == ["path"] and isinstance(properties["path"], str))
        if kind == "page_view" and path_only:
            event.update(event="page_view", event_vendor="com.snowplowanalytics.snowplow", event_name="page_view")
            if properties is not None:
                event["page_urlpath"] = properties["path"]
        elif properties is None:
            event.update(event="struct", se_action=self.name(kind), event_vendor="com.google.analytics")
            event["event_name"] = "event"
        else:
            name = normal_form(self.name(kind))
            event.update(event="unstruct", event_vendor="com.example", event_name=name, event_format="jsonschema")
            event[f"unstruct_event_com_example_{name}_1"] = properties
        return event

    def _utm_fields(self, tp: dict[str, Any], medium: str, source: str, campaign: str) -> dict[str, str]:
        fields: dict[str, str] = {}
        channel = tp.get("channel")
        if channel is not None:
            fields[medium], utm_source = self.utm(channel)
            if utm_source is not None:
                fields[source] = utm_source
        if tp.get("campaign") is not None:
            fields[campaign] = tp["campaign"]
        return fields


def _anonymous_id(contact: str) -> str:
    return blake2b(contact.encode(), digest_size=8).hexdigest()


def _segment_times(at: int, h: int) -> dict[str, str]:
    """The four times (or fewer) from which the adapter reads `at` back exactly."""
    skew = ((h >> 12) % 601 - 300) * US_PER_S  # the device's clock, off by up to 5 min either way
    delay = (1 + (h >> 24) % 5) * US_PER_S
    device = {"originalTimestamp": _stamp(at + skew), "sentAt": _stamp(at + skew + delay)}
    variant = h % 10
    if variant in (0, 1, 2):  # no timestamp: Segment's correction gives it back
        return {**device, "receivedAt": _stamp(at + delay)}
    if variant == 3:
        return {"receivedAt": _stamp(at)}
    offset = 120 if variant == 4 else 0  # now and then written with an offset
    return {"timestamp": _stamp(at, offset), **device, "receivedAt": _stamp(at + delay)}


__all__ = ["Shaper"]
