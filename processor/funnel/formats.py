"""Segment-spec and Snowplow events as touchpoints: pure adapters, checked once at the edge.

`decoder(format, mapping)` gives the function that turns one record's bytes into a
`Touchpoint`. It raises `Invalid` (a dead letter: the reason, and a detail naming the
field as the format spells it) or `Skipped` (a record the format defines that is no
touchpoint: Segment's identify, alias and group calls, counted and passed over).

- `segment` (Segment's spec; RudderStack follows it, schemas/segment-event): a
  `track` call's `event` is the name, which the mapping turns into the type; `page`
  and `screen` are `page_view`, with the page's path (`context.page.path`) and the
  call's `name` among the properties when the properties lack them. `messageId` is the
  event id; `userId`, else `anonymousId`, the contact (an empty one counts as absent).
  The time is `timestamp`; without it, Segment's own correction for the device's clock
  `receivedAt - (sentAt - originalTimestamp)` when all three are given, else
  `originalTimestamp`, else `receivedAt`. `context.campaign`'s medium and source give
  the channel through the mapping's rules, its name the campaign. `properties` are kept.
- `snowplow` (a Snowplow enriched event as the Analytics SDKs turn it into JSON,
  schemas/snowplow-event): `event_id`; `user_id`, else `domain_userid`; the time is
  `derived_tstamp`, else `collector_tstamp`. The name is a structured event's
  `se_action`, a self-describing event's `event_name`, else `event_name` or `event`
  (`page_view`, `page_ping`...). `mkt_medium` and `mkt_source` give the channel,
  `mkt_campaign` the campaign. Properties: the page's `path`, `url` and `title`, a
  structured event's `category`, `label`, `property` and `value`, and the fields of a
  self-describing event's data. Empty strings count as absent, as in the enriched TSV.

Timestamps are RFC 3339 with an offset, as for touchpoints. Every string a touchpoint
keeps has the touchpoint's length limits; the detail names the source field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from processor.funnel.eventmap import DEFAULT_MAPPING, EventMapping
from processor.funnel.timefmt import MAX_US, MIN_US, format_time, parse_time_text
from processor.funnel.touchpoint import (
    BAD_TIMESTAMP,
    BAD_VALUE,
    MAX_CAMPAIGN,
    MAX_CHANNEL,
    MAX_CONTACT_ID,
    MAX_EVENT_ID,
    MAX_TYPE,
    MISSING_FIELD,
    NOT_OBJECT,
    WRONG_TYPE,
    Invalid,
    Touchpoint,
    _kind,
    decode,
    parse_record,
)

FORMATS = ("touchpoint", "segment", "snowplow")
SKIPPED_CALLS = ("identify", "alias", "group")  # Segment calls recognised and passed over
_SEGMENT_CALLS = ("track", "page", "screen", *SKIPPED_CALLS)
_SEGMENT_TIMES = ("timestamp", "originalTimestamp", "sentAt", "receivedAt")
_SNOWPLOW_PAGE = (("page_urlpath", "path"), ("page_url", "url"), ("page_title", "title"))
_SNOWPLOW_STRUCT = (("se_category", "category"), ("se_label", "label"), ("se_property", "property"))
# The SDKs' key for a self-describing event's data: unstruct_event_<vendor>_<name>_<model>.
_UNSTRUCT = "unstruct_event_"


class Skipped(Exception):
    """A record of a known kind that is no touchpoint (Segment identify, alias, group)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        super().__init__(kind)


def decoder(fmt: str, mapping: EventMapping = DEFAULT_MAPPING) -> Callable[[bytes], Touchpoint]:
    """bytes -> Touchpoint for an input format, raising Invalid or Skipped."""
    if fmt == "touchpoint":
        return decode
    adapt = _ADAPTERS.get(fmt)
    if adapt is None:
        raise ValueError(f"unknown input format {fmt!r}; the formats are {', '.join(FORMATS)}")

    def decode_record(raw: bytes) -> Touchpoint:
        return adapt(parse_record(raw), mapping)

    return decode_record


def record_key(fmt: str, raw: bytes) -> bytes | None:
    """The key a producer gives a record of this format: a touchpoint's contact_id (the worker requires
    it), the message id of the others (they may be keyed any way); None when the record has none."""
    try:
        doc = parse_record(raw)
    except Invalid:
        return None
    field = {"touchpoint": "contact_id", "segment": "messageId", "snowplow": "event_id"}[fmt]
    value = doc.get(field) if type(doc) is dict else None
    return value.encode() if type(value) is str else None


