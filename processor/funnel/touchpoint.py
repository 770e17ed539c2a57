"""Touchpoints in, checked once at the edge.

`decode` turns one record's bytes into a `Touchpoint` or raises `Invalid` with a
short machine reason (a bounded set, fit for a metric label) and a readable detail.
The rules are those of the current touchpoint schema (`processor.config.schemas.CURRENT`);
a test holds the two to the same verdicts. Every string a contact's state keeps or
an output repeats has a maximum length, so a state and an output have a size limit.

`check_not_ahead` is the bound on the future: a touchpoint dated more than a
tolerance after the time it arrived is refused before it can move a clock. The
caller says what "arrived" means and gives that time; nothing here reads a clock.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from processor.funnel.timefmt import MAX_US, MIN_US, US_PER_S, format_time, parse_time_text

MAX_RECORD_BYTES = 64 * 1024
# Most characters (code points) per string field: ids and type since 1-0-0, channel and campaign since 1-1-0.
MAX_EVENT_ID = 128
MAX_CONTACT_ID = 128
MAX_TYPE = 64
MAX_CHANNEL = 64
MAX_CAMPAIGN = 256
# How far ahead of its arrival a touchpoint may be dated (the worker's FUNNEL_FUTURE_TOLERANCE, replay's
# --future-tolerance), and the tolerance no event time can exceed: the bound switched off.
DEFAULT_FUTURE_TOLERANCE_US = 5 * 60 * US_PER_S
NO_FUTURE_BOUND = MAX_US - MIN_US + 1

# Dead-letter reasons. Kept few and stable: they label metrics and alerts.
TOO_LARGE = "too_large"
NOT_JSON = "invalid_json"
NOT_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
BAD_VALUE = "invalid_value"
BAD_TIMESTAMP = "bad_timestamp"
KEY_MISMATCH = "key_mismatch"
FUTURE_TIMESTAMP = "future_timestamp"
REASONS = (
    *(TOO_LARGE, NOT_JSON, NOT_OBJECT, MISSING_FIELD, WRONG_TYPE, BAD_VALUE, BAD_TIMESTAMP, KEY_MISMATCH),
    FUTURE_TIMESTAMP,
)


class Invalid(ValueError):
    def __init__(self, reason: str, detail: str) -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}")


class Touchpoint(NamedTuple):
    event_id: str
    contact_id: str
    type: str
    at: int  # occurred_at, microseconds since the epoch
    when: str  # occurred_at as RFC 3339 UTC text ("...Z"), as outputs write it
    channel: str | None = None
    campaign: str | None = None
    properties: dict[str, Any] | None = None


def _string(doc: dict[str, Any], name: str, limit: int) -> None:
    value = doc.get(name)
    if value is None:
        raise Invalid(MISSING_FIELD, f"required field {name!r} is missing")
    if type(value) is not str:
        raise Invalid(WRONG_TYPE, f"field {name!r} must be a string, got {_kind(value)}")
    if not 0 < len(value) <= limit:
        raise Invalid(BAD_VALUE, f"field {name!r} must be 1 to {limit} characters, got {len(value)}")


def _optional(doc: dict[str, Any], name: str, limit: int) -> None:
    value = doc.get(name)
    if value is None:
        return
    if type(value) is not str:
        raise Invalid(WRONG_TYPE, f"field {name!r} must be a string, got {_kind(value)}")
    if len(value) > limit:
        raise Invalid(BAD_VALUE, f"field {name!r} must be at most {limit} characters, got {len(value)}")


def _kind(value: Any) -> str:
    return {
        dict: "an object",
        list: "an array",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
    }.get(type(value), type(value).__name__)


def from_dict(doc: Any) -> Touchpoint:
    """Check a decoded JSON value and build the Touchpoint it describes.

    One pass of cheap checks accepts a well-formed touchpoint; only a record that
    fails them goes through `_refuse`, which finds and names what is wrong.
    """
    if type(doc) is dict:
        event_id, contact_id, kind = doc.get("event_id"), doc.get("contact_id"), doc.get("type")
        when, channel, campaign = doc.get("occurred_at"), doc.get("channel"), doc.get("campaign")
        properties = doc.get("properties")
        if (
            type(event_id) is str
            and type(contact_id) is str
            and type(kind) is str
            and type(when) is str
            and 0 < len(event_id) <= MAX_EVENT_ID
            and 0 < len(contact_id) <= MAX_CONTACT_ID
            and 0 < len(kind) <= MAX_TYPE
            and (channel is None or (type(channel) is str and len(channel) <= MAX_CHANNEL))
            and (campaign is None or (type(campaign) is str and len(campaign) <= MAX_CAMPAIGN))
            and (properties is None or type(properties) is dict)
        ):
            try:
                at, text = parse_time_text(when)
            except ValueError as exc:
                raise Invalid(BAD_TIMESTAMP, f"field 'occurred_at': {exc}") from None
            return Touchpoint(event_id, contact_id, kind, at, text, channel, campaign, properties)
    _refuse(doc)
    raise AssertionError("unreachable: _refuse always raises")


def _refuse(doc: Any) -> None:
    """Raise Invalid naming the first problem of a record the fast checks refused."""
    if type(doc) is not dict:
        raise Invalid(NOT_OBJECT, f"a touchpoint must be a JSON object, got {_kind(doc)}")
    _string(doc, "event_id", MAX_EVENT_ID)
    _string(doc, "contact_id", MAX_CONTACT_ID)
    _string(doc, "type", MAX_TYPE)
    when = doc.get("occurred_at")
    if when is None:
        raise Invalid(MISSING_FIELD, "required field 'occurred_at' is missing")
    if type(when) is not str:
        raise Invalid(WRONG_TYPE, f"field 'occurred_at' must be a string, got {_kind(when)}")
    properties = doc.get("properties")
    if properties is not None and type(properties) is not dict:
        raise Invalid(WRONG_TYPE, f"field 'properties' must be an object, got {_kind(properties)}")
    _optional(doc, "channel", MAX_CHANNEL)
    _optional(doc, "campaign", MAX_CAMPAIGN)


def decode(raw: bytes) -> Touchpoint:
    """One record's bytes -> Touchpoint, or Invalid with the reason."""
    return from_dict(parse_record(raw))


