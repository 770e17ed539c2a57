"""Segment-spec and Snowplow events as touchpoints (SPEC: Input formats), without a broker.

The adapters (processor/funnel/formats.py) against the specs' fields and fallbacks, their
schemas and golden examples, the event mapping and its file, and the replay of each
format against the replay of the same touchpoints written natively.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from factories import touchpoint
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from processor.cli import main
from processor.config.definitions import PRESETS, load_funnels
from processor.config.eventmapping import MappingError, compile_mapping, load_mapping
from processor.config.schemas import SCHEMA_DIR, first_error, validator
from processor.funnel.eventmap import DEFAULT_MAPPING, EventMapping, normal_form
from processor.funnel.formats import Skipped, as_touchpoint, decoder, from_segment, from_snowplow, record_key
from processor.funnel.touchpoint import MAX_TYPE, Invalid, Touchpoint, from_dict
from processor.tools.replay import run_replay
from processor.tools.simshapes import Shaper

WHEN = "2026-01-10T09:30:00Z"
MAPPING = {
    "events": {"Order Completed": "purchase", "Product Added": "cart_add", "Signed Up": "newsletter_signup"},
    "channel_rules": [{"medium": ["cpc", "paid"], "source": ["linkedin", "facebook"], "channel": "paid_social"}],
}
MAPPED = compile_mapping(MAPPING, "<test mapping>")
FUNNELS = [arg for name in PRESETS for arg in ("--funnel", name)]


def track(**fields: Any) -> dict[str, Any]:
    base = {"type": "track", "event": "Order Completed", "messageId": "m1", "userId": "u1", "timestamp": WHEN}
    return {k: v for k, v in {**base, **fields}.items() if v is not None}


def struct(**fields: Any) -> dict[str, Any]:
    base = {"event": "struct", "se_action": "Order Completed", "event_id": "e1", "user_id": "u1"}
    return {k: v for k, v in {**base, "collector_tstamp": WHEN, **fields}.items() if v is not None}


def refusal(adapt: Any, doc: Any) -> tuple[str, str]:
    with pytest.raises(Invalid) as caught:
        adapt(doc, MAPPED)
    return caught.value.reason, caught.value.detail


# --- Segment -------------------------------------------------------------------


def test_a_track_call_is_the_touchpoint_its_fields_describe() -> None:
    doc = track(
        anonymousId="a1",
        context={"campaign": {"medium": "cpc", "source": "google", "name": "spring-sale", "term": "crm"}},
        properties={"revenue": 149.5, "currency": "EUR"},
    )
    assert from_segment(doc, MAPPED) == Touchpoint(
        "m1", "u1", "purchase", from_dict({**as_touchpoint(touch()), "occurred_at": WHEN}).at, WHEN,
        "paid_search", "spring-sale", {"revenue": 149.5, "currency": "EUR"},
    )  # fmt: skip


def touch() -> Touchpoint:
    return from_dict(touchpoint("x", "x", at=WHEN, event_id="x"))


@pytest.mark.parametrize(
    ("ids", "contact"),
    [
        ({"userId": "u1", "anonymousId": "a1"}, "u1"),
        ({"anonymousId": "a1"}, "a1"),
        ({"userId": "", "anonymousId": "a1"}, "a1"),  # RudderStack's visitor not yet identified
        ({"userId": None, "anonymousId": "a1"}, "a1"),
    ],
)
def test_the_contact_is_the_user_id_else_the_anonymous_id(ids: dict[str, Any], contact: str) -> None:
    assert from_segment({**track(userId=None), **ids}, MAPPED).contact_id == contact


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ({"timestamp": WHEN, "receivedAt": "2026-01-10T09:31:00Z"}, WHEN),
        # Segment's correction for the device's clock: receivedAt - (sentAt - originalTimestamp)
        (
            {"originalTimestamp": "2026-01-10T09:34:00Z", "sentAt": "2026-01-10T09:34:05Z"}
            | {"receivedAt": "2026-01-10T09:30:05Z"},
            WHEN,
        ),
        ({"originalTimestamp": "2026-01-10T10:30:00+01:00", "receivedAt": "2026-01-10T09:31:00Z"}, WHEN),
        ({"receivedAt": "2026-01-10T09:30:00.000Z"}, WHEN),
    ],
)
def test_the_time_is_timestamp_else_the_specs_fallbacks(times: dict[str, str], expected: str) -> None:
    tp = from_segment({**track(timestamp=None), **times}, MAPPED)
    assert (tp.at, tp.when) == (from_dict({**as_touchpoint(touch()), "occurred_at": expected}).at, expected)


def test_page_and_screen_are_page_views_with_the_path_and_name_among_the_properties() -> None:
    page = {"type": "page", "name": "Pricing", "messageId": "m2", "anonymousId": "a1", "timestamp": WHEN}
    with_path = {**page, "context": {"page": {"path": "/pricing", "url": "https://example.com/pricing"}}}
    assert from_segment(with_path, MAPPED)[2:] == (
        "page_view", touch().at, WHEN, None, None, {"path": "/pricing", "name": "Pricing"},
    )  # fmt: skip
    own = {**with_path, "properties": {"path": "/own", "title": "Own"}}
    assert from_segment(own, MAPPED).properties == {"path": "/own", "title": "Own", "name": "Pricing"}
    screen = {"type": "screen", "messageId": "m3", "anonymousId": "a1", "timestamp": WHEN}
    assert from_segment(screen, MAPPED)[2] == "page_view" and from_segment(screen, MAPPED).properties is None


@pytest.mark.parametrize("call", ["identify", "alias", "group"])
def test_identify_alias_and_group_are_recognised_and_skipped_whatever_they_hold(call: str) -> None:
    for doc in ({"type": call, "userId": "u1", "traits": {"plan": "pro"}}, {"type": call}):
        with pytest.raises(Skipped) as caught:
            decoder("segment", MAPPED)(orjson.dumps(doc))
        assert caught.value.kind == call


@pytest.mark.parametrize(
    ("doc", "reason", "named"),
    [
        (track(event=None), "missing_field", "'event'"),
        (track(event=""), "invalid_value", "'event'"),
        (track(event="!!!"), "invalid_value", "'event'"),
        (track(event="x" * 65), "invalid_value", "'event'"),
        (track(userId=""), "missing_field", "'anonymousId'"),
        (track(userId="u" * 129), "invalid_value", "'userId'"),
        (track(timestamp="10/01/2026 09:30"), "bad_timestamp", "'timestamp'"),
        (track(timestamp="2026-01-10T09:30:00"), "bad_timestamp", "'timestamp'"),
        (track(timestamp=None), "missing_field", "'receivedAt'"),
        (track(sentAt="soon"), "bad_timestamp", "'sentAt'"),  # every time given is checked, used or not
        (track(messageId=None), "missing_field", "'messageId'"),
        (track(messageId="m" * 129), "invalid_value", "'messageId'"),
        (track(type="purchase"), "invalid_value", "'type'"),
        (track(type=None), "missing_field", "'type'"),
        (track(context=[]), "wrong_type", "'context'"),
        (track(context={"campaign": {"medium": 7}}), "wrong_type", "'context.campaign.medium'"),
        (track(context={"campaign": {"name": "c" * 257}}), "invalid_value", "'context.campaign.name'"),
        (track(context={"campaign": {"medium": "m" * 65}}), "invalid_value", "'context.campaign.medium'"),
        (track(properties="plan=pro"), "wrong_type", "'properties'"),
        ([track()], "not_an_object", "JSON object"),
    ],
)
def test_a_segment_event_that_cannot_be_a_touchpoint_is_refused_naming_the_field(
    doc: Any, reason: str, named: str
) -> None:
    got, detail = refusal(from_segment, doc)
    assert got == reason and named in detail, detail


# --- Snowplow ------------------------------------------------------------------


def test_a_structured_event_is_named_by_its_action_and_keeps_its_fields() -> None:
    doc = struct(se_category="shop", se_label="footer", se_value=2.5, mkt_medium="email", mkt_campaign="nurture")
    tp = from_snowplow(doc, MAPPED)
    assert (tp.event_id, tp.contact_id, tp.type, tp.when) == ("e1", "u1", "purchase", WHEN)
    assert (tp.channel, tp.campaign) == ("email", "nurture")
    assert tp.properties == {"category": "shop", "label": "footer", "value": 2.5}


def test_a_self_describing_event_is_named_by_event_name_and_its_data_are_the_properties() -> None:
    doc = struct(event="unstruct", se_action=None, event_name="link_click", event_vendor="com.snowplowanalytics")
    doc["unstruct_event_com_snowplowanalytics_snowplow_link_click_1"] = {"targetUrl": "https://example.com"}
    tp = from_snowplow(doc, MAPPED)
    assert (tp.type, tp.properties) == ("link_click", {"targetUrl": "https://example.com"})


def test_a_page_view_names_itself_and_the_page_fields_are_properties() -> None:
    doc = struct(event="page_view", se_action=None, page_urlpath="/pricing", page_title="Pricing", mkt_source="google")
    tp = from_snowplow(doc, MAPPED)
    assert (tp.type, tp.channel, tp.properties) == ("page_view", "organic", {"path": "/pricing", "title": "Pricing"})


def test_the_contact_and_time_fall_back_as_the_enriched_event_allows() -> None:
    tp = from_snowplow(struct(user_id="", domain_userid="d1", derived_tstamp="2026-01-10T09:29:00Z"), MAPPED)
    assert (tp.contact_id, tp.when) == ("d1", "2026-01-10T09:29:00Z")
    tp = from_snowplow(struct(domain_userid="d1", derived_tstamp=""), MAPPED)  # empty counts as absent
    assert (tp.contact_id, tp.when) == ("u1", WHEN)


@pytest.mark.parametrize(
    ("doc", "reason", "named"),
    [
        (struct(event_id=None), "missing_field", "'event_id'"),
        (struct(event_id=""), "missing_field", "'event_id'"),
        (struct(user_id=None), "missing_field", "'domain_userid'"),
        (struct(collector_tstamp=None), "missing_field", "'collector_tstamp'"),
        (struct(collector_tstamp="2026-01-10 09:30:00.000"), "bad_timestamp", "'collector_tstamp'"),
        (struct(derived_tstamp="yesterday"), "bad_timestamp", "'derived_tstamp'"),
        (struct(se_action=None), "missing_field", "'se_action'"),
        (struct(event="unstruct"), "missing_field", "'event_name'"),
        (struct(event=None, se_action=None), "missing_field", "'event'"),
        (struct(mkt_campaign="c" * 257), "invalid_value", "'mkt_campaign'"),
        (struct(unstruct_event_com_example_x_1="x"), "wrong_type", "'unstruct_event_com_example_x_1'"),
    ],
)
def test_a_snowplow_event_that_cannot_be_a_touchpoint_is_refused_naming_the_field(
    doc: Any, reason: str, named: str
) -> None:
    got, detail = refusal(from_snowplow, doc)
    assert got == reason and named in detail, detail


def test_records_are_keyed_by_message_id_except_touchpoints_by_contact() -> None:
    assert record_key("segment", orjson.dumps(track())) == b"m1"
    assert record_key("snowplow", orjson.dumps(struct())) == b"e1"
    assert record_key("touchpoint", orjson.dumps(as_touchpoint(touch()))) == b"x"
    assert record_key("segment", b"{not json") is None


# --- names and channels -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "form"),
    [
        ("Order Completed", "order_completed"),
        ("order-completed", "order_completed"),
        ("  ORDER__Completed!! ", "order_completed"),
        ("Checkout Step 2", "checkout_step_2"),
        ("Café visité", "café_visité"),
        ("?!", ""),
    ],
)
def test_names_are_compared_in_normal_form(name: str, form: str) -> None:
    assert normal_form(name) == form


def test_an_unmapped_name_passes_through_in_normal_form_and_mapped_names_match_in_any_spelling() -> None:
    assert MAPPED.type_for("Demo Requested") == "demo_requested"
    assert MAPPED.type_for("order completed") == MAPPED.type_for("ORDER-COMPLETED") == "purchase"
    assert DEFAULT_MAPPING.type_for("Order Completed") == "order_completed"


@pytest.mark.parametrize(
    ("medium", "source", "channel"),
    [
        ("cpc", "google", "paid_search"),
        ("PPC", None, "paid_search"),
        ("paid", "bing", "paid_search"),
        ("email", "newsletter", "email"),
        ("e-mail", None, "email"),
        ("social", "linkedin", "social"),
        ("referral", "partner.example", "referral"),
        ("organic", "google", "organic"),
        ("display", None, "display"),
        ("affiliate", "network", "affiliate"),
        ("(none)", "(direct)", "direct"),
        (None, "(direct)", "direct"),
        (None, "facebook", "social"),
        (None, "duckduckgo", "organic"),
        ("Newsletter_June", None, "newsletter_june"),  # no rule: the medium in normal form
        (None, "Partner Portal", "partner_portal"),
        (None, None, None),
        ("", "", None),
    ],
)
def test_the_default_rules_turn_utm_medium_and_source_into_channels(
    medium: str | None, source: str | None, channel: str | None
) -> None:
    assert DEFAULT_MAPPING.channel_for(medium, source) == channel


def test_a_files_own_rules_come_before_the_defaults_which_it_may_turn_off() -> None:
    assert MAPPED.channel_for("cpc", "linkedin") == "paid_social"  # the file's rule
    assert MAPPED.channel_for("cpc", "google") == "paid_search"  # the default still applies
    own = compile_mapping(
        {"events": {}, "channel_rules": [{"medium": "cpc", "channel": "sea"}], "default_channel_rules": False}, "f"
    )
    assert (own.channel_for("cpc", None), own.channel_for("email", None)) == ("sea", "email")
    other = compile_mapping({"events": {}, "unmatched_channel": "other"}, "f")
    assert (other.channel_for("Newsletter_June", None), other.channel_for("email", None)) == ("other", "email")


# --- the mapping file ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"events": {}, "channel_rule": []}, "map.json: channel_rule: unknown field; did you mean 'channel_rules'?"),
        ({"events": {"Order Completed": "Purchase"}}, "events.Order Completed: 'Purchase' is not in normal form"),
        ({"events": {"A b": "x", "a-B": "y"}}, "events.a-B: maps to 'y', but 'A b', the same name in normal form"),
        ({"events": {"?": "x"}}, "map.json: events.?: the name has no letter or digit"),
        ({"events": {}, "channel_rules": [{"channel": "x"}]}, "channel_rules[0]: a channel rule needs a medium"),
        ({"events": {}, "channel_rules": [{"medium": "m", "chanel": "x"}]}, "did you mean 'channel'?"),
        ({"events": {"a": "t" * 65}}, "events.a: '" + "t" * 65 + "' is 65 characters; at most 64"),
        ({}, "map.json: 'events' is a required property"),
    ],
)
def test_a_mapping_file_that_cannot_work_is_refused_naming_the_file_and_field(document: Any, message: str) -> None:
    with pytest.raises(MappingError) as caught:
        compile_mapping(document, "map.json")
    assert message in str(caught.value)


def test_an_unreadable_or_malformed_mapping_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(MappingError, match=r"missing\.json: cannot read the file"):
        load_mapping(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(MappingError, match=r"bad\.json: not valid JSON"):
        load_mapping(tmp_path / "bad.json")


# --- schemas and golden examples ---------------------------------------------------


SCHEMAS = {"segment": "segment-event", "snowplow": "snowplow-event"}


def verdict(fmt: str, doc: Any) -> str:
    """'ok', 'skipped', or the dead-letter reason the adapter gives."""
    try:
        decoder(fmt, DEFAULT_MAPPING)(orjson.dumps(doc))
    except Skipped:
        return "skipped"
    except Invalid as bad:
        return bad.reason
    return "ok"


@pytest.mark.parametrize(
    ("fmt", "path"),
    [
        pytest.param(fmt, path, id=f"{fmt}/{path.parent.name}/{path.stem}")
        for fmt, name in SCHEMAS.items()
        for path in sorted((SCHEMA_DIR / name / "examples").glob("*/*.json"))
    ],
)
def test_golden_examples_get_the_same_verdict_from_the_adapter(fmt: str, path: Path) -> None:
    doc = orjson.loads(path.read_bytes())
    accepted = verdict(fmt, doc) in ("ok", "skipped")
    assert accepted == (path.parent.name == "valid") == (first_error(SCHEMAS[fmt], doc) is None)


GOOD_STAMPS = st.sampled_from(
    [WHEN, "2026-01-10T10:30:00.5+01:00", "2026-01-10 09:30:00z", "2024-02-29T00:00:00-05:30"]
)
BAD_STAMPS = st.sampled_from(["", "2026-01-10", "2026-01-10T09:30:00", "2023-02-29T00:00:00Z", "yesterday"])
ODD = (
    st.none()
    | st.sampled_from(["", "!!", "x" * 129, "c" * 257])
    | BAD_STAMPS
    | st.integers(-2, 2)
    | st.sampled_from([[], {}, {"a": 1}, True])
)


def text(*values: str) -> st.SearchStrategy[str]:
    return st.sampled_from(values)


# Per field: (usual values, odd values). A drawn event has every field usual, or one odd.
CAMPAIGN = st.fixed_dictionaries(
    {}, optional={"medium": text("cpc", "email", ""), "source": text("google", "linkedin"), "name": text("spring")}
)
SEGMENT_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "type": (text("track", "track", "page", "screen", "identify", "group"), ODD | text("purchase")),
    "event": (text("Order Completed", "Signed Up", "a"), ODD),
    "name": (st.none() | text("Pricing"), ODD),
    "messageId": (text("m1", "m" * 128), ODD),
    "userId": (st.none() | text("u1", "", "u" * 128), ODD),
    "anonymousId": (text("a1", "a" * 128), ODD),
    **{name: (GOOD_STAMPS, ODD) for name in ("timestamp", "originalTimestamp", "sentAt", "receivedAt")},
    "context": (
        st.fixed_dictionaries({}, optional={"campaign": CAMPAIGN, "page": st.fixed_dictionaries({"path": text("/p")})}),
        ODD
        | st.fixed_dictionaries({"campaign": ODD})
        | st.fixed_dictionaries({"page": st.fixed_dictionaries({"path": ODD})}),
    ),
    "properties": (
        st.none() | st.fixed_dictionaries({}, optional={"path": text("/q"), "revenue": st.integers(0, 9)}),
        ODD,
    ),
}
SNOWPLOW_FIELDS: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]] = {
    "event": (text("struct", "struct", "unstruct", "page_view", "page_ping"), ODD),
    "event_id": (text("e1", "e" * 128), ODD),
    "user_id": (st.none() | text("u1", "", "u" * 128), ODD),
    "domain_userid": (text("d1"), ODD),
    "event_name": (text("link_click", "event"), ODD),
    "se_action": (text("Order Completed", "Signed Up"), ODD),
    **{name: (GOOD_STAMPS | text(""), ODD) for name in ("derived_tstamp", "collector_tstamp")},
    **{
        name: (st.none() | text("cpc", "google", "spring", ""), ODD)
        for name in ("mkt_medium", "mkt_source", "mkt_campaign")
    },
    **{name: (st.none() | text("/p", "x"), ODD) for name in ("page_urlpath", "se_label")},
    "se_value": (st.none() | st.integers(0, 9) | text("1.5"), st.sampled_from([[], {}])),
    "unstruct_event_com_example_thing_1": (st.fixed_dictionaries({}, optional={"a": st.integers(0, 9)}), ODD),
}


@st.composite
def events(draw: st.DrawFn, fields: dict[str, tuple[st.SearchStrategy[Any], st.SearchStrategy[Any]]]) -> dict[str, Any]:
    """Events holding most of the fields, all usual or one of them odd."""
    odd_one = draw(st.none() | st.sampled_from(sorted(fields)))
    doc = {}
    for name, (usual, odd) in fields.items():
        if name == odd_one:
            doc[name] = draw(odd)
        elif draw(st.integers(0, 9)):  # otherwise absent
            doc[name] = draw(usual)
    return doc


def checked_by_code_only(fmt: str, doc: dict[str, Any]) -> bool:
    """Rules the schemas leave to code (they say so): a name or channel that cannot fit a touchpoint."""
    names = [doc.get(k) for k in ("event", "event_name", "se_action")]
    campaign = doc.get("context", {}).get("campaign") if isinstance(doc.get("context"), dict) else None
    mediums = [doc.get("mkt_medium"), doc.get("mkt_source")]
    if isinstance(campaign, dict):
        mediums += [campaign.get("medium"), campaign.get("source")]
    return any(isinstance(n, str) and n and not 0 < len(normal_form(n)) <= MAX_TYPE for n in names) or any(
        isinstance(m, str) and len(normal_form(m)) > MAX_TYPE for m in mediums
    )


@pytest.mark.parametrize("fmt", ["segment", "snowplow"])
@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_adapter_accepts_exactly_what_the_schema_accepts(fmt: str, data: st.DataObject) -> None:
    doc = data.draw(events(SEGMENT_FIELDS if fmt == "segment" else SNOWPLOW_FIELDS))
    event(verdict(fmt, doc))  # hypothesis --hypothesis-show-statistics: how often each verdict came
    assume(not checked_by_code_only(fmt, doc))
    errors = [error.message for error in validator(SCHEMAS[fmt]).iter_errors(doc)]
    got = verdict(fmt, doc)
    assert (got in ("ok", "skipped")) == (not errors), f"the adapter says {got}, the schema says {errors}"


# --- simulate --format and replay --input-format ---------------------------------------


@pytest.mark.parametrize("fmt", ["segment", "snowplow"])
def test_every_simulated_event_reads_back_as_the_touchpoint_it_was_made_from(tmp_path: Path, fmt: str) -> None:
    mapping = tmp_path / "mapping.json"
    mapping.write_bytes(orjson.dumps(MAPPING))
    native = tmp_path / "touchpoints.jsonl"
    common = ["simulate", *FUNNELS, "--touchpoints", "3000", "--seed", "21", "--end", WHEN]
    assert main([*common, "--output", str(native)]) == 0
    shaper, read = Shaper(fmt, MAPPED), decoder(fmt, MAPPED)
    shapes: set[tuple[str, ...]] = set()
    for line in native.read_bytes().splitlines():
        expected = from_dict(orjson.loads(line))
        events = shaper.shape(orjson.loads(line))
        assert read(orjson.dumps(events[0])) == expected
        for extra in events[1:]:
            with pytest.raises(Skipped):
                read(orjson.dumps(extra))
        validator(SCHEMAS[fmt]).validate(events[0])
        shapes.add(
            tuple(sorted(k for k in events[0] if k in ("type", "event", "timestamp", "userId", "derived_tstamp")))
        )
        shapes.add((str(events[0].get("type") or events[0]["event"]),))
    for kind in (
        (("track",), ("page",), ("screen",)) if fmt == "segment" else (("struct",), ("unstruct",), ("page_view",))
    ):
        assert kind in shapes, f"no {kind} event among the simulated ones"


@pytest.mark.parametrize("fmt", ["segment", "snowplow"])
def test_replaying_a_format_gives_the_outputs_of_replaying_the_same_touchpoints(tmp_path: Path, fmt: str) -> None:
    """5,000 and more events: byte for byte the outputs of the native file."""
    mapping = tmp_path / "mapping.json"
    mapping.write_bytes(orjson.dumps(MAPPING))
    native, shaped = tmp_path / "touchpoints.jsonl", tmp_path / f"{fmt}.jsonl"
    common = ["simulate", *FUNNELS, "--touchpoints", "6000", "--seed", "4", "--days", "30", "--end", WHEN]
    assert main([*common, "--output", str(native)]) == 0
    assert main([*common, "--format", fmt, "--mapping", str(mapping), "--output", str(shaped)]) == 0
    assert len(shaped.read_bytes().splitlines()) >= 5_000
    results = []
    for path, read in ((native, decoder("touchpoint")), (shaped, decoder(fmt, load_mapping(mapping)))):
        out, errors = io.BytesIO(), io.BytesIO()
        with path.open("rb") as lines:
            stats = run_replay(lines, str(path), load_funnels(PRESETS), out, errors, decode=read)
        assert errors.getvalue() == b""
        results.append((out.getvalue(), stats))
    (native_out, native_stats), (shaped_out, shaped_stats) = results
    assert shaped_out == native_out and native_out.count(b"\n") > 10_000
    assert (shaped_stats.touchpoints, shaped_stats.duplicates) == (native_stats.touchpoints, native_stats.duplicates)
    if fmt == "segment":
        assert set(shaped_stats.skipped) == {"identify", "alias", "group"}
        assert "skipped (alias " in shaped_stats.summary()


def test_replay_names_the_format_options_problems(tmp_path: Path) -> None:
    line = orjson.dumps(track())
    (tmp_path / "in.jsonl").write_bytes(line + b"\n" + orjson.dumps({"type": "identify"}) + b"\n")
    (tmp_path / "bad-map.json").write_text('{"events": {}, "chanel_rules": []}')
    base = [sys.executable, "-m", "processor", "replay", "--funnel", "aida", "--input", str(tmp_path / "in.jsonl")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=60, check=False)

    refused = run("--mapping", str(tmp_path / "bad-map.json"))
    assert refused.returncode == 2 and "--mapping applies only to --input-format segment or snowplow" in refused.stderr
    refused = run("--input-format", "segment", "--mapping", str(tmp_path / "bad-map.json"))
    assert refused.returncode == 2 and "bad-map.json: chanel_rules: unknown field" in refused.stderr
    done = run("--input-format", "segment")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines()[-1].endswith("1 touchpoint read, 0 outputs written, 0 dead letters, 0 duplicates, "
                                                 "1 skipped (identify 1)")  # fmt: skip


def test_simulate_refuses_what_a_format_cannot_carry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken.json"  # the name that would carry demo_requested means something else
    taken.write_bytes(orjson.dumps({"events": {"Demo Requested": "purchase", "Order Completed": "purchase"}}))
    args = ["simulate", *FUNNELS, "--touchpoints", "200", "--seed", "1", "--output", str(tmp_path / "x.jsonl")]
    assert main([*args, "--format", "segment", "--mapping", str(taken)]) == 2
    assert "the type 'demo_requested' cannot be written as an event name" in capsys.readouterr().err
    assert main([*args, "--mapping", str(taken)]) == 2
    assert "--mapping applies only to --format segment or snowplow" in capsys.readouterr().err
    with pytest.raises(ValueError, match="the channel 'web' cannot be written as a UTM medium"):
        Shaper("segment", compile_mapping({"events": {}, "unmatched_channel": "other"}, "m")).utm("web")


def test_the_mapping_names_a_type_by_its_first_listed_name_else_in_words() -> None:
    mapping = EventMapping((("Order Completed", "purchase"), ("Checkout Done", "purchase")))
    assert (mapping.name_for("purchase"), mapping.name_for("demo_requested")) == ("Order Completed", "Demo Requested")