def as_touchpoint(tp: Touchpoint) -> dict[str, Any]:
    """A touchpoint as its JSON object (schemas/touchpoint), optional fields only when present."""
    doc: dict[str, Any] = {"event_id": tp.event_id, "contact_id": tp.contact_id, "type": tp.type}
    doc["occurred_at"] = tp.when
    for name in ("channel", "campaign", "properties"):
        value = getattr(tp, name)
        if value is not None:
            doc[name] = value
    return doc


# -- Segment -------------------------------------------------------------------


def from_segment(doc: Any, mapping: EventMapping = DEFAULT_MAPPING) -> Touchpoint:
    if type(doc) is not dict:
        raise Invalid(NOT_OBJECT, f"a Segment event must be a JSON object, got {_kind(doc)}")
    call = _text(doc, "type", None, required=True)
    if call in SKIPPED_CALLS:
        raise Skipped(call)
    if call not in _SEGMENT_CALLS:
        raise Invalid(BAD_VALUE, f"field 'type' must be one of {', '.join(_SEGMENT_CALLS)}; got {call!r}")
    event_id = _text(doc, "messageId", MAX_EVENT_ID, required=True)
    contact = _contact(doc, "userId", "anonymousId")
    at, when = _segment_time(doc)
    context = _object(doc, "context", "context")
    campaign = _object(context, "campaign", "context.campaign")
    channel, campaign_name = _channel(campaign, "medium", "source", "name", "context.campaign.", mapping)
    properties = _object(doc, "properties", "properties")
    page = _object(context, "page", "context.page")
    path = None if page is None else _text(page, "path", None, empty_is_absent=True, where="context.page.")
    track = call == "track"  # `event` names a track call; in the others it is checked, as the schema does, not used
    name = _text(doc, "event", None, required=track, empty_is_absent=not track)
    if track:
        kind = _type(mapping, name, "event")
    else:
        kind = "page_view"
        for field, value in (("path", path), ("name", _text(doc, "name", None, empty_is_absent=True))):
            if value is not None and (properties is None or field not in properties):
                properties = {**(properties or {}), field: value}
    return Touchpoint(event_id, contact, kind, at, when, channel, campaign_name, properties)


def _segment_time(doc: dict[str, Any]) -> tuple[int, str]:
    """`timestamp`, else Segment's skew correction, else originalTimestamp, else receivedAt.

    Each of the four given is checked, used or not, as the schema checks them.
    """
    given, original, sent, received = (_time(doc, name) for name in _SEGMENT_TIMES)
    if given is not None:
        return given
    if original is not None and sent is not None and received is not None:
        at = received[0] - (sent[0] - original[0])
        if not MIN_US <= at <= MAX_US:
            raise Invalid(
                BAD_TIMESTAMP,
                "receivedAt - (sentAt - originalTimestamp), the time corrected for the device's clock, "
                "falls outside the years 0001-9999 in UTC",
            )
        return at, format_time(at)
    chosen = original or received
    if chosen is None:
        raise Invalid(MISSING_FIELD, "none of 'timestamp', 'originalTimestamp' or 'receivedAt' is given")
    return chosen


# -- Snowplow ------------------------------------------------------------------


def from_snowplow(doc: Any, mapping: EventMapping = DEFAULT_MAPPING) -> Touchpoint:
    if type(doc) is not dict:
        raise Invalid(NOT_OBJECT, f"a Snowplow enriched event must be a JSON object, got {_kind(doc)}")
    event_id = _text(doc, "event_id", MAX_EVENT_ID, required=True, empty_is_absent=True)
    contact = _contact(doc, "user_id", "domain_userid")
    derived, collector = (_time(doc, name, empty_is_absent=True) for name in ("derived_tstamp", "collector_tstamp"))
    moment = derived or collector
    if moment is None:
        raise Invalid(MISSING_FIELD, "neither 'derived_tstamp' nor 'collector_tstamp' is given")
    event, event_name, action = (
        _text(doc, name, None, empty_is_absent=True) for name in ("event", "event_name", "se_action")
    )
    if event == "struct":  # a structured event's action names it
        where, name = "se_action", action
    elif event == "unstruct" or event_name is not None:  # a self-describing event's name
        where, name = "event_name", event_name
    else:  # the enriched event's own kinds (page_view, page_ping...) name themselves
        where, name = "event", event
    if name is None:
        raise Invalid(MISSING_FIELD, f"required field {where!r} is missing: the event has no name")
    kind = _type(mapping, name, where)
    channel, campaign = _channel(doc, "mkt_medium", "mkt_source", "mkt_campaign", "", mapping)
    properties: dict[str, Any] = {}
    for source, target in _SNOWPLOW_PAGE + _SNOWPLOW_STRUCT:  # checked in any event, kept as the event has them
        value = _text(doc, source, None, empty_is_absent=True)
        if value is not None and (event == "struct" or (source, target) in _SNOWPLOW_PAGE):
            properties[target] = value
    if event == "struct" and doc.get("se_value") not in (None, ""):
        properties["value"] = doc["se_value"]
    for key, value in doc.items():
        if key.startswith(_UNSTRUCT):
            if type(value) is not dict:
                raise Invalid(WRONG_TYPE, f"field {key!r} must be an object, got {_kind(value)}")
            properties.update(value)
    return Touchpoint(event_id, contact, kind, moment[0], moment[1], channel, campaign, properties or None)


