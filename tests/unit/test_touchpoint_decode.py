"""`decode` and schemas/touchpoint agree on what a touchpoint is.

A hand-made corpus pins the dead-letter reason of each kind of bad record; hypothesis
then generates records near every boundary and checks that decode accepts exactly what
the schema validator accepts (the current version, `processor.config.schemas.CURRENT`). Two rules
lie outside what the schema can express, so they are left out of the agreement and tested
on their own: the 64 KiB limit on the record's bytes, and event times whose instant falls
outside the years 0001-9999 in UTC. The bound on the future depends on when a record
arrives, not on the record: tests/unit/test_future_bound.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from processor.config.schemas import SCHEMA_DIR, validator
from processor.funnel import touchpoint as tp
from processor.funnel.touchpoint import MAX_RECORD_BYTES, Invalid, decode

DROP = object()  # marks a field to leave out of a record
LIMITS = {"event_id": 128, "contact_id": 128, "type": 64}  # required strings: 1 to N characters
OPTIONAL_LIMITS = {"channel": 64, "campaign": 256}  # optional strings (schema 1-1-0): at most N characters
EXAMPLES = SCHEMA_DIR / "touchpoint" / "examples"


def record(**changes: Any) -> dict[str, Any]:
    """A valid touchpoint with some fields changed (or dropped with DROP)."""
    doc: dict[str, Any] = {
        "event_id": "evt-1",
        "contact_id": "contact-1",
        "type": "ad_click",
        "occurred_at": "2024-05-01T09:30:00Z",
    }
    for name, value in changes.items():
        if value is DROP:
            del doc[name]
        else:
            doc[name] = value
    return doc


def encode(doc: Any) -> bytes:
    return orjson.dumps(doc)


def reason_of(raw: bytes) -> str | None:
    """The dead-letter reason decode gives, or None when it accepts the record."""
    try:
        decode(raw)
    except Invalid as exc:
        assert exc.reason in tp.REASONS
        assert exc.detail
        return exc.reason
    return None


def schema_accepts(doc: Any) -> bool:
    return validator("touchpoint").is_valid(doc)


def utc_us(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0) -> int:
    moment = datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


# --- the corpus: good records


GOOD = [
    pytest.param(record(), id="required-only"),
    pytest.param(record(channel=None, campaign=None, properties=None), id="optional-null"),
    pytest.param(record(channel="email", campaign="", properties={}), id="optional-empty"),
    pytest.param(record(properties={"plan": "pro", "seats": 3, "nested": {"a": [1, None]}}), id="properties"),
    pytest.param(record(source="crm", version=2, channel_id=None), id="unknown-extra-fields"),
    pytest.param(record(type="podcast_listened"), id="unknown-type"),
    pytest.param(record(event_id="e" * 128, contact_id="c" * 128, type="t" * 64), id="longest-strings"),
    pytest.param(record(event_id="😀" * 128, type="é" * 64), id="limits-count-characters-not-bytes"),
    pytest.param(record(event_id="x", contact_id="y", type="z"), id="one-character-strings"),
    pytest.param(record(channel="c" * 64, campaign="k" * 256), id="longest-channel-and-campaign"),
    pytest.param(record(channel="😀" * 64, campaign="\u0001" * 256), id="longest-optional-strings-count-characters"),
]


@pytest.mark.parametrize("doc", GOOD)
def test_good_record_is_accepted_by_decode_and_schema(doc: dict[str, Any]) -> None:
    touch = decode(encode(doc))
    assert (touch.event_id, touch.contact_id, touch.type) == (doc["event_id"], doc["contact_id"], doc["type"])
    assert (touch.channel, touch.campaign, touch.properties) == (
        doc.get("channel"),
        doc.get("campaign"),
        doc.get("properties"),
    )
    assert schema_accepts(doc)


@pytest.mark.parametrize(
    ("stamp", "expected_us"),
    [
        ("2024-05-01T09:30:00Z", utc_us(2024, 5, 1, 9, 30)),
        ("2024-05-01T11:30:00.250+02:00", utc_us(2024, 5, 1, 9, 30, 0, 250000)),
        ("2024-05-01T04:00:00-05:30", utc_us(2024, 5, 1, 9, 30)),
        ("2024-05-01t09:30:00z", utc_us(2024, 5, 1, 9, 30)),
        ("2024-05-01 09:30:00-00:00", utc_us(2024, 5, 1, 9, 30)),
        ("2024-05-01T09:30:00.123456789Z", utc_us(2024, 5, 1, 9, 30, 0, 123456)),
        ("2024-02-29T23:59:59+23:59", utc_us(2024, 2, 29, 0, 0, 59)),
        ("2000-02-29T00:00:00Z", utc_us(2000, 2, 29)),
        ("1969-12-31T23:59:59.5Z", -500000),
    ],
)
def test_good_timestamp_is_read_as_that_instant(stamp: str, expected_us: int) -> None:
    doc = record(occurred_at=stamp)
    assert decode(encode(doc)).at == expected_us
    assert schema_accepts(doc)


@pytest.mark.parametrize(("name", "limit"), OPTIONAL_LIMITS.items())
def test_a_channel_or_campaign_valid_in_1_0_0_is_refused_since_1_1_0(name: str, limit: int) -> None:
    """1-1-0 is a REVISION: a value the first version accepted is now dead-lettered, naming the field."""
    doc = record(**{name: "x" * (limit + 1)})
    assert validator("touchpoint", "1-0-0").is_valid(doc)
    assert not schema_accepts(doc)
    with pytest.raises(Invalid) as refused:
        decode(encode(doc))
    assert refused.value.reason == tp.BAD_VALUE
    assert f"field {name!r} must be at most {limit} characters, got {limit + 1}" in refused.value.detail


def test_null_optional_fields_count_as_absent() -> None:
    with_nulls = decode(encode(record(channel=None, campaign=None, properties=None)))
    assert with_nulls == decode(encode(record()))


# --- the corpus: bad records, each with its reason


def bad_json(text: str) -> bytes:
    return text.encode()


BAD = [
    pytest.param(b"", tp.NOT_JSON, id="empty-bytes"),
    pytest.param(b"   ", tp.NOT_JSON, id="blank"),
    pytest.param(bad_json('{"event_id": "e1",'), tp.NOT_JSON, id="truncated"),
    pytest.param(bad_json("{'event_id': 'e1'}"), tp.NOT_JSON, id="single-quotes"),
    pytest.param(bad_json('{"a": NaN}'), tp.NOT_JSON, id="nan"),
    pytest.param(b'{"event_id": "\xff\xfe", "contact_id": "c", "type": "t"}', tp.NOT_JSON, id="invalid-utf8"),
    pytest.param(b"\xef\xbb\xbf" + encode(record()), tp.NOT_JSON, id="utf8-bom"),
    pytest.param(bad_json('{"event_id": "\\ud800"}'), tp.NOT_JSON, id="lone-surrogate-escape"),
    pytest.param(encode([record()]), tp.NOT_OBJECT, id="array"),
    pytest.param(b"null", tp.NOT_OBJECT, id="null"),
    pytest.param(b"42", tp.NOT_OBJECT, id="number"),
    pytest.param(b'"evt-1"', tp.NOT_OBJECT, id="string"),
    pytest.param(b"true", tp.NOT_OBJECT, id="boolean"),
    *(
        pytest.param(encode(record(**{name: DROP})), tp.MISSING_FIELD, id=f"missing-{name}")
        for name in ("event_id", "contact_id", "type", "occurred_at")
    ),
    *(
        pytest.param(encode(record(**{name: None})), tp.MISSING_FIELD, id=f"null-{name}")
        for name in ("event_id", "contact_id", "type", "occurred_at")
    ),
    pytest.param(encode({}), tp.MISSING_FIELD, id="empty-object"),
    pytest.param(encode(record(event_id=17)), tp.WRONG_TYPE, id="event_id-number"),
    pytest.param(encode(record(contact_id=["c1"])), tp.WRONG_TYPE, id="contact_id-array"),
    pytest.param(encode(record(type={"name": "ad_click"})), tp.WRONG_TYPE, id="type-object"),
    pytest.param(encode(record(type=True)), tp.WRONG_TYPE, id="type-boolean"),
    pytest.param(encode(record(occurred_at=1714555800)), tp.WRONG_TYPE, id="occurred_at-epoch-number"),
    pytest.param(encode(record(channel=3)), tp.WRONG_TYPE, id="channel-number"),
    pytest.param(encode(record(channel=False)), tp.WRONG_TYPE, id="channel-boolean"),
    pytest.param(encode(record(campaign=["spring"])), tp.WRONG_TYPE, id="campaign-array"),
    pytest.param(encode(record(properties=["plan"])), tp.WRONG_TYPE, id="properties-array"),
    pytest.param(encode(record(properties="plan=pro")), tp.WRONG_TYPE, id="properties-string"),
    *(pytest.param(encode(record(**{name: ""})), tp.BAD_VALUE, id=f"empty-{name}") for name in LIMITS),
    *(
        pytest.param(encode(record(**{name: "x" * (limit + 1)})), tp.BAD_VALUE, id=f"over-long-{name}")
        for name, limit in LIMITS.items()
    ),
    pytest.param(encode(record(type="😀" * 65)), tp.BAD_VALUE, id="over-long-type-astral"),
    *(
        pytest.param(encode(record(**{name: "x" * (limit + 1)})), tp.BAD_VALUE, id=f"over-long-{name}")
        for name, limit in OPTIONAL_LIMITS.items()
    ),
    pytest.param(encode(record(channel="😀" * 65)), tp.BAD_VALUE, id="over-long-channel-astral"),
    pytest.param(encode(record(campaign="x" * 30_000)), tp.BAD_VALUE, id="campaign-of-30000-characters"),
    *(
        pytest.param(encode(record(occurred_at=stamp)), tp.BAD_TIMESTAMP, id=f"timestamp-{name}")
        for name, stamp in {
            "empty": "",
            "no-offset": "2024-05-01T09:30:00",
            "date-only": "2024-05-01",
            "month-13": "2024-13-01T09:30:00Z",
            "month-00": "2024-00-01T09:30:00Z",
            "april-31": "2024-04-31T09:30:00Z",
            "feb-29-not-leap-year": "2023-02-29T09:30:00Z",
            "feb-29-century": "1900-02-29T09:30:00Z",
            "leap-second-60": "2016-12-31T23:59:60Z",
            "hour-24": "2024-05-01T24:00:00Z",
            "minute-60": "2024-05-01T09:60:00Z",
            "year-0000": "0000-01-01T00:00:00Z",
            "offset-24h": "2024-05-01T09:30:00+24:00",
            "offset-minute-60": "2024-05-01T09:30:00+05:60",
            "offset-minute-99": "2024-05-01T09:30:00-00:99",
            "offset-no-colon": "2024-05-01T09:30:00+0200",
            "offset-hours-only": "2024-05-01T09:30:00+02",
            "offset-name": "2024-05-01T09:30:00 UTC",
            "no-seconds": "2024-05-01T09:30Z",
            "comma-fraction": "2024-05-01T09:30:00,5Z",
            "ten-digit-fraction": "2024-05-01T09:30:00.1234567890Z",
            "empty-fraction": "2024-05-01T09:30:00.Z",
            "trailing-newline": "2024-05-01T09:30:00Z\n",
            "leading-space": " 2024-05-01T09:30:00Z",
            "non-ascii-digits": "\u0662\u0660\u0662\u0664-05-01T09:30:00Z",
            "epoch-as-string": "1714555800",
            "words": "yesterday",
        }.items()
    ),
]


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_bad_record_is_refused_with_its_reason(raw: bytes, reason: str) -> None:
    assert reason_of(raw) == reason
    if reason != tp.NOT_JSON:  # a document the schema can see: it must refuse it too
        assert not schema_accepts(orjson.loads(raw))


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*/*.json")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden_examples_get_the_same_verdict_from_decode(path: Path) -> None:
    assert (reason_of(path.read_bytes()) is None) == (path.parent.name == "valid")


# --- the 64 KiB limit: on bytes, outside what the schema can express


def sized(size: int, filler: str = "x") -> bytes:
    """A valid record of exactly `size` bytes, padded inside `properties`."""
    doc = record(properties={"pad": ""})
    room = size - len(encode(doc))
    doc["properties"]["pad"] = filler * (room // len(filler.encode())) + "x" * (room % len(filler.encode()))
    raw = encode(doc)
    assert len(raw) == size
    return raw


def test_record_of_exactly_64_kib_is_accepted() -> None:
    assert reason_of(sized(MAX_RECORD_BYTES)) is None
    assert MAX_RECORD_BYTES == 64 * 1024


def test_record_one_byte_over_64_kib_is_too_large_though_the_schema_accepts_it() -> None:
    raw = sized(MAX_RECORD_BYTES + 1)
    assert reason_of(raw) == tp.TOO_LARGE
    assert schema_accepts(orjson.loads(raw))


def test_limit_counts_bytes_not_characters() -> None:
    raw = sized(MAX_RECORD_BYTES + 2, filler="é")  # two bytes each: ~33k characters, over 64 KiB of bytes
    assert len(raw.decode()) < MAX_RECORD_BYTES
    assert reason_of(raw) == tp.TOO_LARGE


def test_size_is_checked_before_parsing() -> None:
    assert reason_of(b"{" * (MAX_RECORD_BYTES + 1)) == tp.TOO_LARGE


# --- event times outside years 0001-9999 in UTC: an instant, which the schema's pattern cannot see

OUTSIDE_UTC_YEARS = ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "9999-12-31 23:59:59.5-00:01"]


@pytest.mark.parametrize("stamp", OUTSIDE_UTC_YEARS)
def test_time_outside_utc_years_1_to_9999_is_refused_though_the_schema_accepts_it(stamp: str) -> None:
    doc = record(occurred_at=stamp)
    assert reason_of(encode(doc)) == tp.BAD_TIMESTAMP
    assert schema_accepts(doc)


@pytest.mark.parametrize(
    "stamp",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T01:00:00+01:00",
        "9999-12-31T23:59:59.999999999Z",
        "9999-12-31T22:59:59-01:00",
    ],
)
def test_first_and_last_instants_of_utc_years_1_to_9999_are_accepted(stamp: str) -> None:
    doc = record(occurred_at=stamp)
    assert reason_of(encode(doc)) is None
    assert schema_accepts(doc)


def at_utc_year_edges(doc: Any) -> bool:
    """Whether a document holds a local date on which the UTC range can end (left out of the agreement)."""
    stamp = doc.get("occurred_at") if isinstance(doc, dict) else None
    return isinstance(stamp, str) and ("0001-01-01" in stamp or "9999-12-31" in stamp)


# --- agreement, generated


# A small grammar of RFC 3339 timestamps: each part has valid forms (which still combine
# into impossible dates such as 2023-02-29 or 04-31) and forms just off. A drawn timestamp
# has all parts valid, or one part off.
STAMP_PARTS: list[tuple[tuple[str, ...], tuple[str, ...]]] = [
    (("",), (" ", "\n", "T")),
    (
        ("2024", "2023", "2000", "1900", "2100", "1970", "0001", "9999"),
        ("0000", "202", "20245", "\u0662\u0660\u0662\u0664", "+2024"),
    ),
    (("-",), ("", "/", "--")),
    (("01", "02", "04", "06", "09", "11", "12"), ("00", "13", "1", "\u0660\u0661")),
    (("-",), ("", "/")),
    (("01", "09", "28", "29", "30", "31"), ("00", "32", "1", "1st")),
    (("T", "t", " "), ("", "_", "TT", "\t")),
    (("00", "09", "19", "23"), ("24", "25", "1", "-1")),
    ((":",), ("", ".")),
    (("00", "30", "59"), ("60", "7", "5\u0665")),
    ((":",), ("", ".")),
    (("00", "30", "59"), ("60", "61", "5")),
    (("", ".0", ".5", ".123", ".123456", ".1234567", ".123456789"), (".", ".1234567890", ",5", ".\u0665", ".5.5")),
    (
        ("Z", "z", "+00:00", "-00:00", "+02:00", "-05:30", "+23:59", "-23:59"),
        ("", "+24:00", "+05:60", "-00:99", "+0200", "+02", "UTC", " Z"),
    ),
    (("",), (" ", "\n", "Z", "\u2028")),
]


@st.composite
def timestamps(draw: st.DrawFn) -> str:
    off = draw(st.none() | st.integers(0, len(STAMP_PARTS) - 1))
    return "".join(draw(st.sampled_from(odd if i == off else good)) for i, (good, odd) in enumerate(STAMP_PARTS))


JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=4,
)
CHARS = st.characters(exclude_categories=["Cs"])  # lone surrogates cannot be encoded as UTF-8


def text_of_length(lengths: st.SearchStrategy[int]) -> st.SearchStrategy[str]:
    return lengths.flatmap(lambda n: st.text(CHARS, min_size=n, max_size=n))


def text_near(limit: int) -> st.SearchStrategy[str]:
    return text_of_length(st.sampled_from([1, 2, limit - 1, limit]) | st.integers(1, limit))


def text_off(limit: int) -> st.SearchStrategy[Any]:
    return text_of_length(st.sampled_from([0, limit + 1, limit + 2])) | JSON_VALUES


# Per field: (usual values, odd values). Usual values are not all valid (timestamps).
FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    **{name: (text_near(limit), text_off(limit)) for name, limit in LIMITS.items()},
    "occurred_at": (timestamps(), JSON_VALUES),
    **{
        name: (st.none() | st.text(CHARS, max_size=8) | text_near(limit), text_off(limit))
        for name, limit in OPTIONAL_LIMITS.items()
    },
    "properties": (st.none() | st.dictionaries(st.text(max_size=4), JSON_VALUES, max_size=3), JSON_VALUES),
}


@st.composite
def documents(draw: st.DrawFn) -> Any:
    """Objects holding a random subset of the fields, often with one field odd; sometimes any JSON value."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)
    odd_one = draw(st.none() | st.sampled_from(sorted(FIELDS)))
    doc: dict[str, Any] = {}
    for name, (usual, odd) in FIELDS.items():
        if name == odd_one:
            doc[name] = draw(odd)
        elif draw(st.integers(0, 19)):  # otherwise absent
            doc[name] = draw(usual)
    extras = st.dictionaries(st.text(min_size=1, max_size=6).filter(lambda k: k not in FIELDS), JSON_VALUES, max_size=2)
    doc.update(draw(extras))
    return dict(draw(st.permutations(list(doc.items()))))