def parse_record(raw: bytes) -> Any:
    """One record's bytes -> its JSON value, or Invalid (too_large, invalid_json); for every input format."""
    if len(raw) > MAX_RECORD_BYTES:
        raise Invalid(TOO_LARGE, f"record is {len(raw)} bytes, the limit is {MAX_RECORD_BYTES}")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Invalid(NOT_JSON, f"not valid JSON: {exc}") from None


def check_not_ahead(tp: Touchpoint, arrived: int, tolerance: int) -> None:
    """Raise Invalid (future_timestamp) when `tp` is dated more than `tolerance` after `arrived`.

    Both are microseconds, given by the caller: the worker passes a record's arrival
    time, a replay its --now. A refused touchpoint is dead-lettered and changes
    nothing: no state, no clock, no nth count, no dedup memory.
    """
    ahead = tp.at - arrived
    if ahead > tolerance:
        raise Invalid(
            FUTURE_TIMESTAMP,
            f"occurred_at {tp.when} is {_span(ahead)} ahead of its arrival time ({format_time(arrived)}); "
            f"at most {_span(tolerance)} ahead is accepted",
        )


def _span(us: int) -> str:
    """A positive duration for a person: '3m 20s', '2.5h', '26,688 days'."""
    seconds = us / US_PER_S
    if seconds < 60:
        return f"{seconds:g}s"
    if seconds < 3600:
        minutes, rest = divmod(seconds, 60)
        return f"{int(minutes)}m {rest:g}s" if rest else f"{int(minutes)}m"
    if seconds < 86_400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86_400:,.1f} days"


__all__ = ["REASONS", "Invalid", "Touchpoint", "check_not_ahead", "decode", "from_dict", "parse_record"]