# -- shared --------------------------------------------------------------------


def _text(
    doc: dict[str, Any],
    name: str,
    limit: int | None,
    *,
    required: bool = False,
    empty_is_absent: bool = False,
    where: str = "",
) -> Any:
    """A string field (None when absent and not required); `where` spells its path in a detail."""
    value = doc.get(name)
    shown = where + name
    if value is None or (empty_is_absent and value == ""):
        if required:
            raise Invalid(MISSING_FIELD, f"required field {shown!r} is missing")
        return None
    if type(value) is not str:
        raise Invalid(WRONG_TYPE, f"field {shown!r} must be a string, got {_kind(value)}")
    if limit is not None and not 0 < len(value) <= limit:
        raise Invalid(BAD_VALUE, f"field {shown!r} must be 1 to {limit} characters, got {len(value)}")
    if not value:
        raise Invalid(BAD_VALUE, f"field {shown!r} must not be empty")
    return value


def _contact(doc: dict[str, Any], first: str, second: str) -> str:
    """The first of two id fields given (an empty one counts as absent); both are checked."""
    ids = [_text(doc, name, MAX_CONTACT_ID, empty_is_absent=True) for name in (first, second)]
    contact = ids[0] or ids[1]
    if contact is None:
        raise Invalid(MISSING_FIELD, f"neither {first!r} nor {second!r} is given: there is no contact to follow")
    return str(contact)


def _time(doc: dict[str, Any], name: str, *, empty_is_absent: bool = False) -> tuple[int, str] | None:
    value = doc.get(name)
    if value is None or (empty_is_absent and value == ""):
        return None
    if type(value) is not str:
        raise Invalid(WRONG_TYPE, f"field {name!r} must be a string, got {_kind(value)}")
    try:
        return parse_time_text(value)
    except ValueError as exc:
        raise Invalid(BAD_TIMESTAMP, f"field {name!r}: {exc}") from None


def _object(doc: dict[str, Any] | None, name: str, where: str) -> dict[str, Any] | None:
    value = None if doc is None else doc.get(name)
    if value is not None and type(value) is not dict:
        raise Invalid(WRONG_TYPE, f"field {where!r} must be an object, got {_kind(value)}")
    return value


def _type(mapping: EventMapping, name: str, where: str) -> str:
    kind = mapping.type_for(name)
    if not kind:
        raise Invalid(BAD_VALUE, f"field {where!r}: {name!r} has no letter or digit to name a touchpoint type")
    if len(kind) > MAX_TYPE:
        raise Invalid(BAD_VALUE, f"field {where!r}: its type {kind!r} is {len(kind)} characters; at most {MAX_TYPE}")
    return kind


def _channel(
    doc: dict[str, Any] | None, medium: str, source: str, campaign: str, where: str, mapping: EventMapping
) -> tuple[str | None, str | None]:
    """(channel, campaign) from UTM fields; `where` spells where they sit, for a detail."""
    if not doc:
        return None, None
    given = {
        name: _text(doc, name, limit, empty_is_absent=True, where=where)
        for name, limit in ((medium, None), (source, None), (campaign, MAX_CAMPAIGN))
    }
    channel = mapping.channel_for(given[medium], given[source])
    if channel is not None and len(channel) > MAX_CHANNEL:
        field = where + (medium if given[medium] else source)
        detail = f"field {field!r} gives the channel {channel!r} of {len(channel)} characters; at most {MAX_CHANNEL}"
        raise Invalid(BAD_VALUE, detail)
    return channel, given[campaign]


_ADAPTERS: dict[str, Callable[[Any, EventMapping], Touchpoint]] = {"segment": from_segment, "snowplow": from_snowplow}

__all__ = [
    "FORMATS",
    "SKIPPED_CALLS",
    "Skipped",
    "as_touchpoint",
    "decoder",
    "from_segment",
    "from_snowplow",
    "record_key",
]