def agree(doc: Any) -> None:
    raw = encode(doc)
    assert len(raw) <= MAX_RECORD_BYTES  # the byte limit is tested apart; generated records stay well under it
    assume(not at_utc_year_edges(doc))  # tested apart, above
    reason = reason_of(raw)
    assert reason not in (tp.TOO_LARGE, tp.NOT_JSON)
    errors = [error.message for error in validator("touchpoint").iter_errors(orjson.loads(raw))]
    assert (reason is None) == (not errors), f"decode says {reason}, schema says {errors}"


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_decode_accepts_exactly_what_the_schema_accepts(doc: Any) -> None:
    agree(doc)


@settings(max_examples=600, deadline=None)
@given(timestamps())
def test_decode_and_schema_agree_on_every_timestamp_of_the_grammar(stamp: str) -> None:
    agree(record(occurred_at=stamp))


@pytest.mark.parametrize(("name", "limit"), [*LIMITS.items(), *OPTIONAL_LIMITS.items()])
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_decode_and_schema_agree_on_every_string_length(name: str, limit: int, data: st.DataObject) -> None:
    agree(record(**{name: data.draw(text_of_length(st.integers(0, limit + 2)))}))


@pytest.mark.parametrize("name", sorted(FIELDS))
@settings(max_examples=100, deadline=None)
@given(value=JSON_VALUES)
def test_decode_and_schema_agree_on_any_value_in_a_field(name: str, value: Any) -> None:
    agree(record(**{name: value}))
